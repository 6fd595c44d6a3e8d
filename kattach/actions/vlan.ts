/** VLAN actions: one virtual switch per VLAN, with its subnet, gateway and address pool. */
import { UserError } from "../../lib/errors.ts";
import type { Vlan, VlanInfo } from "../../ipc/mod.ts";
import {
  AddressPlan,
  allocateAddress,
  broadcast,
  contains,
  defaultPlan,
  parseCidr,
  parseIpv4,
  poolUsage,
  validatePlan,
} from "../../netmgr/mod.ts";
import type { Store } from "../store.ts";
import { type Rule, runRules } from "./_rules.ts";
import type { Handlers, Kattach } from "./_types.ts";

/** Finds a VLAN by id ("10") or name ("web"). */
function findVlan(store: Store, ref: string): Vlan | undefined {
  return /^\d+$/.test(ref) ? store.getVlan(Number(ref)) : store.getVlanByName(ref);
}

/** Finds a VLAN by id ("10") or name ("web"); a UserError when there is none. */
export function resolveVlan(store: Store, ref: string): Vlan {
  const vlan = findVlan(store, ref);
  if (!vlan) {
    throw new UserError(`VLAN ${ref} does not exist`, {
      hint: "see `vlan list` for the VLANs of this host",
      code: "not-found",
    });
  }
  return vlan;
}

/** A VLAN with its pool usage and reservations. */
export function vlanInfo(store: Store, vlan: Vlan): VlanInfo {
  return withUsage(vlan, store.vlanAssignedIps(vlan.id), store.vlanReservations(vlan.id));
}

function withUsage(
  vlan: Vlan,
  assigned: string[],
  reserved: { ip: string; note: string }[],
): VlanInfo {
  const usage = poolUsage(vlan, [...assigned, ...reserved.map((r) => r.ip)]);
  return { ...vlan, poolSize: usage.size, used: usage.used, reserved };
}

/** Addresses of a VLAN that must not be handed out: assigned and reserved. */
export function takenAddresses(store: Store, vlanId: number): Set<string> {
  return new Set([
    ...store.vlanAssignedIps(vlanId),
    ...store.vlanReservations(vlanId).map((r) => r.ip),
  ]);
}

/** What `vlan add` checks against the store (its addresses alone: the action's schema). */
export const vlanAddRules: Rule<"vlan.add">[] = [
  {
    about: ["id"],
    check(k, p) {
      if (k.store.getVlan(p.id)) {
        throw new UserError(`Cannot add VLAN ${p.id}: it exists already`, {
          hint: "choose another id, or `vlan del` the old one first",
          code: "conflict",
        });
      }
    },
  },
  {
    about: ["name"],
    needs: ["id", "name"],
    check(k, p) {
      if (k.store.getVlanByName(p.name)) {
        throw new UserError(`Cannot add VLAN ${p.id}: the name ${p.name} is taken`, {
          hint: "VLAN names are unique; choose another",
          code: "conflict",
        });
      }
    },
  },
  {
    about: ["cidr"],
    needs: ["id", "cidr"],
    check(k, p) {
      const other = k.store.vlanOverlapping(p.cidr);
      if (other) {
        throw new UserError(
          `Cannot add VLAN ${p.id}: ${p.cidr} overlaps VLAN ${other.id} (${other.cidr})`,
          { hint: "each VLAN needs a subnet of its own", code: "conflict" },
        );
      }
    },
  },
];

/** A VLAN's addressing plan after `vlan set`: what is given, the stored rest. */
function setPlan(
  vlan: Vlan,
  p: { gateway?: string; poolStart?: string; poolEnd?: string },
): AddressPlan {
  return {
    cidr: vlan.cidr,
    gateway: p.gateway ?? vlan.gateway,
    poolStart: p.poolStart ?? vlan.poolStart,
    poolEnd: p.poolEnd ?? vlan.poolEnd,
  };
}

/** What `vlan set` checks against the store: the VLAN, a new name, new addresses. */
export const vlanSetRules: Rule<"vlan.set">[] = [
  { about: ["vlan"], check: (k, p) => void resolveVlan(k.store, p.vlan) },
  {
    about: ["name"],
    needs: ["vlan", "name"],
    check(k, p) {
      const vlan = findVlan(k.store, p.vlan); // none: the first rule's refusal, not this one's
      if (p.name === undefined || !vlan) return;
      const other = k.store.getVlanByName(p.name);
      if (other && other.id !== vlan.id) {
        throw new UserError(`Cannot rename VLAN ${vlan.id}: the name ${p.name} is taken`, {
          hint: "VLAN names are unique; choose another",
          code: "conflict",
        });
      }
    },
  },
  {
    // The gateway and the pool inside the VLAN's subnet, every assigned address in the pool
    // and none of them (nor a reserved one) the gateway.
    about: ["gateway", "poolStart", "poolEnd"],
    needs: ["vlan"],
    check(k, p) {
      const vlan = findVlan(k.store, p.vlan);
      if (!vlan) return;
      const plan = setPlan(vlan, p);
      validatePlan(plan);
      const start = parseIpv4(plan.poolStart);
      const end = parseIpv4(plan.poolEnd);
      for (const ip of k.store.vlanAssignedIps(vlan.id)) {
        const n = parseIpv4(ip);
        if (ip === plan.gateway) {
          // Inside the pool, maybe: the pool is not what is wrong (it said so before).
          throw new UserError(
            `Cannot make ${ip} the gateway of VLAN ${vlan.id}: ${
              k.store.ipHolder(vlan.id, ip)
            } has it`,
            {
              hint: "choose an address no instance has (see `instance list`)",
              code: "in-use",
            },
          );
        }
        if (n < start || n > end) {
          throw new UserError(
            `Cannot change VLAN ${vlan.id}: an instance has ${ip}, outside the new pool ${plan.poolStart}-${plan.poolEnd}`,
            {
              hint: "keep every assigned address inside the pool (see `instance list`)",
              code: "in-use",
            },
          );
        }
      }
      if (k.store.vlanReservations(vlan.id).some((r) => r.ip === plan.gateway)) {
        throw new UserError(`Cannot make ${plan.gateway} the gateway: it is reserved`, {
          hint: `release it first with \`vlan unreserve ${vlan.id} ${plan.gateway}\``,
        });
      }
    },
  },
];

/** The VLAN actions. */
export const vlanHandlers: Handlers<
  | "vlan.add"
  | "vlan.set"
  | "vlan.list"
  | "vlan.show"
  | "vlan.del"
  | "vlan.reserve"
  | "vlan.unreserve"
> = {
  "vlan.add"(k: Kattach, p) {
    const plan = { ...defaultPlan(p.cidr) };
    if (p.gateway !== undefined) plan.gateway = p.gateway;
    if (p.poolStart !== undefined) plan.poolStart = p.poolStart;
    if (p.poolEnd !== undefined) plan.poolEnd = p.poolEnd;
    validatePlan(plan);
    return k.store.tx(() => {
      runRules(k, vlanAddRules, p);
      k.store.insertVlan({
        id: p.id,
        name: p.name,
        ...plan,
        uplink: p.uplink ?? "none",
        nat: p.nat ?? false,
        isolate: p.isolate ?? false,
      });
      k.log(`vlan: added ${p.id} ${p.name} ${plan.cidr}`);
      return vlanInfo(k.store, k.store.getVlan(p.id)!);
    });
  },

  "vlan.set"(k, p) {
    return k.store.tx(() => {
      runRules(k, vlanSetRules, p);
      const vlan = resolveVlan(k.store, p.vlan);
      const plan = setPlan(vlan, p);
      const name = p.name ?? vlan.name;
      k.store.updateVlan({
        id: vlan.id,
        name,
        ...plan,
        uplink: p.uplink ?? vlan.uplink,
        nat: p.nat ?? vlan.nat,
        isolate: p.isolate ?? vlan.isolate,
      });
      k.log(`vlan: changed ${vlan.id}`);
      return vlanInfo(k.store, k.store.getVlan(vlan.id)!);
    });
  },

  "vlan.list"(k, p) {
    const vlans = k.store.listVlans(p);
    // A page (the menus' screenful): two indexed queries per VLAN, not a scan of every NIC.
    if (vlans.length <= 64) return vlans.map((v) => vlanInfo(k.store, v));
    // Three queries for every VLAN together (not two per VLAN).
    const assigned = k.store.assignedIpsByVlan();
    const reserved = k.store.reservationsByVlan();
    return vlans.map((v) => withUsage(v, assigned.get(v.id) ?? [], reserved.get(v.id) ?? []));
  },

  "vlan.show"(k, p) {
    return vlanInfo(k.store, resolveVlan(k.store, p.vlan));
  },

  "vlan.del"(k, p) {
    return k.store.tx(() => {
      const vlan = resolveVlan(k.store, p.vlan);
      const users = k.store.vlanInstances(vlan.id);
      if (users.length > 0) {
        throw new UserError(
          `Cannot delete VLAN ${vlan.id}: instances use it (${users.join(", ")})`,
          { hint: "delete those instances first", code: "in-use" },
        );
      }
      const images = k.store.vlanVmImages(vlan.id);
      if (images.length > 0) {
        throw new UserError(
          `Cannot delete VLAN ${vlan.id}: VM images attach to it (${images.join(", ")})`,
          { hint: "delete those VM images first", code: "in-use" },
        );
      }
      k.store.deleteVlan(vlan.id);
      k.log(`vlan: deleted ${vlan.id}`);
      return { deleted: String(vlan.id) };
    });
  },

  "vlan.reserve"(k, p) {
    return k.store.tx(() => {
      const vlan = resolveVlan(k.store, p.vlan);
      const ip = p.ip;
      const cidr = parseCidr(vlan.cidr);
      const n = parseIpv4(ip);
      if (
        !contains(cidr, n) || n === cidr.network || n === broadcast(cidr) || ip === vlan.gateway
      ) {
        throw new UserError(`Cannot reserve ${ip}: it is not a guest address of ${vlan.cidr}`, {
          hint: `the gateway is ${vlan.gateway}`,
        });
      }
      const holder = k.store.ipHolder(vlan.id, ip);
      if (holder !== undefined) {
        throw new UserError(`Cannot reserve ${ip}: ${holder} has it`, {
          hint: `reserve another address, or delete ${holder} first`,
          code: "conflict",
        });
      }
      if (k.store.vlanReservations(vlan.id).some((r) => r.ip === ip)) {
        throw new UserError(`Cannot reserve ${ip}: it is reserved already`, { code: "conflict" });
      }
      k.store.insertReservation(vlan.id, ip, p.note);
      return vlanInfo(k.store, vlan);
    });
  },

  "vlan.unreserve"(k, p) {
    return k.store.tx(() => {
      const vlan = resolveVlan(k.store, p.vlan);
      if (!k.store.deleteReservation(vlan.id, p.ip)) {
        throw new UserError(`${p.ip} is not reserved on VLAN ${vlan.id}`, { code: "not-found" });
      }
      return vlanInfo(k.store, vlan);
    });
  },
};

/** Allocates one address on a VLAN, given addresses already taken in this transaction. */
export function allocateOn(vlan: Vlan, taken: Set<string>): string {
  const ip = allocateAddress(vlan, taken);
  taken.add(ip);
  return ip;
}

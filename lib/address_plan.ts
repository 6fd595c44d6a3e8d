/**
 * The addressing plan of a VLAN (subnet, gateway, guest pool) and its rules: the gateway and the
 * pool lie inside the subnet on host addresses, the pool's start is not after its end. Pure, so
 * that kattach's IPAM (netmgr/ipam.ts), the IPC schema of `vlan add` (ipc/actions.ts) and through
 * it the CLI's word checks (cli/word_check.ts) share one copy of the rules.
 */
import { z } from "zod";
import { UserError } from "./errors.ts";
import {
  broadcast,
  type Cidr,
  contains,
  formatCidr,
  formatIpv4,
  Ipv4Address,
  Ipv4Cidr,
  parseCidr,
  parseIpv4,
} from "./ipv4.ts";

/** The addressing plan of a VLAN. */
export const AddressPlan = z.strictObject({
  /** The subnet, e.g. `10.0.10.0/24`. */
  cidr: Ipv4Cidr,
  /** The host's address on the VLAN, handed to guests as their default route. */
  gateway: Ipv4Address,
  /** First address of the guest pool. */
  poolStart: Ipv4Address,
  /** Last address of the guest pool (inclusive). */
  poolEnd: Ipv4Address,
});
export type AddressPlan = z.infer<typeof AddressPlan>;

/** A plan with its addresses as integers. */
export interface ResolvedPlan {
  cidr: Cidr;
  broadcast: number;
  gateway: number;
  start: number;
  end: number;
}

/** What is wrong with a plan: the field at fault, why, and a hint. */
export interface PlanProblem {
  field: "cidr" | "gateway" | "poolStart" | "poolEnd";
  /** The whole sentence: `Invalid gateway 10.0.20.1: it must be a host address inside …`. */
  message: string;
  /** Why, without what: `it must be a host address inside 10.0.10.0/24`. */
  reason: string;
  hint: string;
  /** The field is not spelled as an address or subnet at all (its own schema says so). */
  spelling?: true;
}

/** The plan as integers, or the first rule it breaks (the subnet's and addresses' spelling too). */
export function checkPlan(
  plan: AddressPlan,
): { ok: true; value: ResolvedPlan } | { ok: false; problem: PlanProblem } {
  let field: PlanProblem["field"] = "cidr";
  const refuse = (
    key: PlanProblem["field"],
    what: string,
    reason: string,
    hint: string,
  ): { ok: false; problem: PlanProblem } => ({
    ok: false,
    problem: { field: key, message: `Invalid ${what}: ${reason}`, reason, hint },
  });
  try {
    const cidr = parseCidr(plan.cidr);
    const net = formatCidr(cidr);
    const last = broadcast(cidr);
    const hosts = `${formatIpv4(cidr.network + 1)}-${formatIpv4(last - 1)}`;
    const host = (ip: number) => contains(cidr, ip) && ip !== cidr.network && ip !== last;
    field = "gateway";
    const gateway = parseIpv4(plan.gateway);
    if (!host(gateway)) {
      return refuse(
        field,
        `gateway ${plan.gateway}`,
        `it must be a host address inside ${net}`,
        `choose an address from ${hosts}, usually ${formatIpv4(cidr.network + 1)}`,
      );
    }
    field = "poolStart";
    const start = parseIpv4(plan.poolStart);
    field = "poolEnd";
    const end = parseIpv4(plan.poolEnd);
    for (
      const [name, key, ip] of [["start", "poolStart", start], ["end", "poolEnd", end]] as const
    ) {
      if (!host(ip)) {
        return refuse(
          key,
          `pool ${name} ${formatIpv4(ip)}`,
          `it must be a host address inside ${net}`,
          `choose a pool within ${hosts}`,
        );
      }
    }
    if (start > end) {
      return refuse(
        "poolStart",
        `pool ${plan.poolStart}-${plan.poolEnd}`,
        "the start is after the end",
        "swap the start and the end",
      );
    }
    return { ok: true, value: { cidr, broadcast: last, gateway, start, end } };
  } catch (err) {
    if (!(err instanceof UserError)) throw err;
    return {
      ok: false,
      problem: { field, message: err.message, reason: err.message, hint: err.hint, spelling: true },
    };
  }
}

/**
 * The zod issue of a VLAN's addresses taken together (`vlan add`'s parameters: a subnet and the
 * gateway and pool given, the others by default), at the field at fault; nothing when a field is
 * misspelled (its own schema tells that) or the plan is right.
 */
export function planIssue(
  p: { cidr?: unknown; gateway?: unknown; poolStart?: unknown; poolEnd?: unknown },
): { path: [PlanProblem["field"]]; message: string } | undefined {
  const text = (v: unknown) => typeof v === "string" ? v : undefined;
  if (text(p.cidr) === undefined) return undefined;
  const plan = planOf(p.cidr as string, {
    gateway: text(p.gateway),
    poolStart: text(p.poolStart),
    poolEnd: text(p.poolEnd),
  });
  if (!plan) return undefined;
  const r = checkPlan(plan);
  if (r.ok || r.problem.spelling) return undefined;
  return { path: [r.problem.field], message: `${r.problem.reason} (${r.problem.hint})` };
}

/** The plan as integers; a UserError unless it is coherent (gateway and pool inside the subnet). */
export function resolvePlan(plan: AddressPlan): ResolvedPlan {
  const r = checkPlan(plan);
  if (!r.ok) throw new UserError(r.problem.message, { hint: r.problem.hint });
  return r.value;
}

/** Throws a UserError unless the plan is coherent (gateway and pool inside the subnet). */
export function validatePlan(plan: AddressPlan): void {
  resolvePlan(plan);
}

/** The usual plan of a subnet: gateway = first host, pool = second host to last host. */
export function defaultPlan(cidr: string): AddressPlan {
  const c = parseCidr(cidr);
  return {
    cidr: formatCidr(c),
    gateway: formatIpv4(c.network + 1),
    poolStart: formatIpv4(c.network + 2),
    poolEnd: formatIpv4(broadcast(c) - 1),
  };
}

/**
 * The plan a VLAN gets from a subnet and the addresses given (the others from
 * {@linkcode defaultPlan}), or undefined when the subnet is not a VLAN subnet.
 */
export function planOf(
  cidr: string,
  given: { gateway?: string; poolStart?: string; poolEnd?: string },
): AddressPlan | undefined {
  let plan: AddressPlan;
  try {
    plan = defaultPlan(cidr);
  } catch (err) {
    if (err instanceof UserError) return undefined;
    throw err;
  }
  if (given.gateway !== undefined) plan.gateway = given.gateway;
  if (given.poolStart !== undefined) plan.poolStart = given.poolStart;
  if (given.poolEnd !== undefined) plan.poolEnd = given.poolEnd;
  return plan;
}

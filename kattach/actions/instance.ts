/**
 * Deploy and instance records. `deploy` defines all its instances, their MACs and addresses in
 * one transaction (all or nothing); then starts each on its own and reports per instance what
 * happened (an instance that fails to start stays, `failed`, with its reason).
 */
import {
  type DeployedInstance,
  type InstancePublished,
  JsonText,
  type Nic,
} from "../../ipc/mod.ts";
import { UserError } from "../../lib/errors.ts";
import { allocateMac, macIndex, tapName } from "../../netmgr/mod.ts";
import { instanceMachine, removeInstanceDir, SharedPrep } from "../instance_runtime.ts";
import { linkInstances, networkMode, nicStatus, unlinkInstance } from "../network.ts";
import { instanceHome, instanceRoot, noStorageNotice, placeInstances } from "../storage.ts";
import type { Store } from "../store.ts";
import { listForwards } from "../store_firewall.ts";
import { setInstanceStorage, vmImageStorage } from "../store_storage.ts";
import { runningPids, supervisorOf, withRuntime, withRuntimes } from "../supervisor.ts";
import { instanceListJson } from "../store_lists.ts";
import { requireVkaos } from "./_modules.ts";
import { resolveVmImage } from "./vmimage.ts";
import { allocateOn, resolveVlan, takenAddresses } from "./vlan.ts";
import { type Rule, runRules } from "./_rules.ts";
import type { Handlers } from "./_types.ts";

import { getRuntime, resolveInstance } from "../store_instances.ts";

export { resolveInstance };

/** What `deploy` checks against the store before it places anything: vKaOS and the VM image. */
export const deployRules: Rule<"deploy">[] = [{
  about: ["vmimage"],
  check(k, p) {
    requireVkaos(k.store, `deploy ${p.vmimage}`);
    resolveVmImage(k.store, p.vmimage);
  },
}];

/** The deploy and instance actions. */
export const instanceHandlers: Handlers<
  "deploy" | "instance.list" | "instance.show" | "instance.del"
> = {
  async "deploy"(k, p, ctx) {
    const t0 = performance.now();
    runRules(k, deployRules, p);
    const storage = await placeInstances(k, vmImageStorage(k.store, p.vmimage));
    if (storage === null) ctx.progress(noStorageNotice(k));
    const created = k.store.tx(() => {
      requireVkaos(k.store, `deploy ${p.vmimage}`);
      const image = resolveVmImage(k.store, p.vmimage);
      const vlans = image.vlans.map((id) => resolveVlan(k.store, String(id)));
      const taken = new Map(vlans.map((v) => [v.id, takenAddresses(k.store, v.id)]));
      // KaOS MAC indices, parsed once: allocateMac takes them as they are (a set of strings
      // would be parsed again for every NIC: quadratic with 10,000 instances).
      const macs = new Set<number>();
      for (const mac of k.store.allMacs()) {
        const n = macIndex(mac);
        if (n !== undefined) macs.add(n);
      }
      const first = k.store.takeInstanceNumbers(image.name, p.count);
      const names: string[] = [];
      for (let n = first; n < first + p.count; n++) {
        const name = `${image.name}-${n}`;
        if (k.store.instanceExists(name)) {
          throw new UserError(`Cannot deploy: instance ${name} exists already`, {
            code: "conflict",
          });
        }
        const nicVlans = vlans.length > 0 ? vlans : [null];
        const nics: Nic[] = nicVlans.map((vlan, index) => {
          const mac = allocateMac(macs);
          macs.add(macIndex(mac)!);
          const ip = vlan ? allocateOn(vlan, taken.get(vlan.id)!) : null;
          return { index, vlan: vlan?.id ?? null, mac, ip };
        });
        k.store.insertInstance({
          name,
          vmimage: image.name,
          state: "defined",
          autostart: false,
          restartPolicy: "on-failure",
          nics,
        });
        setInstanceStorage(k.store, name, storage);
        names.push(name);
        ctx.progress(`defined ${name}`, names.length, p.count);
      }
      return names;
      // Durable before the answer, but synced while the QEMUs start (store.sync below).
    }, { durable: false });
    const synced = k.store.sync();
    synced.catch(() => {}); // awaited below
    k.log(
      `deploy: ${p.vmimage} × ${p.count} on ${storage ?? instanceHome(k)}: ${
        created.join(", ")
      } (records in ${Math.round(performance.now() - t0)} ms)`,
    );
    type Outcome = Pick<DeployedInstance, "outcome" | "reason" | "qmpStatus">;
    const outcomes = new Map<string, Outcome>(
      created.map((name) => [name, { outcome: "defined" }]),
    );
    if (!p.noStart) {
      const sup = supervisorOf(k);
      // The starts run at once and share what they read and grant (issue 13).
      const shared = new SharedPrep(created, t0);
      let done = 0;
      await Promise.all(created.map(async (name) => {
        try {
          const { state, pid, qmpStatus } = await sup.launch(name, { wait: p.wait, shared })
            // A start that failed before the launch gate: the others do not wait for it.
            .finally(() => void shared.arrive(name));
          if (p.wait && state !== "running") {
            const lastExit = getRuntime(k.store, name).lastExit;
            const why = lastExit ? `; last exit: ${lastExit}` : "";
            const reason = `never became ready (it is ${state}${why})`;
            outcomes.set(name, { outcome: "failed", reason });
            ctx.progress(`${name}: ${reason}`, ++done, created.length);
          } else {
            outcomes.set(name, { outcome: p.wait ? "ready" : "started", qmpStatus });
            ctx.progress(`${name}: ${state} (pid ${pid})`, ++done, created.length);
          }
        } catch (err) {
          const reason = err instanceof Error ? err.message : String(err);
          outcomes.set(name, { outcome: "failed", reason });
          ctx.progress(`${name}: failed to start: ${reason}`, ++done, created.length);
        }
      }));
    }
    // Their own links only (the starts made them; `--no-start` gets its taps here): a deploy
    // re-plans no other link (a full no-op reconcile of 4,094 VLANs + 1,000 taps: 42.6-92.7 ms).
    await linkInstances(k, created, { reason: "deploy" });
    const started = performance.now();
    try {
      await synced;
    } catch (err) {
      throw new Error(`deploy: the records of ${created.join(", ")} may not be on the disk`, {
        cause: err,
      });
    }
    const answer = withRuntimes(k, k.store.getInstances(created)).map((
      inst,
    ) => ({ ...inst, ...outcomes.get(inst.name)! }));
    k.log(
      `deploy: ${p.vmimage} × ${p.count}: started in ${Math.round(started - t0)} ms, answered ${
        Math.round(performance.now() - t0)
      } ms after it began`,
    );
    return answer;
  },

  "instance.list"(k, p) {
    if (p.vmimage !== undefined) resolveVmImage(k.store, p.vmimage);
    // JSON text rendered by SQLite, sent as it is (issue 13: 10,000 records).
    return new JsonText(
      instanceListJson(k.store, {
        ...p,
        pids: runningPids(k),
        bridged: networkMode(k) === "bridged",
      }),
    );
  },

  async "instance.show"(k, p) {
    const inst = withRuntime(k, resolveInstance(k.store, p.name));
    const machine = instanceMachine(k, inst, getRuntime(k.store, p.name).machine);
    const storagePlace = inst.storage ?? instanceHome(k);
    // Published ports go to the instance's VLAN address: `forwards` (user-mode) leaves them out.
    const published = publishedTo(k.store, p.name);
    return { ...inst, machine, storagePlace, published, ...await nicStatus(k, inst) };
  },

  async "instance.del"(k, p) {
    const sup = supervisorOf(k);
    const root = instanceRoot(k, p.name);
    const { result, taps } = k.store.tx(() => {
      const inst = resolveInstance(k.store, p.name);
      if (!["defined", "stopped", "failed"].includes(inst.state) || sup.isAlive(p.name)) {
        throw new UserError(`Cannot delete ${p.name}: it is ${inst.state}`, {
          hint: `stop it first (\`instance stop ${p.name}\`)`,
          code: "in-use",
        });
      }
      sup.forget(p.name);
      // Its published ports go with it (the store cascades): the answer names them.
      const unpublished = publishedTo(k.store, p.name);
      // Its taps, by the names the link plan gives its NICs on VLANs (the records go now).
      const taps = inst.nics.filter((n) => n.vlan !== null).map((n) => tapName(n.mac));
      k.store.deleteInstance(p.name);
      k.log(`instance: deleted ${p.name}`);
      return { result: { deleted: p.name, unpublished }, taps };
    });
    // Its own links only, and the firewall only when its ruleset named the instance (its taps,
    // its published ports; a rule naming it needs its address on a VLAN, so a tap): no full
    // reconcile of every VLAN and instance (issue 13).
    const net = await unlinkInstance(k, p.name, {
      taps,
      firewall: taps.length > 0 || result.unpublished.length > 0,
    });
    const left: string[] = [];
    const hints: string[] = [];
    if (net?.error) {
      left.push(`the host network could not be updated (${net.error})`);
      hints.push(
        `\`network apply\` finishes it (a full reconcile: it deletes ${
          taps.length > 0 ? `what is left of its tap ${taps.join(", ")} and ` : ""
        }applies the firewall); \`network status\` shows what is pending`,
      );
    }
    const dir = `${root}/instances/${p.name}`;
    try {
      await removeInstanceDir(root, p.name);
    } catch (err) {
      left.push(
        `its files under ${dir} could not be removed: ${err instanceof Error ? err.message : err}`,
      );
      hints.push(`remove ${dir} by hand`);
    }
    if (left.length > 0) {
      // The record is gone (committed); say what was left rather than "nothing changed".
      k.log(`instance: deleted ${p.name} but ${left.join("; ")}`);
      throw new UserError(`Deleted ${p.name}, but ${left.join("; and ")}`, {
        hint: hints.join("; "),
        code: "partial",
      });
    }
    return result;
  },
};

/** The host ports published to an instance (`firewall forward add`). */
function publishedTo(store: Store, name: string): InstancePublished[] {
  return listForwards(store, { filter: name })
    .filter((f) => f.instance === name)
    .map(({ id, proto, hostPort, guestPort }) => ({ id, proto, hostPort, guestPort }));
}

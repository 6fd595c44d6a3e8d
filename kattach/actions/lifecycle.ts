/**
 * Guest lifecycle actions. Each resolves the instance, then hands the work to the supervisor
 * (kattach/supervisor.ts), which owns the QEMU processes.
 */
import { UserError } from "../../lib/errors.ts";
import { getRuntime, patchRuntime, setInstancePolicy } from "../store_instances.ts";
import { supervisorOf, withRuntime } from "../supervisor.ts";
import { resolveInstance } from "./instance.ts";
import type { Handlers } from "./_types.ts";

/** The guest lifecycle actions. */
export const lifecycleHandlers: Handlers<
  | "instance.start"
  | "instance.stop"
  | "instance.restart"
  | "instance.pause"
  | "instance.resume"
  | "instance.kill"
  | "instance.set"
  | "instance.console"
  | "instance.stats"
  | "qmp"
> = {
  "instance.start"(k, p) {
    resolveInstance(k.store, p.name);
    return supervisorOf(k).start(p.name, { wait: p.wait });
  },
  "instance.stop"(k, p) {
    resolveInstance(k.store, p.name);
    return supervisorOf(k).stop(p.name, { timeoutSeconds: p.timeoutSeconds });
  },
  "instance.restart"(k, p) {
    resolveInstance(k.store, p.name);
    return supervisorOf(k).restart(p.name, { wait: p.wait });
  },
  "instance.pause"(k, p) {
    resolveInstance(k.store, p.name);
    return supervisorOf(k).pause(p.name);
  },
  "instance.resume"(k, p) {
    resolveInstance(k.store, p.name);
    return supervisorOf(k).resumeGuest(p.name);
  },
  "instance.kill"(k, p) {
    resolveInstance(k.store, p.name);
    return supervisorOf(k).kill(p.name);
  },
  "instance.set"(k, p) {
    return k.store.tx(() => {
      resolveInstance(k.store, p.name);
      if (p.restartPolicy === undefined && p.autostart === undefined && p.machine === undefined) {
        throw new UserError(`Nothing to set on ${p.name}`, {
          hint: "give --restart-policy, --autostart or --machine",
        });
      }
      setInstancePolicy(k.store, p.name, p);
      if (p.machine !== undefined && p.machine !== getRuntime(k.store, p.name).machine) {
        patchRuntime(k.store, p.name, { machine: p.machine });
      }
      k.log(`instance: set ${p.name} ${JSON.stringify(p)}`);
      return withRuntime(k, resolveInstance(k.store, p.name));
    });
  },
  "instance.console"(k, p) {
    resolveInstance(k.store, p.name);
    return { instance: p.name, socket: supervisorOf(k).consoleSocket(p.name) };
  },
  "instance.stats"(k, p) {
    resolveInstance(k.store, p.name);
    return supervisorOf(k).stats(p.name);
  },
  async "qmp"(k, p) {
    resolveInstance(k.store, p.name);
    return { command: p.command, return: await supervisorOf(k).qmp(p.name, p.command, p.args) };
  },
};

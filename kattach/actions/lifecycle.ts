/**
 * Guest lifecycle actions. Each resolves the instance, then hands the work to the supervisor
 * (kattach/supervisor.ts), which owns the QEMU processes.
 */
import { UserError } from "../../lib/errors.ts";
import { getRuntime, patchRuntime, setInstancePolicy } from "../store_instances.ts";
import { supervisorOf, withRuntime } from "../supervisor.ts";
import { guestNetwork, netlinkOf, nicCounters } from "../network.ts";
import { instanceMachine, instancePaths } from "../instance_runtime.ts";
import { instanceRoot } from "../storage.ts";
import { lastLogLines } from "../../host/mod.ts";
import { stripControlsLine } from "../../lib/mod.ts";
import { resolveInstance } from "./instance.ts";
import { allowedQmpCommands, qmpVerdict } from "../../vmimage/mod.ts";
import type { ActionContext, QmpEventWatch } from "../../ipc/mod.ts";
import type { Handlers, Kattach } from "./_types.ts";

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
  | "instance.log"
  | "qmp"
  | "qmp.commands"
  | "qmp.events"
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
      const inst = withRuntime(k, resolveInstance(k.store, p.name));
      return { ...inst, machine: instanceMachine(k, inst, getRuntime(k.store, p.name).machine) };
    });
  },
  "instance.console"(k, p) {
    resolveInstance(k.store, p.name);
    return { instance: p.name, socket: supervisorOf(k).consoleSocket(p.name) };
  },
  async "instance.stats"(k, p) {
    const inst = resolveInstance(k.store, p.name);
    const stats = await supervisorOf(k).stats(p.name);
    return { ...stats, net: await nicCounters(guestNetwork(k, inst).nics, netlinkOf(k)) };
  },
  async "instance.log"(k, p) {
    resolveInstance(k.store, p.name);
    // This boot's output and the earlier ones' (serial.log.1 after a rotation); none before the
    // first start. Text from the guest: no control characters leave kattach.
    const file = instancePaths(instanceRoot(k, p.name), p.name).serialLog;
    const lines = await lastLogLines(file, p.lines ?? 50);
    return { instance: p.name, file, lines: lines.map(stripControlsLine) };
  },
  async "qmp"(k, p) {
    resolveInstance(k.store, p.name);
    const verdict = qmpVerdict(p.command);
    if (!verdict.allowed) {
      k.log(`qmp: refused ${p.command} to ${p.name}`);
      throw new UserError(`Cannot send ${p.command} to ${p.name}: ${verdict.rule}`, {
        hint: `see \`qmp ${p.name} --list\` for the commands allowed here`,
        code: "refused",
      });
    }
    return { command: p.command, return: await supervisorOf(k).qmp(p.name, p.command, p.args) };
  },
  async "qmp.commands"(k, p) {
    resolveInstance(k.store, p.name);
    const reply = await supervisorOf(k).qmp(p.name, "query-commands");
    const names = Array.isArray(reply)
      ? reply.map((c) => (c as { name?: unknown }).name).filter((n) => typeof n === "string")
      : [];
    const allowed = allowedQmpCommands([...new Set(names as string[])]);
    return { instance: p.name, commands: allowed.sort() };
  },
  "qmp.events"(k, p, ctx) {
    resolveInstance(k.store, p.name);
    return watchEvents(k, p, ctx);
  },
};

/** Default seconds of `qmp events`. */
const DEFAULT_WATCH_SECONDS = 10;

/**
 * Sends each QMP event of a running instance to the caller as a progress frame (the event as
 * JSON) until the time runs out, `count` events went out or QEMU goes away.
 */
async function watchEvents(
  k: Kattach,
  p: { name: string; seconds?: number; count?: number },
  ctx: ActionContext,
): Promise<QmpEventWatch> {
  const seconds = p.seconds ?? DEFAULT_WATCH_SECONDS;
  const stop = new AbortController();
  const callerGone = () => stop.abort();
  ctx.signal.addEventListener("abort", callerGone, { once: true });
  const events = supervisorOf(k).events(p.name, stop.signal); // subscribed from here on
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    stop.abort();
  }, seconds * 1000);
  const started = performance.now();
  ctx.progress(
    `Watching the QMP events of ${p.name} for ${seconds} s` +
      (p.count ? ` or ${p.count} events` : "") + ".",
  );
  let sent = 0;
  try {
    for await (const ev of events) {
      ctx.progress(JSON.stringify(ev), ++sent, p.count);
      if (p.count !== undefined && sent >= p.count) break;
    }
  } finally {
    clearTimeout(timer);
    ctx.signal.removeEventListener("abort", callerGone);
    stop.abort();
  }
  const ended = p.count !== undefined && sent >= p.count ? "count" : timedOut ? "time" : "closed";
  if (ctx.signal.aborted) k.log(`qmp: events watch of ${p.name} ended: the caller went away`);
  return {
    instance: p.name,
    events: sent,
    seconds: Math.round((performance.now() - started) / 100) / 10,
    ended,
  };
}

/**
 * Module management through the guest agent (docs/modules.md): appmgr actions of module commands
 * (reload-config, run, stats, logs, restart-instance), configuration changes applied to the
 * running instances of a group (reload through the agent, or restart, as appmgr.aq says), and the
 * guest-side figures of `instance stats`. The supervisor hands itself in as an {@linkcode AgentHost}.
 */
import { type AppmgrActionType, configChangeMode, resolveConfigValues } from "../appqueue/mod.ts";
import type {
  ConfigApplyOutcome,
  GuestStats,
  Instance,
  Module,
  ModuleRunResult,
} from "../ipc/mod.ts";
import { UserError } from "../lib/errors.ts";
import { stripControlsLine } from "../lib/mod.ts";
import {
  agentApplyConfig,
  type AgentClient,
  type AgentDeclarations,
  agentLogs,
  AgentRequestError,
  agentRun,
  agentStats,
  agentSysinfo,
  AgentTimeoutError,
  renderModuleConfig,
} from "../vmimage/mod.ts";
import type { Kattach } from "./context.ts";

/** What a module action asks the guest to do. */
export interface ModuleActionRequest {
  instance: string;
  module: string;
  command: string;
  action: { name: string; type: AppmgrActionType; command?: string };
  /** `logs` actions: how many lines. */
  lines?: number;
}

/** What a module action produced: a line for the operator, and figures or output lines. */
export type ModuleActionOutcome = Omit<ModuleRunResult, "module" | "command" | "instance">;

/** What module management needs from the supervisor. */
export interface AgentHost {
  /** The connected agent of a running instance (a UserError when it is not running). */
  agent(name: string): Promise<AgentClient>;
  /** Stops and starts the instance. */
  restart(name: string): Promise<Instance>;
  /** True while the instance's QEMU runs. */
  isAlive(name: string): boolean;
}

/** Slack on top of a command's own timeout (the agent's `timeout`) for the reply to arrive. */
const REPLY_SLACK_MS = 5000;

/** The agent declarations of a module, for its config disk; undefined when it declares none. */
export function agentDeclarations(m: Pick<Module, "appmgr">): AgentDeclarations | undefined {
  const a = m.appmgr;
  if (!a.reload && a.commands.length === 0 && !a.logs) return undefined;
  return {
    ...(a.reload ? { reload: a.reload } : {}),
    commands: a.commands.map((c) => ({
      name: c.name,
      exec: c.exec,
      timeoutSeconds: c.timeoutSeconds,
    })),
    ...(a.logs ? { logs: a.logs.path } : {}),
  };
}

/** Text from a guest, made safe for a terminal: CSI sequences and control characters go. */
export function guestText(text: string): string {
  // deno-lint-ignore no-control-regex
  return stripControlsLine(text.replace(/\x1b\[[0-9;?]*[ -/]*[@-~]/g, ""));
}

function outputLines(output: string): string[] {
  const lines = output.split("\n").map(guestText);
  if (lines.at(-1) === "") lines.pop();
  return lines;
}

/** Carries out the appmgr action behind a module command in a running instance. */
export async function runModuleAction(
  k: Kattach,
  host: AgentHost,
  req: ModuleActionRequest,
): Promise<ModuleActionOutcome> {
  const mod = k.store.getModule(req.module)!;
  const what = `${req.module} ${req.command} on ${req.instance}`;
  const timeoutMs = (s: number) => s * 1000 + REPLY_SLACK_MS;
  try {
    switch (req.action.type) {
      case "restart-instance": {
        const inst = await host.restart(req.instance);
        return { message: `${req.instance} restarted (${inst.state})` };
      }
      case "reload-config": {
        const o = await applyToInstance(k, host, { instance: req.instance, module: mod });
        if (!o.ok) throw new UserError(`Cannot run ${what}: ${o.detail}`);
        return { message: o.detail };
      }
      case "run": {
        const c = mod.appmgr.commands.find((x) => x.name === req.action.command)!;
        const r = await agentRun(await host.agent(req.instance), {
          module: mod.name,
          command: c.name,
        }, { timeoutMs: timeoutMs(c.timeoutSeconds) });
        return {
          message: r.code === 0 ? "done" : `exited with code ${r.code}`,
          code: r.code,
          lines: outputLines(r.output),
        };
      }
      case "stats": {
        const c = mod.appmgr.commands.find((x) => x.name === req.action.command)!;
        const stats = await agentStats(await host.agent(req.instance), {
          module: mod.name,
          command: c.name,
        }, { timeoutMs: timeoutMs(c.timeoutSeconds) });
        const clean = Object.fromEntries(
          Object.entries(stats).map(([key, v]) => [guestText(key), guestText(v)]),
        );
        return { message: `${Object.keys(clean).length} figures`, stats: clean };
      }
      case "logs": {
        const r = await agentLogs(await host.agent(req.instance), {
          module: mod.name,
          lines: req.lines ?? 20,
        }, { timeoutMs: 10_000 });
        return { message: guestText(r.file), lines: outputLines(r.output) };
      }
    }
  } catch (err) {
    throw agentError(what, err);
  }
}

/** Turns what the agent channel threw into an operator's error (others pass through). */
function agentError(what: string, err: unknown): unknown {
  if (err instanceof AgentTimeoutError) {
    return new UserError(`Cannot run ${what}: ${err.message}`, {
      hint: "the guest may still be booting, or it hangs; see `instance console`",
      code: "timeout",
      cause: err,
    });
  }
  if (err instanceof AgentRequestError) {
    return new UserError(`Cannot run ${what}: ${guestText(err.message)}`, { cause: err });
  }
  return err;
}

/**
 * Applies a configuration group's current values to every instance whose VM image uses it:
 * running ones reload (agent) or restart as their module's appmgr.aq says; the others are
 * reported as stored (their next start reads the new values). Instances run in parallel, each
 * with its own deadline.
 */
export async function applyConfigChange(
  k: Kattach,
  host: AgentHost,
  groupName: string,
): Promise<ConfigApplyOutcome[]> {
  const group = k.store.getConfigGroup(groupName);
  if (!group) return [];
  const mod = k.store.getModule(group.module);
  if (!mod) return [];
  const images = new Set(
    k.store.listVmImages().filter((i) => i.configGroups.includes(groupName)).map((i) => i.name),
  );
  const instances = k.store.listInstances().filter((i) => images.has(i.vmimage));
  return await Promise.all(instances.map((inst) => {
    if (!host.isAlive(inst.name)) {
      return {
        instance: inst.name,
        mode: "stored" as const,
        ok: true,
        detail: `${inst.state}: the next start uses the new values`,
      };
    }
    return applyToInstance(k, host, { instance: inst.name, module: mod });
  }));
}

async function applyToInstance(
  k: Kattach,
  host: AgentHost,
  o: { instance: string; module: Module },
): Promise<ConfigApplyOutcome> {
  const m = o.module;
  const mode = configChangeMode(m.appmgr);
  const start = performance.now();
  const took = () => `${Math.round(performance.now() - start)} ms`;
  try {
    if (mode === "restart") {
      const inst = await host.restart(o.instance);
      return {
        instance: o.instance,
        mode,
        ok: true,
        detail: `restarted (${inst.state}) in ${took()}`,
      };
    }
    const inst = k.store.getInstance(o.instance)!;
    const image = k.store.getVmImage(inst.vmimage);
    const group = image?.configGroups.map((g) => k.store.getConfigGroup(g))
      .find((g) => g?.module === m.name);
    const values = resolveConfigValues(m.climod, group?.values ?? {}, { module: m.name });
    const files = renderModuleConfig({ name: m.name, config: values as Record<string, string> });
    const r = await agentApplyConfig(await host.agent(o.instance), {
      module: m.name,
      ...files,
    }, { timeoutMs: m.appmgr.reload!.timeoutSeconds * 1000 + REPLY_SLACK_MS });
    if (r.code !== 0) {
      const tail = outputLines(r.output).slice(-3).join(" / ");
      return {
        instance: o.instance,
        mode,
        ok: false,
        detail: `the reload command exited with code ${r.code}${tail ? `: ${tail}` : ""}`,
      };
    }
    return { instance: o.instance, mode, ok: true, detail: `reloaded in ${took()}` };
  } catch (err) {
    const e = agentError(`the reload of ${m.name}`, err);
    return {
      instance: o.instance,
      mode,
      ok: false,
      detail: e instanceof Error ? e.message : String(e),
    };
  }
}

/** The guest's own figures for `instance stats`; null when the agent does not answer in 3 s. */
export async function guestFigures(agent: AgentClient | null): Promise<GuestStats["guest"]> {
  if (!agent) return null;
  try {
    const s = await agentSysinfo(agent, { timeoutMs: 3000 });
    return {
      uptimeSeconds: s.uptime,
      load: s.load,
      memTotalBytes: s.memTotalKiB * 1024,
      memAvailableBytes: s.memAvailableKiB * 1024,
      disks: s.disks.map((d) => ({
        mount: guestText(d.mount),
        sizeBytes: d.sizeKiB * 1024,
        usedBytes: d.usedKiB * 1024,
      })),
    };
  } catch {
    return null;
  }
}

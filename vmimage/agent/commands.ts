/** Typed guest agent requests (kaos-agent/1) over an {@linkcode AgentClient}; each result checked. */
import { z } from "zod";
import { describeIssues } from "../../lib/errors.ts";
import type { AgentClient, AgentRequestOptions } from "./client.ts";
import { LogsResult, PingResult, RunResult, StatsResult, SysinfoResult } from "./protocol.ts";

function check<T>(schema: z.ZodType<T>, op: string, value: unknown): T {
  const r = schema.safeParse(value);
  if (!r.success) {
    throw new Error(
      `The guest agent's ${op} reply is malformed: ${describeIssues(r.error.issues)}`,
    );
  }
  return r.data;
}

function b64(text: string): string {
  const bytes = new TextEncoder().encode(text);
  let bin = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    bin += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(bin);
}

/** The agent's version and the guest's uptime. */
export async function agentPing(a: AgentClient, o?: AgentRequestOptions): Promise<PingResult> {
  return check(PingResult, "ping", await a.request({ op: "ping" }, o));
}

/** Load, memory and filesystem use inside the guest. */
export async function agentSysinfo(
  a: AgentClient,
  o?: AgentRequestOptions,
): Promise<SysinfoResult> {
  return check(SysinfoResult, "sysinfo", await a.request({ op: "sysinfo" }, o));
}

/**
 * Writes a module's configuration files (`config/<m>.env` and `.json` as the config disk holds
 * them) in the guest, then runs the module's declared reload command.
 */
export async function agentApplyConfig(
  a: AgentClient,
  req: { module: string; env: string; json: string },
  o?: AgentRequestOptions,
): Promise<RunResult> {
  const r = await a.request(
    { op: "apply-config", module: req.module, env: b64(req.env), json: b64(req.json) },
    o,
  );
  return check(RunResult, "apply-config", r);
}

/** Runs a command the module declares in appmgr.aq. */
export async function agentRun(
  a: AgentClient,
  req: { module: string; command: string },
  o?: AgentRequestOptions,
): Promise<RunResult> {
  return check(RunResult, "run", await a.request({ op: "run", ...req }, o));
}

/** Runs a declared stats command and returns its `name value` lines as an object. */
export async function agentStats(
  a: AgentClient,
  req: { module: string; command: string },
  o?: AgentRequestOptions,
): Promise<Record<string, string>> {
  return check(StatsResult, "stats", await a.request({ op: "stats", ...req }, o)).stats;
}

/** The last `lines` lines of the module's log. */
export async function agentLogs(
  a: AgentClient,
  req: { module: string; lines: number },
  o?: AgentRequestOptions,
): Promise<LogsResult> {
  return check(LogsResult, "logs", await a.request({ op: "logs", ...req }, o));
}

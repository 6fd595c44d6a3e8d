/**
 * The guest agent protocol `kaos-agent/1` (docs/guest.md): one JSON object per line each way.
 * Requests are flat objects whose values are integers or strings of a safe alphabet (binary data
 * goes base64-encoded), so the busybox-sh agent in the guest can check them strictly. Replies
 * carry the request's id; each op's result has its own schema.
 */
import { z } from "zod";
import { lazySchema } from "../../lib/lazy_schema.ts";

/** The protocol version both ends speak. */
export const AGENT_PROTOCOL_VERSION = 1;
/** The virtio-serial port name the guest agent opens. */
export const AGENT_PORT_NAME = "org.kaos.agent.0";

const Safe = lazySchema(() =>
  z.string().max(1 << 20).regex(/^[A-Za-z0-9+/=._-]*$/, "unsafe characters")
);
const Module = lazySchema(() => z.string().regex(/^[a-z][a-z0-9-]{0,31}$/));
const Command = lazySchema(() => z.string().regex(/^[a-z][a-z0-9_]{0,31}$/));
const Id = lazySchema(() => z.number().int().min(1).max(2 ** 31));
const base = lazySchema(() => (
  { v: z.literal(AGENT_PROTOCOL_VERSION), id: Id }
));

/** One request, as kattach sends it. */
export const AgentRequest = lazySchema(() =>
  z.discriminatedUnion("op", [
    z.strictObject({ ...base, op: z.literal("ping") }),
    z.strictObject({ ...base, op: z.literal("sysinfo") }),
    z.strictObject({
      ...base,
      op: z.literal("apply-config"),
      module: Module,
      env: Safe,
      json: Safe,
    }),
    z.strictObject({ ...base, op: z.literal("run"), module: Module, command: Command }),
    z.strictObject({ ...base, op: z.literal("stats"), module: Module, command: Command }),
    z.strictObject({
      ...base,
      op: z.literal("logs"),
      module: Module,
      lines: z.number().int().min(1).max(5000),
    }),
  ])
);
export type AgentRequest = z.infer<typeof AgentRequest>;
/** The ops of the protocol. */
export type AgentOp = AgentRequest["op"];

/** One reply line: the request's id and either a result or an error message. */
export const AgentReply = lazySchema(() =>
  z.discriminatedUnion("ok", [
    z.strictObject({
      v: z.literal(AGENT_PROTOCOL_VERSION),
      id: z.number().int(),
      ok: z.literal(true),
      result: z.unknown(),
    }),
    z.strictObject({
      v: z.literal(AGENT_PROTOCOL_VERSION),
      id: z.number().int(),
      ok: z.literal(false),
      error: z.string().max(1 << 16),
    }),
  ])
);
export type AgentReply = z.infer<typeof AgentReply>;

const Text = lazySchema(() => z.string().max(1 << 20));

/** `ping`: the agent's version, the instance it serves and the guest's uptime (s). */
export const PingResult = lazySchema(() =>
  z.strictObject({
    version: z.string().max(64),
    instance: z.string().max(64),
    uptime: z.number().min(0),
  })
);
export type PingResult = z.infer<typeof PingResult>;

/** `sysinfo`: load averages, memory (KiB) and mounted filesystems' use. */
export const SysinfoResult = lazySchema(() =>
  z.strictObject({
    uptime: z.number().min(0),
    load: z.tuple([z.number(), z.number(), z.number()]),
    memTotalKiB: z.number().int().min(0),
    memAvailableKiB: z.number().int().min(0),
    disks: z.array(z.strictObject({
      mount: z.string().max(256),
      sizeKiB: z.number().int().min(0),
      usedKiB: z.number().int().min(0),
    })).max(64),
  })
);
export type SysinfoResult = z.infer<typeof SysinfoResult>;

/** `apply-config` and `run`: the exit code and (capped) output of the module's command. */
export const RunResult = lazySchema(() => z.strictObject({ code: z.number().int(), output: Text }));
export type RunResult = z.infer<typeof RunResult>;

/** `stats`: the module's stats command's `name value` lines as an object. */
export const StatsResult = lazySchema(() =>
  z.strictObject({
    code: z.literal(0),
    stats: z.record(z.string().max(128), z.string().max(4096)),
  })
);
export type StatsResult = z.infer<typeof StatsResult>;

/** `logs`: the log file read and its last lines. */
export const LogsResult = lazySchema(() =>
  z.strictObject({ file: z.string().max(256), output: Text })
);
export type LogsResult = z.infer<typeof LogsResult>;

/**
 * Typed QMP commands (STYLE rule 10): each sends one command through a monitor and validates
 * QEMU's reply with zod, turning QEMU's kebab-case members into camelCase fields.
 */
import { z } from "zod";
import { describeIssues } from "../../lib/mod.ts";
import { QmpProtocolError } from "./errors.ts";
import type { QmpExecuteOptions, QmpMonitor } from "./monitor.ts";

/** Anything that can run a QMP command; a QmpMonitor in practice. */
export type QmpExecutor = Pick<QmpMonitor, "execute">;

/** Options shared by the typed commands. */
export type QmpCommandOptions = QmpExecuteOptions;

const Empty = z.object({});
const Count = z.number().int().nonnegative();

/** QEMU's run states (QAPI `RunState`). */
export const RunState = z.enum([
  "debug",
  "inmigrate",
  "internal-error",
  "io-error",
  "paused",
  "postmigrate",
  "prelaunch",
  "finish-migrate",
  "restore-vm",
  "running",
  "save-vm",
  "shutdown",
  "suspended",
  "watchdog",
  "guest-panicked",
  "colo",
]);
export type RunState = z.infer<typeof RunState>;

/** Reply of `query-status`. */
export const VmStatus = z.object({ status: RunState, running: z.boolean() });
export type VmStatus = z.infer<typeof VmStatus>;

/** Reply of `query-version`. */
export const QemuVersion = z.object({
  qemu: z.object({ major: Count, minor: Count, micro: Count }),
  package: z.string(),
});
export type QemuVersion = z.infer<typeof QemuVersion>;

/** One entry of `query-cpus-fast`. */
export const CpuInfoFast = z.object({
  "cpu-index": Count,
  "qom-path": z.string(),
  "thread-id": z.number().int(),
  target: z.string(),
}).transform((c) => ({
  cpuIndex: c["cpu-index"],
  qomPath: c["qom-path"],
  threadId: c["thread-id"],
  target: c.target,
}));
export type CpuInfoFast = z.output<typeof CpuInfoFast>;

const BlockDeviceStatsRaw = z.object({
  rd_bytes: Count,
  wr_bytes: Count,
  rd_operations: Count,
  wr_operations: Count,
  flush_operations: Count,
  rd_total_time_ns: Count,
  wr_total_time_ns: Count,
  flush_total_time_ns: Count,
});

/** One entry of `query-blockstats`: a drive's I/O counters. */
export const BlockStats = z.object({
  device: z.string().optional(),
  "node-name": z.string().optional(),
  qdev: z.string().optional(),
  stats: BlockDeviceStatsRaw,
}).transform((b) => ({
  device: b.device ?? "",
  nodeName: b["node-name"] ?? "",
  qdev: b.qdev ?? "",
  stats: {
    rdBytes: b.stats.rd_bytes,
    wrBytes: b.stats.wr_bytes,
    rdOperations: b.stats.rd_operations,
    wrOperations: b.stats.wr_operations,
    flushOperations: b.stats.flush_operations,
    rdTotalTimeNs: b.stats.rd_total_time_ns,
    wrTotalTimeNs: b.stats.wr_total_time_ns,
    flushTotalTimeNs: b.stats.flush_total_time_ns,
  },
}));
export type BlockStats = z.output<typeof BlockStats>;

/** Reply of `query-memory-size-summary`, in bytes. */
export const MemorySizeSummary = z.object({
  "base-memory": Count,
  "plugged-memory": Count.optional(),
}).transform((m) => ({ baseMemory: m["base-memory"], pluggedMemory: m["plugged-memory"] ?? 0 }));
export type MemorySizeSummary = z.output<typeof MemorySizeSummary>;

/** Reply of `query-balloon`: the guest's current memory in bytes. */
export const BalloonInfo = z.object({ actual: Count });
export type BalloonInfo = z.infer<typeof BalloonInfo>;

/** Runs a command and validates its reply; a reply of the wrong shape is a QmpProtocolError. */
export async function executeTyped<S extends z.ZodType>(
  monitor: QmpExecutor,
  request: { command: string; args?: Record<string, unknown>; schema: S },
  options: QmpCommandOptions = {},
): Promise<z.output<S>> {
  const raw = await monitor.execute(request.command, request.args, options);
  const parsed = request.schema.safeParse(raw);
  if (!parsed.success) {
    throw new QmpProtocolError(
      `Unexpected reply to ${request.command}: ${describeIssues(parsed.error.issues)}`,
      { cause: parsed.error },
    );
  }
  return parsed.data;
}

/** `query-status`: the VM's run state and whether its CPUs run. */
export function queryStatus(monitor: QmpExecutor, options?: QmpCommandOptions): Promise<VmStatus> {
  return executeTyped(monitor, { command: "query-status", schema: VmStatus }, options);
}

/** `cont`: resumes the VM's CPUs (emits RESUME). */
export async function cont(monitor: QmpExecutor, options?: QmpCommandOptions): Promise<void> {
  await executeTyped(monitor, { command: "cont", schema: Empty }, options);
}

/** `stop`: pauses the VM's CPUs (emits STOP). */
export async function stop(monitor: QmpExecutor, options?: QmpCommandOptions): Promise<void> {
  await executeTyped(monitor, { command: "stop", schema: Empty }, options);
}

/** `system_powerdown`: presses the ACPI power button (emits POWERDOWN); the guest decides. */
export async function systemPowerdown(
  monitor: QmpExecutor,
  options?: QmpCommandOptions,
): Promise<void> {
  await executeTyped(monitor, { command: "system_powerdown", schema: Empty }, options);
}

/** `system_reset`: hard-resets the VM (emits RESET). */
export async function systemReset(
  monitor: QmpExecutor,
  options?: QmpCommandOptions,
): Promise<void> {
  await executeTyped(monitor, { command: "system_reset", schema: Empty }, options);
}

/**
 * `quit`: makes QEMU exit at once, then closes the monitor. Resolves whether or not QEMU's
 * reply arrived before its socket closed. Waiting for the process to end is the caller's job.
 */
export async function quit(
  monitor: Pick<QmpMonitor, "execute" | "close">,
  options?: QmpCommandOptions,
): Promise<void> {
  try {
    await monitor.execute("quit", undefined, options);
  } finally {
    await monitor.close();
  }
}

/** `query-commands`: the names of the commands this QEMU supports. */
export async function queryCommands(
  monitor: QmpExecutor,
  options?: QmpCommandOptions,
): Promise<string[]> {
  const schema = z.array(z.object({ name: z.string() }));
  const list = await executeTyped(monitor, { command: "query-commands", schema }, options);
  return list.map((c) => c.name);
}

/** `query-cpus-fast`: the VM's vCPUs with their host thread ids. */
export function queryCpusFast(
  monitor: QmpExecutor,
  options?: QmpCommandOptions,
): Promise<CpuInfoFast[]> {
  return executeTyped(
    monitor,
    { command: "query-cpus-fast", schema: z.array(CpuInfoFast) },
    options,
  );
}

/** `query-blockstats`: I/O counters of every drive. */
export function queryBlockstats(
  monitor: QmpExecutor,
  options?: QmpCommandOptions,
): Promise<BlockStats[]> {
  return executeTyped(
    monitor,
    { command: "query-blockstats", schema: z.array(BlockStats) },
    options,
  );
}

/** `query-memory-size-summary`: boot memory and hot-plugged memory in bytes. */
export function queryMemorySizeSummary(
  monitor: QmpExecutor,
  options?: QmpCommandOptions,
): Promise<MemorySizeSummary> {
  return executeTyped(
    monitor,
    { command: "query-memory-size-summary", schema: MemorySizeSummary },
    options,
  );
}

/**
 * `query-balloon`: the guest's memory as the balloon driver sees it. Rejects with a QmpError of
 * class "DeviceNotActive" when the VM has no balloon device.
 */
export function queryBalloon(
  monitor: QmpExecutor,
  options?: QmpCommandOptions,
): Promise<BalloonInfo> {
  return executeTyped(monitor, { command: "query-balloon", schema: BalloonInfo }, options);
}

/** `query-version`: QEMU's version. */
export function queryVersion(
  monitor: QmpExecutor,
  options?: QmpCommandOptions,
): Promise<QemuVersion> {
  return executeTyped(monitor, { command: "query-version", schema: QemuVersion }, options);
}

/** `human-monitor-command`: runs an HMP command line (e.g. "info status") and returns its text. */
export function humanMonitorCommand(
  monitor: QmpExecutor,
  commandLine: string,
  options?: QmpCommandOptions,
): Promise<string> {
  return executeTyped(monitor, {
    command: "human-monitor-command",
    args: { "command-line": commandLine },
    schema: z.string(),
  }, options);
}

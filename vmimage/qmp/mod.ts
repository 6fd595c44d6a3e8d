/**
 * Typed QMP client for QEMU: a monitor (unix-socket transport with ids, events and timeouts)
 * and typed commands with zod-validated replies.
 *
 * ```ts
 * const monitor = await QmpMonitor.connect("/run/kaos/vm1.qmp", { timeoutMs: 5000 });
 * const stopped = monitor.waitEvent("STOP");
 * await stop(monitor);
 * await stopped;
 * console.log(await queryStatus(monitor)); // { status: "paused", running: false }
 * await quit(monitor);
 * ```
 */
export {
  type QmpConnectOptions,
  type QmpEventsOptions,
  type QmpExecuteOptions,
  QmpMonitor,
  type QmpWaitEventOptions,
} from "./monitor.ts";
export { QmpErrorReply, QmpEvent, QmpGreeting, QmpReturn } from "./messages.ts";
export { QmpClosedError, QmpError, QmpProtocolError, QmpTimeoutError } from "./errors.ts";
export {
  BalloonInfo,
  BlockStats,
  cont,
  CpuInfoFast,
  executeTyped,
  humanMonitorCommand,
  MemorySizeSummary,
  QemuVersion,
  queryBalloon,
  queryBlockstats,
  queryCommands,
  queryCpusFast,
  queryMemorySizeSummary,
  queryStatus,
  queryVersion,
  quit,
  RunState,
  stop,
  systemPowerdown,
  systemReset,
  VmStatus,
} from "./commands.ts";
export type { QmpCommandOptions, QmpExecutor } from "./commands.ts";
export {
  allowedQmpCommands,
  QMP_ALLOWLIST_RULE,
  type QmpVerdict,
  qmpVerdict,
} from "./allowlist.ts";

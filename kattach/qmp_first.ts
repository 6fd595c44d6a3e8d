/**
 * The first QMP exchange with a QEMU that kattach starts (deploy, start, autostart at boot) or
 * re-attaches after a restart: the connection (socket, greeting, capabilities) and then
 * `query-status`, under one deadline. The status had a fixed 5 s of its own: on a loaded machine
 * (nested TCG at the appliance's boot) a QEMU that had answered the connection could take longer
 * to answer it, and an autostart that would have succeeded failed.
 */
import { QmpMonitor, queryStatus, type VmStatus } from "../vmimage/mod.ts";

/**
 * How long a QEMU has for its whole first exchange. Not 10 s: a guest autostarted at the
 * appliance's boot under nested TCG on a loaded host took 7-10 s just to create its socket, and
 * both autostarts failed. A peer that is not QMP fails at once (QmpMonitor.connect).
 */
export const QMP_FIRST_EXCHANGE_MS = 60_000;

/** What `query-status` gets at least, however little of the deadline the connection left. */
const STATUS_AT_LEAST_MS = 5000;

/** A first exchange under way: the connection, begun at once, and the deadline of the whole. */
export interface FirstContact {
  connecting: Promise<QmpMonitor>;
  /** Date.now() by which the connection and the status must both have come. */
  deadline: number;
  /** What the status gets at least. */
  statusAtLeastMs: number;
}

/** How {@linkcode beginFirstContact} connects. */
export interface FirstContactOptions {
  /** The whole exchange's budget (default {@linkcode QMP_FIRST_EXCHANGE_MS}). */
  budgetMs?: number;
  /** What `query-status` gets at least, past the deadline if need be (default 5 s). */
  statusAtLeastMs?: number;
  /** Gives up when it aborts (QEMU exited). */
  signal?: AbortSignal;
  /** Where the monitor logs. */
  log?: (message: string) => void;
}

/** Begins the first exchange with the QEMU whose QMP socket is `socketPath`: connects. */
export function beginFirstContact(socketPath: string, o: FirstContactOptions = {}): FirstContact {
  const budget = o.budgetMs ?? QMP_FIRST_EXCHANGE_MS;
  const deadline = Date.now() + budget;
  const connecting = QmpMonitor.connect(socketPath, {
    timeoutMs: budget,
    log: o.log,
    signal: o.signal,
  });
  return { connecting, deadline, statusAtLeastMs: o.statusAtLeastMs ?? STATUS_AT_LEAST_MS };
}

/**
 * Ends the first exchange: the connection, then `query-status` within what is left of the
 * deadline (at least `statusAtLeastMs`). A failed status closes the connection; the error is
 * the caller's.
 */
export async function finishFirstContact(
  contact: FirstContact,
): Promise<{ monitor: QmpMonitor; status: VmStatus }> {
  const monitor = await contact.connecting;
  try {
    const timeoutMs = Math.max(contact.statusAtLeastMs, contact.deadline - Date.now());
    return { monitor, status: await queryStatus(monitor, { timeoutMs }) };
  } catch (err) {
    await monitor.close();
    throw err;
  }
}

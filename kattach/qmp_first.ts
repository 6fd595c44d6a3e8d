/**
 * The first QMP exchange with a QEMU that kattach starts (deploy, start, autostart at boot) or
 * re-attaches after a restart: the connection (socket, greeting, capabilities) and then
 * `query-status`, under one deadline. The status had a fixed 5 s of its own: on a loaded machine
 * (nested TCG at the appliance's boot) a QEMU that had answered the connection could take longer
 * to answer it, and an autostart that would have succeeded failed.
 */
import { QmpMonitor, QmpTimeoutError, queryStatus, type VmStatus } from "../vmimage/mod.ts";

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
  /** `query-status`, sent right behind the capabilities (pipelined); undefined until connected. */
  status(): Promise<VmStatus> | undefined;
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

/**
 * Begins the first exchange with the QEMU whose QMP socket is `socketPath`: connects, and sends
 * `qmp_capabilities` and `query-status` at once, before QEMU's greeting (QmpMonitor's pipeline:
 * QEMU answers all three in a row, one round trip instead of three).
 */
export function beginFirstContact(socketPath: string, o: FirstContactOptions = {}): FirstContact {
  const budget = o.budgetMs ?? QMP_FIRST_EXCHANGE_MS;
  const deadline = Date.now() + budget;
  const statusAtLeastMs = o.statusAtLeastMs ?? STATUS_AT_LEAST_MS;
  let status: Promise<VmStatus> | undefined;
  const connecting = QmpMonitor.connect(socketPath, {
    timeoutMs: budget,
    log: o.log,
    signal: o.signal,
    pipeline: (monitor) => {
      // Its own limit is the latest the exchange may end; finishFirstContact holds it to what is
      // left of the deadline once connected.
      status = queryStatus(monitor, { timeoutMs: budget + statusAtLeastMs });
      status.catch(() => {}); // awaited by finishFirstContact; a failed connection is its error
    },
  });
  return { connecting, deadline, statusAtLeastMs, status: () => status };
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
    const sent = contact.status();
    return {
      monitor,
      status: sent ? await within(sent, timeoutMs) : await queryStatus(monitor, { timeoutMs }),
    };
  } catch (err) {
    await monitor.close();
    throw err;
  }
}

/** `p`, or a QmpTimeoutError for `query-status` once `ms` have passed. */
async function within<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) =>
    timer = setTimeout(() => reject(new QmpTimeoutError("query-status", ms)), ms)
  );
  try {
    return await Promise.race([p, late]);
  } finally {
    clearTimeout(timer);
  }
}

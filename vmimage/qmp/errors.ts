/**
 * Errors of the QMP client. Each is a class because callers branch on it (STYLE rule 14):
 * a command QEMU refused, a reply that never came, a monitor that went away, a peer that does
 * not speak QMP.
 */

/** QEMU answered a command with an error reply, e.g. class "CommandNotFound" or "GenericError". */
export class QmpError extends Error {
  /** QMP's error class, e.g. "GenericError", "CommandNotFound", "DeviceNotActive". */
  readonly class: string;
  /** QEMU's human-readable description. */
  readonly desc: string;
  /** The command that failed. */
  readonly command: string;

  constructor(command: string, errorClass: string, desc: string) {
    super(`QMP command ${command} failed: ${errorClass}: ${desc}`);
    this.name = "QmpError";
    this.class = errorClass;
    this.desc = desc;
    this.command = command;
  }
}

/** No answer within the time limit: a command's reply, the greeting, or an awaited event. */
export class QmpTimeoutError extends Error {
  /** What was awaited, e.g. "query-status", "greeting" or "event STOP". */
  readonly operation: string;
  /** The limit that ran out, in milliseconds. */
  readonly timeoutMs: number;

  constructor(operation: string, timeoutMs: number, options: { cause?: unknown } = {}) {
    super(`QMP ${operation} timed out after ${timeoutMs} ms`, { cause: options.cause });
    this.name = "QmpTimeoutError";
    this.operation = operation;
    this.timeoutMs = timeoutMs;
  }
}

/** The monitor connection closed (QEMU exited, the socket broke, or close() was called). */
export class QmpClosedError extends Error {
  /** The command or wait that was cut short, or "" when none. */
  readonly operation: string;

  constructor(operation: string, options: { cause?: unknown } = {}) {
    super(
      operation === ""
        ? "QMP connection is closed"
        : `QMP connection closed before ${operation} completed`,
      { cause: options.cause },
    );
    this.name = "QmpClosedError";
    this.operation = operation;
  }
}

/** The peer sent something that is not QMP: a bad greeting, garbage, or a malformed reply. */
export class QmpProtocolError extends Error {
  constructor(message: string, options: { cause?: unknown } = {}) {
    super(message, { cause: options.cause });
    this.name = "QmpProtocolError";
  }
}

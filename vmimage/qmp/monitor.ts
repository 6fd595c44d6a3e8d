/**
 * The QMP transport (STYLE rule 10): a unix-socket connection to QEMU's monitor with line
 * framing, request ids, concurrent commands matched by id, timeouts and an event stream.
 * Typed commands live in commands.ts.
 */
import { LineSplitter } from "./_line_splitter.ts";
import { QmpClosedError, QmpError, QmpProtocolError, QmpTimeoutError } from "./errors.ts";
import { parseQmpLine, type QmpEvent, type QmpGreeting, type QmpMessage } from "./messages.ts";

/** Options of {@linkcode QmpMonitor.connect}. */
export interface QmpConnectOptions {
  /** Limit for connecting, the greeting and capability negotiation together; default 10 s. */
  timeoutMs?: number;
  /** Default limit for one command's reply and for waitEvent; default 30 s. */
  commandTimeoutMs?: number;
  /** Where protocol problems (garbage lines, stray replies, dropped events) are reported. */
  log?: (message: string) => void;
  /** How many recent events {@linkcode QmpMonitor.recentEvents} keeps; default 64. */
  eventHistory?: number;
  /**
   * Gives up when aborted (e.g. the QEMU being waited for exited), rejecting with the signal's
   * reason, instead of retrying until timeoutMs runs out.
   */
  signal?: AbortSignal;
  /**
   * Pipelines the start of the conversation: `qmp_capabilities` goes out as soon as the socket
   * is connected, before the greeting came, and then this is called with the monitor, whose
   * commands go out right behind it. QEMU reads them once its greeting is out and answers them
   * in a row: one round trip instead of one per command. Meant for a socket QEMU was handed
   * already listening (kattach's), where the connection comes before QEMU is ready to talk. A
   * command sent here that gets no answer because the connection failed rejects with
   * QmpClosedError: the caller handles it.
   */
  pipeline?: (monitor: QmpMonitor) => void;
}

/** Options of {@linkcode QmpMonitor.execute}. */
export interface QmpExecuteOptions {
  /** Limit for this command's reply; defaults to the monitor's commandTimeoutMs. */
  timeoutMs?: number;
}

/** Options of {@linkcode QmpMonitor.events}. */
export interface QmpEventsOptions {
  /** Ends the iteration when aborted. */
  signal?: AbortSignal;
  /** Events kept for a slow reader before the oldest are dropped (and logged); default 1000. */
  bufferSize?: number;
}

/** Options of {@linkcode QmpMonitor.waitEvent}. */
export interface QmpWaitEventOptions {
  /** Only an event for which this returns true counts. */
  predicate?: (event: QmpEvent) => boolean;
  /** Limit for the wait; defaults to the monitor's commandTimeoutMs. */
  timeoutMs?: number;
  /** Rejects the wait with the signal's reason when aborted. */
  signal?: AbortSignal;
}

interface Pending {
  command: string;
  resolve(value: unknown): void;
  reject(err: Error): void;
}

interface EventSink {
  push(event: QmpEvent): void;
  end(err: QmpClosedError): void;
}

/**
 * How often connect() tries again while the socket is not there: every 4 ms during the first
 * second (a QEMU just spawned opens it some 25 ms later under TCG; at 20 ms the wait was rounded
 * up by 10 ms on average, issue 13), then every 20 ms (a QEMU that is slow or hung).
 */
const CONNECT_RETRY_FAST_MS = 4;
const CONNECT_RETRY_FAST_FOR_MS = 1000;
const CONNECT_RETRY_MS = 20;

/** A connection to one QEMU's QMP monitor, ready for commands once connect() resolves. */
export class QmpMonitor {
  /** Settles (never rejects) once the connection is gone and nothing reads from it anymore. */
  readonly closed: Promise<void>;
  /**
   * How connect() went (for the start timelines kattach logs): the connection attempts made, the
   * ms until the socket accepted one, and the ms until the greeting and capabilities were done.
   */
  readonly connectStats = { tries: 0, socketMs: 0, readyMs: 0 };

  #conn: Deno.Conn;
  #log: (message: string) => void;
  #commandTimeoutMs: number;
  #historySize: number;
  #lines = new LineSplitter();
  #idPrefix = `kaos-${crypto.randomUUID().slice(0, 8)}-`;
  #nextId = 1;
  #pending = new Map<string, Pending>();
  #sinks = new Set<EventSink>();
  #history: QmpEvent[] = [];
  #writeChain: Promise<void> = Promise.resolve();
  #closedError: QmpClosedError | null = null;
  #greeting: QmpGreeting | null = null;
  #greetingWaiter: { resolve(g: QmpGreeting): void; reject(err: Error): void } | null = null;

  private constructor(conn: Deno.Conn, options: QmpConnectOptions) {
    this.#conn = conn;
    this.#log = options.log ?? ((m) => console.warn(`qmp: ${m}`));
    this.#commandTimeoutMs = options.commandTimeoutMs ?? 30_000;
    this.#historySize = options.eventHistory ?? 64;
    this.closed = this.#readLoop();
  }

  /**
   * Connects to QEMU's QMP unix socket, reads and validates the greeting and leaves
   * negotiation mode with `qmp_capabilities`. Waits for the socket to appear (QEMU creates it
   * shortly after start) until timeoutMs runs out.
   */
  static async connect(socketPath: string, options: QmpConnectOptions = {}): Promise<QmpMonitor> {
    const timeoutMs = options.timeoutMs ?? 10_000;
    const started = Date.now();
    const deadline = started + timeoutMs;
    const signal = options.signal;
    let conn: Deno.Conn;
    let tries = 0;
    for (;;) {
      signal?.throwIfAborted();
      try {
        tries++;
        conn = await Deno.connect({ transport: "unix", path: socketPath });
        break;
      } catch (err) {
        // Reset while connecting: the listener went away with our connection in its queue (a
        // QEMU handed its socket that exited at once). The connection closed, as a read would say.
        if (err instanceof Deno.errors.ConnectionReset) {
          signal?.throwIfAborted();
          throw new QmpClosedError("connect", { cause: err });
        }
        const retryable = err instanceof Deno.errors.NotFound ||
          err instanceof Deno.errors.ConnectionRefused;
        if (!retryable) throw err;
        if (Date.now() >= deadline) {
          throw new QmpTimeoutError(`connect to ${socketPath}`, timeoutMs, { cause: err });
        }
        const fast = Date.now() - started < CONNECT_RETRY_FAST_FOR_MS;
        await new Promise((r) => setTimeout(r, fast ? CONNECT_RETRY_FAST_MS : CONNECT_RETRY_MS));
      }
    }
    const monitor = new QmpMonitor(conn, options);
    monitor.connectStats.tries = tries;
    monitor.connectStats.socketMs = Date.now() - started;
    // Aborting closes the connection: the greeting or command under way rejects at once.
    const abort = () => monitor.close();
    signal?.addEventListener("abort", abort, { once: true });
    try {
      signal?.throwIfAborted();
      const capabilities = () =>
        monitor.execute("qmp_capabilities", undefined, {
          timeoutMs: Math.max(1, deadline - Date.now()),
        });
      const early = options.pipeline ? capabilities() : undefined;
      if (early) {
        early.catch(() => {}); // awaited after the greeting
        options.pipeline!(monitor);
      }
      await withTimeout(monitor.#waitGreeting(), {
        ms: Math.max(1, deadline - Date.now()),
        operation: "greeting",
      });
      await (early ?? capabilities());
      signal?.throwIfAborted();
    } catch (err) {
      signal?.removeEventListener("abort", abort);
      await monitor.close();
      if (signal?.aborted) throw signal.reason;
      throw err;
    }
    signal?.removeEventListener("abort", abort);
    monitor.connectStats.readyMs = Date.now() - started;
    return monitor;
  }

  /** QEMU's greeting: its version and offered capabilities. */
  get greeting(): QmpGreeting {
    if (this.#greeting === null) throw new QmpProtocolError("QMP greeting not received yet");
    return this.#greeting;
  }

  /** True once the connection is gone. */
  get isClosed(): boolean {
    return this.#closedError !== null;
  }

  /** The most recent events (oldest first), including those that arrived with no listener. */
  recentEvents(): QmpEvent[] {
    return [...this.#history];
  }

  /**
   * Runs one QMP command and resolves with its `return` value. Rejects with QmpError when QEMU
   * refuses it, QmpTimeoutError when no reply comes in time (QEMU may still carry it out), or
   * QmpClosedError when the connection goes away first. For `quit`, the connection closing
   * counts as success, because QEMU may exit before its reply is read.
   */
  execute(
    command: string,
    args?: Record<string, unknown>,
    options: QmpExecuteOptions = {},
  ): Promise<unknown> {
    if (this.#closedError !== null) return Promise.reject(new QmpClosedError(command));
    const id = `${this.#idPrefix}${this.#nextId++}`;
    let text: string;
    try {
      text = JSON.stringify(
        args === undefined ? { execute: command, id } : {
          execute: command,
          arguments: args,
          id,
        },
      ) + "\n";
    } catch (err) {
      return Promise.reject(err);
    }
    const timeoutMs = options.timeoutMs ?? this.#commandTimeoutMs;
    return new Promise<unknown>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(new QmpTimeoutError(command, timeoutMs));
      }, timeoutMs);
      this.#pending.set(id, {
        command,
        resolve: (value) => {
          clearTimeout(timer);
          resolve(value);
        },
        reject: (err) => {
          clearTimeout(timer);
          reject(err);
        },
      });
      this.#write(text).catch((err) => {
        const pending = this.#pending.get(id);
        if (pending === undefined) return;
        this.#pending.delete(id);
        this.#settleOnClose(pending, err);
      });
    });
  }

  /**
   * A stream of the events that arrive from now on, until the connection closes or the signal
   * aborts. Each call is an independent consumer; breaking out of the loop unsubscribes.
   */
  events(options: QmpEventsOptions = {}): AsyncIterableIterator<QmpEvent> {
    const bufferSize = options.bufferSize ?? 1000;
    const queue: QmpEvent[] = [];
    let waiter: ((r: IteratorResult<QmpEvent>) => void) | null = null;
    let done = false;
    let dropped = 0;
    const finish = () => {
      if (done) return;
      done = true;
      this.#sinks.delete(sink);
      options.signal?.removeEventListener("abort", finish);
      if (waiter !== null) {
        const w = waiter;
        waiter = null;
        w({ value: undefined, done: true });
      }
    };
    const sink: EventSink = {
      push: (event) => {
        if (waiter !== null) {
          const w = waiter;
          waiter = null;
          w({ value: event, done: false });
          return;
        }
        queue.push(event);
        if (queue.length > bufferSize) {
          queue.shift();
          if (dropped++ === 0) this.#log(`event reader too slow: dropping oldest events`);
        }
      },
      end: finish,
    };
    if (this.#closedError !== null || options.signal?.aborted) {
      done = true;
    } else {
      this.#sinks.add(sink);
      options.signal?.addEventListener("abort", finish, { once: true });
    }
    const iterator: AsyncIterableIterator<QmpEvent> = {
      next: () => {
        const event = queue.shift();
        if (event !== undefined) return Promise.resolve({ value: event, done: false });
        if (done) return Promise.resolve({ value: undefined, done: true });
        return new Promise((resolve) => (waiter = resolve));
      },
      return: () => {
        queue.length = 0;
        finish();
        return Promise.resolve({ value: undefined, done: true });
      },
      [Symbol.asyncIterator]: () => iterator,
    };
    return iterator;
  }

  /**
   * Resolves with the next event called `name` (that satisfies the predicate, if given).
   * Call it before the command that causes the event: events are not replayed.
   */
  waitEvent(name: string, options: QmpWaitEventOptions = {}): Promise<QmpEvent> {
    const operation = `event ${name}`;
    if (this.#closedError !== null) return Promise.reject(new QmpClosedError(operation));
    if (options.signal?.aborted) return Promise.reject(options.signal.reason);
    const timeoutMs = options.timeoutMs ?? this.#commandTimeoutMs;
    return new Promise<QmpEvent>((resolve, reject) => {
      const settle = (fn: () => void) => {
        clearTimeout(timer);
        this.#sinks.delete(sink);
        options.signal?.removeEventListener("abort", onAbort);
        fn();
      };
      const onAbort = () => settle(() => reject(options.signal?.reason));
      const sink: EventSink = {
        push: (event) => {
          if (event.event !== name) return;
          try {
            if (options.predicate !== undefined && !options.predicate(event)) return;
          } catch (err) {
            settle(() => reject(err));
            return;
          }
          settle(() => resolve(event));
        },
        end: (err) => settle(() => reject(new QmpClosedError(operation, { cause: err }))),
      };
      const timer = setTimeout(
        () => settle(() => reject(new QmpTimeoutError(operation, timeoutMs))),
        timeoutMs,
      );
      options.signal?.addEventListener("abort", onAbort, { once: true });
      this.#sinks.add(sink);
    });
  }

  /** Closes the connection: pending commands reject with QmpClosedError, event streams end. */
  async close(): Promise<void> {
    this.#shutdown(undefined);
    await this.closed;
  }

  /** Same as close(), for `await using`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  #waitGreeting(): Promise<QmpGreeting> {
    if (this.#greeting !== null) return Promise.resolve(this.#greeting);
    if (this.#closedError !== null) return Promise.reject(new QmpClosedError("greeting"));
    return new Promise((resolve, reject) => (this.#greetingWaiter = { resolve, reject }));
  }

  #failGreeting(why: string): void {
    this.#greetingWaiter?.reject(new QmpProtocolError(why));
    this.#greetingWaiter = null;
  }

  async #readLoop(): Promise<void> {
    const buf = new Uint8Array(64 * 1024);
    let cause: unknown = undefined;
    try {
      for (;;) {
        const n = await this.#conn.read(buf);
        if (n === null) break;
        const { lines, overflowed } = this.#lines.push(buf.subarray(0, n));
        if (overflowed) this.#log("dropping an over-long line from QEMU");
        for (const line of lines) this.#handleLine(line);
      }
    } catch (err) {
      // A read failing because close() closed the socket is the normal way out.
      if (this.#closedError === null) cause = err;
    }
    this.#shutdown(cause);
  }

  #handleLine(line: string): void {
    let message: QmpMessage;
    try {
      message = parseQmpLine(line);
    } catch (err) {
      if (this.#greeting === null) {
        // Not even JSON before the greeting (e.g. the human monitor's banner): fail at once
        // rather than wait out the connect deadline for a greeting that never comes.
        this.#failGreeting(`expected the QMP greeting, got ${(err as Error).message}`);
      } else {
        this.#log(`ignoring ${(err as Error).message}`);
      }
      return;
    }
    if (this.#greeting === null && message.kind !== "greeting") {
      // Whatever speaks first on a QMP socket must be the greeting; this peer is not QEMU.
      this.#failGreeting(`expected the QMP greeting, got a ${message.kind}: ${line}`);
      return;
    }
    switch (message.kind) {
      case "greeting":
        if (this.#greeting !== null) {
          this.#log("ignoring a second greeting");
          return;
        }
        this.#greeting = message.greeting;
        this.#greetingWaiter?.resolve(message.greeting);
        this.#greetingWaiter = null;
        return;
      case "return":
      case "error": {
        const pending = this.#takePending(message.reply.id, message.kind);
        if (pending === undefined) return;
        if (message.kind === "return") {
          pending.resolve(message.reply.return);
        } else {
          const { class: errorClass, desc } = message.reply.error;
          pending.reject(new QmpError(pending.command, errorClass, desc));
        }
        return;
      }
      case "event":
        this.#history.push(message.event);
        if (this.#history.length > this.#historySize) this.#history.shift();
        for (const sink of [...this.#sinks]) sink.push(message.event);
        return;
    }
  }

  #takePending(id: unknown, kind: string): Pending | undefined {
    if (typeof id === "string") {
      const pending = this.#pending.get(id);
      if (pending !== undefined) {
        this.#pending.delete(id);
        return pending;
      }
      // A late reply to a command that already timed out is expected; anything else is not.
      if (id.startsWith(this.#idPrefix)) return undefined;
    }
    this.#log(`ignoring a ${kind} with unknown id ${JSON.stringify(id) ?? "(none)"}`);
    return undefined;
  }

  async #write(text: string): Promise<void> {
    const bytes = new TextEncoder().encode(text);
    const write = this.#writeChain.then(async () => {
      let offset = 0;
      while (offset < bytes.length) offset += await this.#conn.write(bytes.subarray(offset));
    });
    this.#writeChain = write.catch(() => {});
    await write;
  }

  #settleOnClose(pending: Pending, cause: unknown): void {
    if (pending.command === "quit") pending.resolve({});
    else pending.reject(new QmpClosedError(pending.command, { cause }));
  }

  #shutdown(cause: unknown): void {
    if (this.#closedError !== null) return;
    this.#closedError = new QmpClosedError("", { cause });
    try {
      this.#conn.close();
    } catch {
      // Already closed by the peer.
    }
    const pending = [...this.#pending.values()];
    this.#pending.clear();
    for (const p of pending) this.#settleOnClose(p, cause);
    this.#greetingWaiter?.reject(new QmpClosedError("greeting", { cause }));
    this.#greetingWaiter = null;
    for (const sink of [...this.#sinks]) sink.end(this.#closedError);
    this.#sinks.clear();
  }
}

function withTimeout<T>(
  promise: Promise<T>,
  options: { ms: number; operation: string },
): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new QmpTimeoutError(options.operation, options.ms)),
      options.ms,
    );
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/**
 * The guest agent transport (STYLE rule 10): a unix-socket connection to the chardev QEMU exposes
 * for the guest's virtio-serial port, line framing, request ids, one request at a time (the
 * agent is sequential) and a deadline on every request. A reply that comes after its deadline is
 * dropped by id. Typed requests live in commands.ts.
 */
import { describeIssues } from "../../lib/errors.ts";
import { AGENT_PROTOCOL_VERSION, AgentReply, AgentRequest } from "./protocol.ts";

/** The agent did not answer within the deadline. */
export class AgentTimeoutError extends Error {
  constructor(op: string, ms: number, options?: ErrorOptions) {
    super(`the guest agent did not answer ${op} within ${ms} ms`, options);
    this.name = "AgentTimeoutError";
  }
}

/** The agent answered with an error (it refused or could not carry out the request). */
export class AgentRequestError extends Error {
  constructor(op: string, readonly reason: string) {
    super(`the guest agent refused ${op}: ${reason}`);
    this.name = "AgentRequestError";
  }
}

/** The connection to the agent's socket is gone (QEMU ended). */
export class AgentClosedError extends Error {
  constructor(op: string) {
    super(`the guest agent channel closed before ${op} was answered`);
    this.name = "AgentClosedError";
  }
}

/** Options of {@linkcode AgentClient.connect}. */
export interface AgentConnectOptions {
  /** How long to wait for QEMU's socket to appear; default 5 s. */
  timeoutMs?: number;
  /** Where protocol problems (garbage, stray replies) are reported. */
  log?: (message: string) => void;
}

/** Options of {@linkcode AgentClient.request}. */
export interface AgentRequestOptions {
  /** The deadline of this request, queueing included; default 10 s. */
  timeoutMs?: number;
}

/** Requests waiting behind the one in flight before new ones are refused at once. */
const MAX_QUEUED = 16;
/** A reply line longer than this is garbage. */
const MAX_LINE = 4 << 20;

type Body = AgentRequest extends infer R ? R extends AgentRequest ? Omit<R, "v" | "id"> : never
  : never;

interface Waiter {
  id: number;
  resolve(line: AgentReply): void;
}

/** A connection to one guest's agent. */
export class AgentClient {
  /** Settles once the connection is gone. */
  readonly closed: Promise<void>;
  #conn: Deno.Conn;
  #log: (message: string) => void;
  #nextId = 1;
  #waiter: Waiter | null = null;
  #chain: Promise<unknown> = Promise.resolve();
  #queued = 0;
  #isClosed = false;
  #closeWaiters = new Set<() => void>();

  private constructor(conn: Deno.Conn, options: AgentConnectOptions) {
    this.#conn = conn;
    this.#log = options.log ?? ((m) => console.warn(`agent: ${m}`));
    this.closed = this.#readLoop();
  }

  /** Connects to the agent socket QEMU serves (it exists shortly after QEMU starts). */
  static async connect(path: string, options: AgentConnectOptions = {}): Promise<AgentClient> {
    const timeoutMs = options.timeoutMs ?? 5000;
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      try {
        return new AgentClient(await Deno.connect({ transport: "unix", path }), options);
      } catch (err) {
        const retry = err instanceof Deno.errors.NotFound ||
          err instanceof Deno.errors.ConnectionRefused;
        if (!retry || Date.now() >= deadline) {
          throw new Error(`Cannot connect to the guest agent socket ${path}: ${message(err)}`, {
            cause: err,
          });
        }
        await new Promise((r) => setTimeout(r, 20));
      }
    }
  }

  /** True once the connection is gone. */
  get isClosed(): boolean {
    return this.#isClosed;
  }

  /**
   * Sends one request and resolves with its result (not yet checked against the op's schema:
   * commands.ts does that). Rejects with AgentTimeoutError past the deadline (queueing behind
   * earlier requests counts), AgentRequestError when the agent refuses, AgentClosedError when
   * the channel goes away.
   */
  request(body: Body, options: AgentRequestOptions = {}): Promise<unknown> {
    const op = body.op;
    const timeoutMs = options.timeoutMs ?? 10_000;
    if (this.#isClosed) return Promise.reject(new AgentClosedError(op));
    if (this.#queued >= MAX_QUEUED) {
      return Promise.reject(
        new AgentTimeoutError(op, 0, {
          cause: new Error(`${MAX_QUEUED} requests are waiting already`),
        }),
      );
    }
    const id = this.#nextId++;
    const parsed = AgentRequest.safeParse({ v: AGENT_PROTOCOL_VERSION, id, ...body });
    if (!parsed.success) {
      return Promise.reject(
        new TypeError(`Invalid agent request ${op}: ${describeIssues(parsed.error.issues)}`),
      );
    }
    const line = JSON.stringify(parsed.data) + "\n";
    const deadline = Date.now() + timeoutMs;
    this.#queued++;
    const run = this.#chain.catch(() => {}).then(() => this.#exchange(op, id, line, deadline));
    this.#chain = run;
    return run.finally(() => this.#queued--).then((reply) => {
      if (!reply.ok) throw new AgentRequestError(op, reply.error);
      return reply.result;
    });
  }

  /** Closes the connection (QEMU keeps serving the socket). */
  close(): Promise<void> {
    if (!this.#isClosed) {
      try {
        this.#conn.close();
      } catch { /* closed already */ }
    }
    return this.closed;
  }

  async #exchange(op: string, id: number, line: string, deadline: number): Promise<AgentReply> {
    const left = deadline - Date.now();
    if (left <= 0) throw new AgentTimeoutError(op, 0, { cause: new Error("queued too long") });
    if (this.#isClosed) throw new AgentClosedError(op);
    let timer: ReturnType<typeof setTimeout> | undefined;
    let onClose: (() => void) | undefined;
    try {
      return await new Promise<AgentReply>((resolve, reject) => {
        this.#waiter = { id, resolve };
        timer = setTimeout(() => reject(new AgentTimeoutError(op, left)), left);
        onClose = () => reject(new AgentClosedError(op));
        this.#closeWaiters.add(onClose);
        writeAll(this.#conn, new TextEncoder().encode(line)).catch(() =>
          reject(new AgentClosedError(op))
        );
      });
    } finally {
      clearTimeout(timer);
      if (onClose) this.#closeWaiters.delete(onClose);
      this.#waiter = null;
    }
  }

  async #readLoop(): Promise<void> {
    const dec = new TextDecoder();
    let buf = "";
    const chunk = new Uint8Array(64 * 1024);
    try {
      for (;;) {
        const n = await this.#conn.read(chunk);
        if (n === null) break;
        buf += dec.decode(chunk.subarray(0, n), { stream: true });
        let nl: number;
        while ((nl = buf.indexOf("\n")) >= 0) {
          this.#onLine(buf.slice(0, nl));
          buf = buf.slice(nl + 1);
        }
        if (buf.length > MAX_LINE) {
          this.#log(`dropped ${buf.length} bytes without a newline`);
          buf = "";
        }
      }
    } catch { /* the connection broke */ }
    this.#isClosed = true;
    try {
      this.#conn.close();
    } catch { /* closed already */ }
    for (const w of [...this.#closeWaiters]) w();
  }

  #onLine(text: string): void {
    if (text.trim() === "") return;
    let reply: AgentReply;
    try {
      const r = AgentReply.safeParse(JSON.parse(text));
      if (!r.success) throw new Error(describeIssues(r.error.issues));
      reply = r.data;
    } catch (err) {
      this.#log(`ignored a malformed line from the guest (${message(err)})`);
      return;
    }
    const w = this.#waiter;
    if (w === null || w.id !== reply.id) {
      this.#log(`ignored a reply to request ${reply.id}, answered too late`);
      return;
    }
    w.resolve(reply);
  }
}

async function writeAll(conn: Deno.Conn, data: Uint8Array): Promise<void> {
  let off = 0;
  while (off < data.length) off += await conn.write(data.subarray(off));
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

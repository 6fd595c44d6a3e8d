/**
 * The front-ends' side of the IPC channel: connects to kattach's socket, presents the token,
 * sends actions and validates every frame that comes back.
 */
import { describeIssues, UserError } from "../lib/errors.ts";
import { trimMallocSoon } from "../lib/idle_memory.ts";
import { compileCheck } from "./_fast_check.ts";
import { type ActionName, actions, type ParamsOf, type ResultOf } from "./actions.ts";
import {
  encodeFrame,
  type ErrorInfo,
  MAX_RESULT_FRAME_BYTES,
  type Origin,
  PROTOCOL_VERSION,
  readChunks,
  readLines,
  ServerFrame,
} from "./protocol.ts";
import { SOCKET_NAME, TOKEN_NAME } from "./server.ts";

/** Answers at least this long are followed by a malloc_trim (lib/idle_memory.ts). */
const TRIM_AFTER_CHARS = 512 * 1024;

/** kattach answered with an error; `info.kind` tells whose fault it was. */
export class IpcError extends UserError {
  /** The error as kattach sent it. */
  readonly info: ErrorInfo;

  constructor(info: ErrorInfo) {
    super(info.message, { hint: info.hint, code: info.code });
    this.name = "IpcError";
    this.info = info;
  }
}

/**
 * Validates a result where it enters the front-end: the compiled check first (it accepts only
 * what the schema accepts unchanged, at a quarter of zod's cost on `instance list` of 10,000), the
 * full zod parse when that says no or the schema is beyond it; a malformed result is an error.
 */
export function checkResult<A extends ActionName>(action: A, result: unknown): ResultOf<A> {
  const schema = actions[action].result;
  if (compileCheck(schema)?.(result)) return result as ResultOf<A>;
  const checked = schema.safeParse(result);
  if (!checked.success) {
    const issues = checked.error.issues;
    throw new Error(
      `kattach sent a malformed result for ${action}: ${describeIssues(issues.slice(0, 3))}${
        issues.length > 3 ? ` (and ${issues.length - 3} more)` : ""
      }`,
    );
  }
  return checked.data as ResultOf<A>;
}

/** Options of one call. */
export interface CallOptions {
  /** Shows the progress of long work; without it kattach sends the call no progress frames. */
  onProgress?: (message: string, done?: number, total?: number) => void;
}

interface Pending {
  resolve: (value: unknown) => void;
  reject: (err: Error) => void;
  onProgress?: CallOptions["onProgress"];
}

/** A connection to kattach. */
export class IpcClient {
  #conn: Deno.UnixConn;
  #token: string;
  #origin: Origin | undefined;
  #nextId = 1;
  #pending = new Map<number, Pending>();
  #reading: Promise<void>;

  private constructor(conn: Deno.UnixConn, token: string, origin: Origin | undefined) {
    this.#conn = conn;
    this.#token = token;
    this.#origin = origin;
    this.#reading = this.#readLoop();
  }

  /** Connects to the kattach whose run directory is `runDir`; `origin` goes with every request. */
  static async connect(runDir: string, options: { origin?: Origin } = {}): Promise<IpcClient> {
    let token: string;
    let conn: Deno.UnixConn;
    try {
      token = (await Deno.readTextFile(`${runDir}/${TOKEN_NAME}`)).trim();
      conn = await Deno.connect({ transport: "unix", path: `${runDir}/${SOCKET_NAME}` });
    } catch (err) {
      throw new UserError(`Cannot reach kattach at ${runDir}: ${(err as Error).message}`, {
        // The hint names the state directory this client looked in (runDir is STATE/run).
        hint: `is kattach running on that state directory? Start it with \`scripts/deno task ` +
          `kaos kattach --hosted --state ${runDir.replace(/\/run\/?$/, "") || "/"}\``,
        code: "unavailable",
        cause: err,
      });
    }
    return new IpcClient(conn, token, options.origin);
  }

  /** Sends one action and waits for its result. */
  call<A extends ActionName>(
    action: A,
    params: ParamsOf<A>,
    options: CallOptions = {},
  ): Promise<ResultOf<A>> {
    const id = this.#nextId++;
    const frame = {
      v: PROTOCOL_VERSION,
      id,
      token: this.#token,
      action,
      params,
      origin: this.#origin,
      // Progress frames only for a caller that shows them.
      ...(options.onProgress ? { progress: true } : {}),
    };
    const done = new Promise<unknown>((resolve, reject) => {
      this.#pending.set(id, { resolve, reject, onProgress: options.onProgress });
    });
    const bytes = encodeFrame(frame);
    (async () => {
      for (let off = 0; off < bytes.length;) off += await this.#conn.write(bytes.subarray(off));
    })().catch((err) => this.#fail(err));
    return done.then((result) => checkResult(action, result));
  }

  /** Closes the connection; pending calls fail. */
  close(): void {
    try {
      this.#conn.close();
    } catch { /* already closed */ }
  }

  async #readLoop(): Promise<void> {
    try {
      for await (const line of readLines(readChunks(this.#conn), MAX_RESULT_FRAME_BYTES)) {
        // A big answer (a list) leaves megabytes freed inside malloc's heaps: hand them back.
        if (line.length >= TRIM_AFTER_CHARS) trimMallocSoon(200);
        let frame;
        try {
          frame = ServerFrame.parse(JSON.parse(line));
        } catch {
          continue; // a frame we cannot read is dropped; its call times out or fails on close
        }
        const pending = this.#pending.get(frame.id);
        if (frame.type === "progress") {
          pending?.onProgress?.(frame.message, frame.done, frame.total);
          continue;
        }
        if (!pending) {
          if (frame.ok === false && frame.id === -1) this.#fail(new IpcError(frame.error));
          continue;
        }
        this.#pending.delete(frame.id);
        if (frame.ok) pending.resolve(frame.result);
        else pending.reject(new IpcError(frame.error));
      }
      this.#fail(new Error("kattach closed the connection"));
    } catch (err) {
      this.#fail(err as Error);
    }
  }

  #fail(err: Error): void {
    for (const p of this.#pending.values()) p.reject(err);
    this.#pending.clear();
  }

  /** Resolves when the connection is closed and the reader has finished. */
  get closed(): Promise<void> {
    return this.#reading;
  }
}

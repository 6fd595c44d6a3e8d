/**
 * kattach's side of the IPC channel: a unix socket in a directory only its owner can enter,
 * a per-boot token, and strict validation of every frame in and out.
 */
import { describeIssues, isUserError } from "../lib/errors.ts";
import { idleMemory } from "../lib/idle_memory.ts";
import type { z } from "zod";
import { compileCheck } from "./_fast_check.ts";
import { type ActionName, actions, isActionName, TRUSTED_LIST_RESULTS } from "./actions.ts";
import {
  encodeFrame,
  type ErrorInfo,
  FrameTooLongError,
  type Origin,
  type ProgressFrame,
  readChunks,
  readLines,
  Request,
} from "./protocol.ts";

/** What a handler may use while it runs. */
export interface ActionContext {
  /** Reports progress of long work to the caller. */
  progress(message: string, done?: number, total?: number): void;
  /** Aborted when the caller goes away (long-running actions stop early). */
  signal: AbortSignal;
  /** Where the request comes from, when the front-end said so. */
  origin?: Origin;
}

/**
 * A result that is already JSON text (issue 13: lists of thousands, which SQLite renders in C):
 * the server puts it into the result frame as it is, without parsing and serialising it again.
 * Only the actions of `TRUSTED_LIST_RESULTS` go out unparsed; any other action's JSON text is
 * parsed and checked against its result schema like any result. The client validates it either
 * way where it enters the front-end.
 */
export class JsonText {
  /** The JSON text of the result. */
  readonly text: string;

  constructor(text: string) {
    this.text = text;
  }

  /** The value the text stands for (callers inside kattach that want objects). */
  parse(): unknown {
    return JSON.parse(this.text);
  }
}

/** Executes one validated action; returns its result (or its {@linkcode JsonText}) or throws. */
export type Dispatch = (
  action: ActionName,
  params: unknown,
  ctx: ActionContext,
) => Promise<unknown>;

/** Options of `serveIpc`. */
export interface ServeIpcOptions {
  /** Directory for the socket and token; created 0700. */
  runDir: string;
  dispatch: Dispatch;
  log: (line: string) => void;
}

/** A running IPC server. */
export interface IpcServer {
  socketPath: string;
  close(): Promise<void>;
}

/** The socket's and token's file names inside the run directory. */
export const SOCKET_NAME = "kattach.sock";
export const TOKEN_NAME = "token";

/** Starts the IPC server: creates the run dir, a fresh token and the socket. */
export async function serveIpc(options: ServeIpcOptions): Promise<IpcServer> {
  const { runDir, dispatch, log } = options;
  await Deno.mkdir(runDir, { recursive: true, mode: 0o700 });
  await Deno.chmod(runDir, 0o700);
  const token = randomToken();
  const tokenPath = `${runDir}/${TOKEN_NAME}`;
  await Deno.writeTextFile(`${tokenPath}.tmp`, token + "\n", { mode: 0o600 });
  await Deno.rename(`${tokenPath}.tmp`, tokenPath);
  const socketPath = `${runDir}/${SOCKET_NAME}`;
  await Deno.remove(socketPath).catch(() => {});
  const listener = Deno.listen({ transport: "unix", path: socketPath });
  await Deno.chmod(socketPath, 0o600);

  const conns = new Set<Deno.UnixConn>();
  let closed = false;
  const accepting = (async () => {
    let backoffMs = 0;
    while (!closed) {
      let conn: Deno.UnixConn;
      try {
        conn = await listener.accept();
        backoffMs = 0;
      } catch (err) {
        if (closed) break;
        // e.g. too many open files: log, wait, retry; the IPC service never silently ends.
        backoffMs = Math.min(ACCEPT_BACKOFF.maxMs, Math.max(ACCEPT_BACKOFF.firstMs, backoffMs * 2));
        log(`ipc: accept failed (retrying in ${backoffMs} ms): ${errorText(err)}`);
        await new Promise((r) => setTimeout(r, backoffMs));
        continue;
      }
      conns.add(conn);
      handleConnection(conn, { token, dispatch, log })
        .catch((err) => log(`ipc: connection ended: ${errorText(err)}`))
        .finally(() => {
          conns.delete(conn);
          try {
            conn.close();
          } catch { /* already closed */ }
        });
    }
  })();

  return {
    socketPath,
    async close() {
      closed = true;
      listener.close();
      for (const c of conns) {
        try {
          c.close();
        } catch { /* already closed */ }
      }
      await accepting;
      await Deno.remove(socketPath).catch(() => {});
    },
  };
}

/**
 * The read buffer of each connection: requests are small, and many short connections each
 * allocating 64 KiB kept kattach's resident memory high (tests/soak_test.ts).
 */
const SERVER_READ_BYTES = 8 * 1024;

/** Pauses between failed accepts: doubling from the first to the cap. */
const ACCEPT_BACKOFF = { firstMs: 50, maxMs: 2000 };

/**
 * The one writer of a connection: frames go out whole and in order through one queue, so
 * progress and results never interleave under backpressure. After a failed write the
 * connection is ended (`onFail`) and later frames are dropped.
 */
export class FrameWriter {
  #conn: { write(bytes: Uint8Array): Promise<number> };
  #queue: Promise<void> = Promise.resolve();
  #failed: unknown = undefined;
  #onFail: (err: unknown) => void;

  constructor(
    conn: { write(bytes: Uint8Array): Promise<number> },
    onFail: (err: unknown) => void,
  ) {
    this.#conn = conn;
    this.#onFail = onFail;
  }

  /** Queues one frame; settles when it is written (rejects when the connection failed). */
  send(frame: unknown): Promise<void> {
    return this.sendRaw(encodeFrame(frame));
  }

  /** Queues one frame already encoded as a line (JSON text and its newline). */
  sendRaw(bytes: Uint8Array): Promise<void> {
    const write = this.#queue.then(async () => {
      if (this.#failed !== undefined) throw this.#failed;
      try {
        for (let off = 0; off < bytes.length;) off += await this.#conn.write(bytes.subarray(off));
      } catch (err) {
        this.#failed = err;
        this.#onFail(err);
        throw err;
      }
    });
    this.#queue = write.catch(() => {});
    return write;
  }

  /** Settles when every queued frame is written or dropped. */
  drained(): Promise<void> {
    return this.#queue;
  }
}

async function handleConnection(
  conn: Deno.UnixConn,
  opts: { token: string; dispatch: Dispatch; log: (line: string) => void },
): Promise<void> {
  const gone = new AbortController();
  const writer = new FrameWriter(conn, (err) => {
    // The peer went away: this connection ends (its reads stop), nothing else is disturbed.
    gone.abort(err);
    try {
      conn.close();
    } catch { /* already closed */ }
  });
  const send = (frame: unknown) => writer.send(frame);
  // Requests are answered one at a time per connection; reading goes on meanwhile so that a
  // closed connection is noticed (and long actions aborted) while one runs.
  let pending = Promise.resolve();
  try {
    for await (const line of readLines(readChunks(conn, SERVER_READ_BYTES))) {
      if (line.trim() === "") continue;
      // The process' idle-time reducer (a full GC, then malloc_trim) runs once no request has
      // been running for a moment: each request counts itself in here and out once answered.
      idleMemory().begin();
      pending = pending.then(async () => {
        try {
          if (gone.signal.aborted) return;
          const frame = await answer(line, opts, send, gone.signal);
          const bytes = frame instanceof RawFrame ? frame.bytes : encodeFrame(frame);
          await writer.sendRaw(bytes).catch(() => {});
        } finally {
          idleMemory().end();
        }
      });
    }
    gone.abort(new Error("the client closed the connection"));
  } catch (err) {
    if (err instanceof FrameTooLongError) {
      await pending;
      await send(failure(-1, protocolError(err.message))).catch(() => {});
      gone.abort(err);
      return;
    }
    gone.abort(err);
    if (!isPeerGone(err)) throw err;
  } finally {
    await pending;
    await writer.drained();
  }
}

/**
 * `schema`'s parse of `value`: the value itself when the compiled check (ipc/_fast_check.ts) says
 * zod would accept it unchanged, else zod's own parse (its output, or its issues).
 */
function parseIn<S extends z.ZodType>(
  schema: S,
  value: unknown,
): z.ZodSafeParseResult<z.output<S>> {
  if (compileCheck(schema)?.(value)) return { success: true, data: value as z.output<S> };
  return schema.safeParse(value) as z.ZodSafeParseResult<z.output<S>>;
}

/** Errors that mean the peer went away (not worth a log line). */
function isPeerGone(err: unknown): boolean {
  return err instanceof Deno.errors.BrokenPipe || err instanceof Deno.errors.ConnectionReset ||
    err instanceof Deno.errors.BadResource || err instanceof Deno.errors.Interrupted;
}

function errorText(err: unknown): string {
  return err instanceof Error ? `${err.name}: ${err.message}` : String(err);
}

async function answer(
  line: string,
  opts: { token: string; dispatch: Dispatch; log: (line: string) => void },
  send: (frame: unknown) => Promise<void>,
  signal: AbortSignal,
): Promise<unknown | RawFrame> {
  let raw: unknown;
  try {
    raw = JSON.parse(line);
  } catch {
    return failure(-1, protocolError("the message is not JSON"));
  }
  const parsed = parseIn(Request, raw);
  if (!parsed.success) {
    // Echo the id only when it is one (a frame's id is a whole number; fuzzing found floats).
    const rawId = (raw as { id?: unknown })?.id;
    const id = Number.isSafeInteger(rawId) && (rawId as number) >= 0 ? rawId as number : -1;
    return failure(id, protocolError(`malformed request: ${describeIssues(parsed.error.issues)}`));
  }
  const req = parsed.data;
  if (!tokensEqual(req.token, opts.token)) {
    opts.log("ipc: request with a wrong token refused");
    return failure(req.id, {
      kind: "protocol",
      code: "unauthorized",
      message: "the IPC token is wrong",
      hint: "kattach was restarted or this client is not allowed; retry",
    });
  }
  if (!isActionName(req.action)) {
    return failure(req.id, {
      kind: "protocol",
      code: "unknown-action",
      message: `unknown action ${JSON.stringify(req.action)}`,
      hint: "the client and kattach are of different releases",
    });
  }
  const spec = actions[req.action];
  const params = parseIn(spec.params, req.params ?? {});
  if (!params.success) {
    return failure(req.id, {
      kind: "user",
      code: "invalid",
      message: describeIssues(params.error.issues),
      hint: "",
    });
  }
  const ctx: ActionContext = {
    progress(message, done, total) {
      if (req.progress !== true) return; // the client shows none
      const frame: ProgressFrame = { id: req.id, type: "progress", message, done, total };
      send(frame).catch(() => {});
    },
    signal,
    origin: req.origin,
  };
  try {
    let result = await opts.dispatch(req.action, params.data, ctx);
    if (result instanceof JsonText) {
      // A frame is one line: text with a raw line break (SQLite's JSON has none) is re-encoded.
      if (TRUSTED_LIST_RESULTS.has(req.action) && !result.text.includes("\n")) {
        return rawResult(req.id, result);
      }
      result = result.parse();
    }
    if (TRUSTED_LIST_RESULTS.has(req.action)) {
      return { id: req.id, type: "result", ok: true, result };
    }
    const checked = spec.result.safeParse(result);
    if (!checked.success) {
      opts.log(
        `ipc: BUG: ${req.action} returned a bad result: ${describeIssues(checked.error.issues)}`,
      );
      return failure(req.id, internalError(req.action));
    }
    return { id: req.id, type: "result", ok: true, result: checked.data };
  } catch (err) {
    if (isUserError(err)) {
      return failure(req.id, {
        kind: "user",
        code: err.code,
        message: err.message,
        hint: err.hint,
      });
    }
    opts.log(`ipc: BUG in ${req.action}: ${err instanceof Error ? err.stack : String(err)}`);
    return failure(req.id, internalError(req.action));
  }
}

/** A result frame encoded around a {@linkcode JsonText} (no parse, no stringify of the result). */
class RawFrame {
  readonly bytes: Uint8Array;

  constructor(bytes: Uint8Array) {
    this.bytes = bytes;
  }
}

function rawResult(id: number, result: JsonText): RawFrame {
  return new RawFrame(
    new TextEncoder().encode(`{"id":${id},"type":"result","ok":true,"result":${result.text}}\n`),
  );
}

function failure(id: number, error: ErrorInfo) {
  return { id, type: "result", ok: false, error };
}

function protocolError(message: string): ErrorInfo {
  return { kind: "protocol", code: "protocol", message, hint: "" };
}

function internalError(action: string): ErrorInfo {
  // Not "nothing was changed": a handler may have done part of its work before the bug.
  return {
    kind: "internal",
    code: "internal",
    message: `kattach hit an internal error (a bug) in ${action}`,
    hint: "the kattach log has the details; check with `list`/`show` what was done before retrying",
  };
}

function randomToken(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(32));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function tokensEqual(a: string, b: string): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return diff === 0;
}

/**
 * The wire format between front-ends and kattach: one JSON object per line over a unix socket.
 * A request gets zero or more `progress` frames and then exactly one `result` frame.
 */
import { z } from "zod";
import { lazySchema } from "../lib/lazy_schema.ts";

/** The protocol version both sides speak. */
export const PROTOCOL_VERSION = 1;
/** The longest line kattach accepts from a client, in bytes. */
export const MAX_FRAME_BYTES = 1024 * 1024;
/**
 * The longest frame a client takes from kattach: its answers grow with the configuration
 * (`instance list` of 10,000 instances is about 3 MB); kattach is the trusted side.
 */
export const MAX_RESULT_FRAME_BYTES = 64 * 1024 * 1024;

/** Where a request comes from: the front-end and when its operator's connection was opened. */
export const Origin = lazySchema(() =>
  z.strictObject({
    via: z.enum(["ssh", "console", "local"]),
    /** When the operator's connection (e.g. the SSH connection) was opened, in ms since 1970. */
    openedAt: z.number().optional(),
    /** The operator's address, "ip:port", when remote. */
    remote: z.string().max(100).optional(),
  })
);
export type Origin = z.infer<typeof Origin>;

/** A request from a front-end. */
export const Request = lazySchema(() =>
  z.strictObject({
    v: z.literal(PROTOCOL_VERSION),
    id: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
    token: z.string().max(200),
    action: z.string().max(100),
    params: z.unknown(),
    origin: Origin.optional(),
    /**
     * The client shows progress (the CLI): only then does kattach send progress frames for it.
     * A script or a bench waiting for the result gets none: each would wake it while kattach works.
     */
    progress: z.boolean().optional(),
  })
);
export type Request = z.infer<typeof Request>;

/** Why a request failed: the operator's input, a bug, or a broken message. */
export const ErrorInfo = lazySchema(() =>
  z.strictObject({
    kind: z.enum(["user", "internal", "protocol"]),
    code: z.string(),
    message: z.string(),
    hint: z.string(),
  })
);
export type ErrorInfo = z.infer<typeof ErrorInfo>;

/** A progress report for long work (downloads, deploys). */
export const ProgressFrame = lazySchema(() =>
  z.strictObject({
    id: z.number().int(),
    type: z.literal("progress"),
    message: z.string(),
    done: z.number().optional(),
    total: z.number().optional(),
  })
);
export type ProgressFrame = z.infer<typeof ProgressFrame>;

/** The final answer to a request. */
export const ResultFrame = lazySchema(() =>
  z.union([
    z.strictObject({
      id: z.number().int(),
      type: z.literal("result"),
      ok: z.literal(true),
      result: z.unknown(),
    }),
    z.strictObject({
      id: z.number().int(),
      type: z.literal("result"),
      ok: z.literal(false),
      error: ErrorInfo,
    }),
  ])
);
export type ResultFrame = z.infer<typeof ResultFrame>;

/** Anything kattach sends. */
export const ServerFrame = lazySchema(() => z.union([ProgressFrame, ResultFrame]));
export type ServerFrame = z.infer<typeof ServerFrame>;

/**
 * Splits a byte stream into lines, refusing lines longer than `maxBytes`. Yields each complete
 * line without its newline; a trailing partial line at the end of the stream is dropped.
 */
export async function* readLines(
  stream: AsyncIterable<Uint8Array>,
  maxBytes = MAX_FRAME_BYTES,
): AsyncGenerator<string> {
  const decoder = new TextDecoder();
  let pending: Uint8Array[] = [];
  let pendingBytes = 0;
  for await (const chunk of stream) {
    let start = 0;
    for (let i = chunk.indexOf(10); i !== -1; i = chunk.indexOf(10, start)) {
      const piece = chunk.subarray(start, i);
      if (pendingBytes + piece.length > maxBytes) throw new FrameTooLongError(maxBytes);
      pending.push(piece);
      yield decoder.decode(concat(pending));
      pending = [];
      pendingBytes = 0;
      start = i + 1;
    }
    const rest = chunk.subarray(start);
    if (rest.length > 0) {
      pendingBytes += rest.length;
      if (pendingBytes > maxBytes) throw new FrameTooLongError(maxBytes);
      pending.push(rest.slice());
    }
  }
}

/** A peer sent a line longer than the protocol allows. */
export class FrameTooLongError extends Error {
  constructor(maxBytes: number) {
    super(`message longer than ${maxBytes} bytes`);
    this.name = "FrameTooLongError";
  }
}

/**
 * Reads a connection chunk by chunk without a stream (so a refused frame leaves it writable):
 * into a buffer of `firstBytes`, and of `bufferBytes` once a read fills it (a long answer such as
 * a list of thousands is coming). Most connections carry a few small frames: the sshd opens one
 * per one-line command, and a 64 KiB buffer each (malloc'ed, freed when the garbage collector
 * gets to it) grew its resident memory by about 8 MiB over 1,000 commands (issue 13).
 */
export async function* readChunks(
  conn: { read(buf: Uint8Array): Promise<number | null> },
  bufferBytes = 64 * 1024,
  firstBytes = Math.min(bufferBytes, 8 * 1024),
): AsyncGenerator<Uint8Array> {
  let buf = new Uint8Array(firstBytes);
  while (true) {
    const n = await conn.read(buf);
    if (n === null) return;
    yield buf.slice(0, n);
    if (n === buf.length && buf.length < bufferBytes) buf = new Uint8Array(bufferBytes);
  }
}

/** Encodes one frame as a line. */
export function encodeFrame(frame: unknown): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(frame) + "\n");
}

function concat(parts: Uint8Array[]): Uint8Array {
  if (parts.length === 1) return parts[0];
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

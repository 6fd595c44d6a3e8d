/**
 * Downloads for AppQueues with an injected `fetch`: small documents into memory with a size
 * limit, and parts by digest into a temporary file that is resumed with an HTTP Range request,
 * checked against the expected size and sha256, and renamed into place only when it matches.
 */
import type { Hash } from "node:crypto";
import { UserError } from "../lib/errors.ts";
import { nodeCrypto } from "../lib/lazy_crypto.ts";

/** The subset of `fetch` the downloader uses; injected so tests can count and break requests. */
export type FetchFn = (url: string, init?: RequestInit) => Promise<Response>;

/** A server answered with an HTTP error status; `status` lets callers explain 401/403. */
export class HttpStatusError extends UserError {
  /** The HTTP status code. */
  readonly status: number;

  constructor(status: number, what: string, options: { hint?: string } = {}) {
    super(`Cannot download ${what}: the server answered HTTP ${status}`, {
      hint: options.hint ?? "",
      code: status === 401 || status === 403 ? "refused" : "http",
    });
    this.name = "HttpStatusError";
    this.status = status;
  }
}

/** Options shared by the downloaders. */
export interface FetchCommon {
  fetch?: FetchFn;
  /** Extra request headers (e.g. the subscription key); never logged or put in messages. */
  headers?: Record<string, string>;
  /** What is being downloaded, for messages ("web.aqi of web 1.0.0"). */
  label: string;
}

/** Options of {@linkcode fetchBytes}. */
export interface FetchBytesOptions extends FetchCommon {
  maxBytes: number;
}

/** Fetches a small document completely into memory; refuses more than `maxBytes`. */
export async function fetchBytes(url: string, options: FetchBytesOptions): Promise<Uint8Array> {
  const res = await request(url, options, {});
  if (!res.ok) {
    await res.body?.cancel();
    throw new HttpStatusError(res.status, options.label);
  }
  const chunks: Uint8Array[] = [];
  let total = 0;
  try {
    for await (const chunk of res.body ?? emptyStream()) {
      total += chunk.length;
      if (total > options.maxBytes) {
        throw new UserError(
          `Cannot download ${options.label}: larger than ${options.maxBytes} bytes`,
          { hint: "the server sent something else; check the queue URL", code: "too-large" },
        );
      }
      chunks.push(chunk);
    }
  } catch (err) {
    await res.body?.cancel().catch(() => {});
    if (err instanceof UserError) throw err;
    throw interrupted(options.label, total, undefined, err);
  }
  const out = new Uint8Array(total);
  let off = 0;
  for (const c of chunks) {
    out.set(c, off);
    off += c.length;
  }
  return out;
}

/** Options of {@linkcode fetchPart}. */
export interface FetchPartOptions extends FetchCommon {
  /** Expected lower-case hex sha256 of the whole part. */
  sha256: string;
  /** Expected size in bytes; more is refused, less is a truncated download. */
  size: number;
  /** Where the verified part ends up. */
  dest: string;
  /** The temporary file; an existing one is resumed. Default `${dest}.part`. */
  partial?: string;
  /** Called as bytes arrive (throttled) and once at the end. */
  onProgress?: (done: number, total: number) => void;
}

/** What {@linkcode fetchPart} did. */
export interface FetchPartResult {
  /** Bytes that were already on disk and not downloaded again. */
  resumedFrom: number;
  /** Bytes downloaded by this call. */
  downloaded: number;
}

/**
 * Downloads one part by digest. The partial file survives an interrupted transfer so the next
 * call resumes it; a part that is too large or has the wrong sha256 is deleted. Only a verified
 * part is renamed to `dest`.
 */
export async function fetchPart(url: string, options: FetchPartOptions): Promise<FetchPartResult> {
  const { size, dest, label } = options;
  const partial = options.partial ?? `${dest}.part`;
  const hash = nodeCrypto().createHash("sha256");
  let have = await existingSize(partial);
  if (have > size) {
    await Deno.remove(partial);
    have = 0;
  } else if (have > 0) {
    await hashFile(partial, hash);
  }
  let resumedFrom = have;
  let downloaded = 0;
  if (have < size) {
    const headers: Record<string, string> = have > 0 ? { Range: `bytes=${have}-` } : {};
    const res = await request(url, options, headers);
    let append = false;
    if (res.status === 206 && have > 0) {
      const m = /^bytes (\d+)-/.exec(res.headers.get("content-range") ?? "");
      append = m !== null && Number(m[1]) === have;
    }
    if (!res.ok) {
      await res.body?.cancel();
      throw new HttpStatusError(res.status, label);
    }
    if (!append) {
      // The server ignored the Range request (or there was none): start over.
      hash.destroy();
      return await restart(options, res, partial);
    }
    downloaded = await receive(res, { ...options, partial, hash, have, append: true });
  } else {
    resumedFrom = size;
  }
  await finish(options, partial, hash);
  return { resumedFrom, downloaded };
}

async function restart(
  options: FetchPartOptions,
  res: Response,
  partial: string,
): Promise<FetchPartResult> {
  const hash = nodeCrypto().createHash("sha256");
  const downloaded = await receive(res, { ...options, partial, hash, have: 0, append: false });
  await finish(options, partial, hash);
  return { resumedFrom: 0, downloaded };
}

async function receive(
  res: Response,
  o: FetchPartOptions & { partial: string; hash: Hash; have: number; append: boolean },
): Promise<number> {
  const file = await Deno.open(o.partial, {
    write: true,
    create: true,
    append: o.append,
    truncate: !o.append,
    mode: 0o600,
  });
  let done = o.have;
  let lastReport = -1;
  const step = Math.max(64 * 1024, Math.floor(o.size / 20));
  try {
    for await (const chunk of res.body ?? emptyStream()) {
      if (done + chunk.length > o.size) {
        await res.body?.cancel().catch(() => {});
        file.close();
        await Deno.remove(o.partial).catch(() => {});
        throw new UserError(
          `Cannot download ${o.label}: the server sent more than the ${o.size} bytes the index lists`,
          { hint: "the queue's part does not match its signed index; nothing was installed" },
        );
      }
      for (let off = 0; off < chunk.length;) off += await file.write(chunk.subarray(off));
      o.hash.update(chunk);
      done += chunk.length;
      if (o.onProgress && (done - lastReport >= step || done === o.size)) {
        lastReport = done;
        o.onProgress(done, o.size);
      }
    }
    await file.sync();
  } catch (err) {
    if (err instanceof UserError) throw err;
    throw interrupted(o.label, done, o.size, err);
  } finally {
    try {
      file.close();
    } catch { /* closed above */ }
  }
  if (done < o.size) throw interrupted(o.label, done, o.size);
  return done - o.have;
}

async function finish(options: FetchPartOptions, partial: string, hash: Hash): Promise<void> {
  const got = hash.digest("hex");
  if (got !== options.sha256) {
    await Deno.remove(partial).catch(() => {});
    throw new UserError(
      `Cannot install ${options.label}: its sha256 is ${got}, the signed index says ${options.sha256}`,
      {
        hint: "the part was altered on the server or on the way; nothing was installed",
        code: "digest-mismatch",
      },
    );
  }
  await Deno.rename(partial, options.dest);
}

function interrupted(label: string, done: number, total: number | undefined, cause?: unknown) {
  const of = total === undefined ? "" : ` of ${total}`;
  return new UserError(
    `Cannot download ${label}: the transfer ended after ${done}${of} bytes (truncated download)`,
    {
      hint: "check the network and run the same command again; the download resumes",
      code: "truncated",
      cause,
    },
  );
}

async function request(
  url: string,
  options: FetchCommon,
  extra: Record<string, string>,
): Promise<Response> {
  const f = options.fetch ?? ((u: string, init?: RequestInit) => fetch(u, init));
  try {
    return await f(url, { headers: { ...options.headers, ...extra }, redirect: "error" });
  } catch (cause) {
    throw new UserError(`Cannot download ${options.label} from ${redact(url)}: ${errText(cause)}`, {
      hint: "check the queue URL (`appqueue list`) and the network",
      code: "network",
      cause,
    });
  }
}

/** The URL without credentials or query, for messages. */
function redact(url: string): string {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}${u.pathname}`;
  } catch {
    return "(bad URL)";
  }
}

function errText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

async function existingSize(path: string): Promise<number> {
  try {
    const info = await Deno.lstat(path);
    return info.isFile ? info.size : 0;
  } catch {
    return 0;
  }
}

async function hashFile(path: string, hash: Hash): Promise<void> {
  using file = await Deno.open(path);
  for await (const chunk of file.readable) hash.update(chunk);
}

function emptyStream(): ReadableStream<Uint8Array> {
  return new ReadableStream({ start: (c) => c.close() });
}

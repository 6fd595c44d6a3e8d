/**
 * A log another process appends to (QEMU's serial `logfile`, opened O_APPEND), kept bounded and
 * read incrementally. Rotation is copy-then-truncate: the writer keeps its descriptor, and with
 * O_APPEND its next write lands at the new end of the emptied file. {@linkcode LogTail} reads only
 * what was added since its last read, a chunk at a time, so neither the disk nor the reader's
 * memory grows with what a guest prints.
 */

/** Default bound of a live serial log; the one rotated copy (`PATH.1`) holds at most as much. */
export const SERIAL_LOG_MAX_BYTES = 4 * 1024 * 1024;

/** The name of the rotated copy of a log. */
export function rotatedLogPath(path: string): string {
  return `${path}.1`;
}

/**
 * When `path` holds more than `maxBytes`, copies its last `maxBytes` to `PATH.1` (replacing the
 * older copy) and truncates it to 0. Returns the size it truncated, 0 when it did not rotate. A
 * missing file is no error.
 * Bytes written between the copy and the truncation are lost (as with logrotate's copytruncate).
 */
export async function rotateAppendLog(
  path: string,
  options: { maxBytes?: number } = {},
): Promise<number> {
  const maxBytes = options.maxBytes ?? SERIAL_LOG_MAX_BYTES;
  let file: Deno.FsFile;
  try {
    file = await Deno.open(path, { read: true, write: true });
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return 0;
    throw err;
  }
  try {
    const size = (await file.stat()).size;
    if (size <= maxBytes) return 0;
    const tmp = `${rotatedLogPath(path)}.tmp`;
    const out = await Deno.open(tmp, { write: true, create: true, truncate: true, mode: 0o640 });
    try {
      await file.seek(size - maxBytes, Deno.SeekMode.Start);
      let left = maxBytes;
      const buf = new Uint8Array(64 * 1024);
      while (left > 0) {
        const n = await file.read(buf.subarray(0, Math.min(buf.length, left)));
        if (n === null) break;
        await writeAll(out, buf.subarray(0, n));
        left -= n;
      }
    } finally {
      out.close();
    }
    await Deno.rename(tmp, rotatedLogPath(path));
    await file.truncate(0);
    return size;
  } finally {
    file.close();
  }
}

/**
 * The last `n` lines of a log and, when it holds fewer, of its rotated copy before them: at most
 * `maxBytes` read from the end of each (a line cut there is dropped). A missing file has none.
 * Line ends (`\n`, `\r\n`) are removed; the text is decoded as UTF-8, as it is, controls and all.
 */
export async function lastLogLines(
  path: string,
  n: number,
  options: { maxBytes?: number } = {},
): Promise<string[]> {
  const out: string[] = [];
  for (const p of [path, rotatedLogPath(path)]) {
    if (out.length >= n) break;
    const lines = await endLines(p, options.maxBytes ?? 1024 * 1024);
    out.unshift(...lines.slice(-(n - out.length)));
  }
  return out;
}

async function endLines(path: string, maxBytes: number): Promise<string[]> {
  let file: Deno.FsFile;
  try {
    file = await Deno.open(path, { read: true });
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return [];
    throw err;
  }
  try {
    const size = (await file.stat()).size;
    const from = Math.max(0, size - maxBytes);
    await file.seek(from, Deno.SeekMode.Start);
    const buf = new Uint8Array(size - from);
    let got = 0;
    while (got < buf.length) {
      const r = await file.read(buf.subarray(got));
      if (r === null) break;
      got += r;
    }
    const lines = new TextDecoder().decode(buf.subarray(0, got)).split(/\r?\n/);
    if (from > 0) lines.shift(); // cut by the window
    if (lines.at(-1) === "") lines.pop();
    return lines;
  } finally {
    file.close();
  }
}

async function writeAll(f: Deno.FsFile, bytes: Uint8Array): Promise<void> {
  let off = 0;
  while (off < bytes.length) off += await f.write(bytes.subarray(off));
}

/** Options of {@linkcode LogTail}. */
export interface LogTailOptions {
  /** Byte offset to start from (output of an earlier boot lies before it). Default 0. */
  from?: number;
  /** Longest line kept, in characters; the rest of a longer line is dropped. Default 4096. */
  maxLineChars?: number;
  /** Bytes read at a time. Default 64 KiB. */
  chunkBytes?: number;
}

/**
 * Reads the lines added to a log since the last read. A file that shrank was rotated: reading
 * starts over at its beginning. Memory stays within one chunk and one line.
 */
export class LogTail {
  readonly path: string;
  #offset: number;
  #partial = "";
  #dropping = false;
  #maxLine: number;
  #chunk: number;
  #read = 0;
  #buf: Uint8Array | undefined;

  constructor(path: string, options: LogTailOptions = {}) {
    this.path = path;
    this.#offset = options.from ?? 0;
    this.#maxLine = options.maxLineChars ?? 4096;
    this.#chunk = options.chunkBytes ?? 64 * 1024;
  }

  /** The byte offset the next read starts at. */
  get offset(): number {
    return this.#offset;
  }

  /** Bytes read from the file so far (each byte once, unless the file was rotated). */
  get bytesRead(): number {
    return this.#read;
  }

  /**
   * Whether {@linkcode lines} has anything to look at: the file's size is not where the next
   * read starts (output was added, or the file was rotated), or it cannot be looked at (lines()
   * then says why). One stat, no open: pollers of many logs look before they read.
   */
  changed(): boolean {
    try {
      return Deno.statSync(this.path).size !== this.#offset;
    } catch {
      return true;
    }
  }

  /**
   * Yields every complete line added since the last read, in order (without the line end).
   * Throws when the file cannot be opened (e.g. not created yet: Deno.errors.NotFound). Not to
   * be run twice at once on one reader (its offset and buffer are the reader's).
   *
   * The reads are synchronous: a log is a local file, read a chunk at a time from the page
   * cache (microseconds each). Asynchronous, a look was four round trips through Deno's thread
   * pool (open, stat, seek, read), and readiness checks look every 50 ms at each booting
   * guest's log: a seventh of kattach's CPU during a deploy of 20 (issue 13).
   */
  *lines(): Generator<string> {
    using file = Deno.openSync(this.path, { read: true });
    const size = file.statSync().size;
    if (size < this.#offset) { // rotated (truncated) since the last read
      this.#offset = 0;
      this.#partial = "";
      this.#dropping = false;
    }
    file.seekSync(this.#offset, Deno.SeekMode.Start);
    const decoder = new TextDecoder();
    // One buffer for the reader's life: a 64 KiB one per read, every 50 ms for each guest, was
    // garbage for the young generation (1 MiB on the appliance) to collect.
    const buf = this.#buf ??= new Uint8Array(this.#chunk);
    while (this.#offset < size) {
      const n = file.readSync(buf.subarray(0, Math.min(buf.length, size - this.#offset)));
      if (n === null) break;
      this.#offset += n;
      this.#read += n;
      const parts = decoder.decode(buf.subarray(0, n), { stream: true }).split("\n");
      for (let i = 0; i < parts.length; i++) {
        const last = i === parts.length - 1;
        if (!this.#dropping) this.#partial += parts[i];
        if (this.#partial.length > this.#maxLine) {
          this.#partial = this.#partial.slice(0, this.#maxLine);
          this.#dropping = true;
        }
        if (last) break;
        const line = this.#partial.endsWith("\r") ? this.#partial.slice(0, -1) : this.#partial;
        this.#partial = "";
        this.#dropping = false;
        yield line;
      }
    }
  }

  /**
   * The first line added since the last read that satisfies `pred`, or undefined. Lines after it
   * in the same chunk are skipped by later reads.
   */
  find(pred: (line: string) => boolean): string | undefined {
    for (const line of this.lines()) if (pred(line)) return line;
    return undefined;
  }
}

/**
 * A small pure POSIX ustar writer and a strict reader. The reader accepts regular files only
 * (directories optionally) and refuses absolute paths, `..`, links, devices, extended headers,
 * oversize entries, bad checksums and truncated archives with a UserError naming what failed.
 */
import { UserError } from "./errors.ts";

/** One regular file to put into an archive. */
export interface UstarFile {
  /** Relative path with `/` separators; no `.`/`..`/empty components. */
  path: string;
  data: Uint8Array;
  /** Permission bits, default 0o644. */
  mode?: number;
}

/** One regular file read from an archive. */
export interface UstarEntry {
  path: string;
  data: Uint8Array;
  mode: number;
}

/** Limits and leniencies for {@link readUstar}. */
export interface ReadUstarOptions {
  /** Largest size of one file, in bytes (default 1 GiB). */
  maxFileBytes?: number;
  /** Largest sum of all file sizes, in bytes (default 2 GiB). */
  maxTotalBytes?: number;
  /** Most entries, directories included (default 10000). */
  maxEntries?: number;
  /** Skip directory entries instead of refusing them (default false). */
  allowDirectories?: boolean;
  /** What the archive is, for error messages (default "tar archive"). */
  label?: string;
}

const BLOCK = 512;
const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

/** Archive paths: relative, `/`-separated, printable, no `.`/`..`/empty components. */
function pathProblem(path: string): string | undefined {
  if (path.length === 0) return "the path is empty";
  if (path.startsWith("/")) return "the path is absolute";
  // deno-lint-ignore no-control-regex
  if (/[\x00-\x1f\x7f\\]/.test(path)) return "the path holds control characters or '\\'";
  for (const part of path.split("/")) {
    if (part === "..") return "the path holds a '..' component";
    if (part === "" || part === ".") return "the path holds an empty or '.' component";
  }
  return undefined;
}

function octal(value: number, width: number): string {
  // width includes the terminating NUL
  return value.toString(8).padStart(width - 1, "0") + "\0";
}

function putString(block: Uint8Array, offset: number, width: number, text: string): void {
  const bytes = encoder.encode(text);
  if (bytes.length > width) throw new Error(`ustar field overflow: ${text}`);
  block.set(bytes, offset);
}

/** Splits a path into ustar `prefix` and `name`, or undefined when it cannot fit. */
function splitPath(path: string): { prefix: string; name: string } | undefined {
  const bytes = encoder.encode(path).length;
  if (bytes <= 100) return { prefix: "", name: path };
  for (let i = path.indexOf("/"); i !== -1; i = path.indexOf("/", i + 1)) {
    const prefix = path.slice(0, i);
    const name = path.slice(i + 1);
    if (encoder.encode(prefix).length <= 155 && encoder.encode(name).length <= 100) {
      return { prefix, name };
    }
  }
  return undefined;
}

function checksum(block: Uint8Array): number {
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : block[i];
  return sum;
}

/** Builds a deterministic ustar archive (mtime 0, owner root) of regular files, in the given order. */
export function writeUstar(files: UstarFile[]): Uint8Array {
  const seen = new Set<string>();
  let total = 2 * BLOCK;
  for (const f of files) {
    const problem = pathProblem(f.path);
    if (problem) {
      throw new UserError(`Cannot add ${JSON.stringify(f.path)} to a tar archive: ${problem}`);
    }
    if (seen.has(f.path)) {
      throw new UserError(`Cannot add ${JSON.stringify(f.path)} to a tar archive twice`);
    }
    seen.add(f.path);
    if (!splitPath(f.path)) {
      throw new UserError(`Cannot add ${JSON.stringify(f.path)} to a tar archive: path too long`, {
        hint: "ustar names hold at most 100 bytes after a 155-byte directory prefix",
      });
    }
    if (f.data.length > 0o77777777777) {
      throw new UserError(`Cannot add ${f.path} to a tar archive: larger than 8 GiB`);
    }
    const mode = f.mode ?? 0o644;
    if (!Number.isInteger(mode) || mode < 0 || mode > 0o7777) {
      throw new UserError(`Cannot add ${f.path} to a tar archive: mode ${mode} is not 0-07777`);
    }
    total += BLOCK + Math.ceil(f.data.length / BLOCK) * BLOCK;
  }
  const out = new Uint8Array(total);
  let pos = 0;
  for (const f of files) {
    const header = out.subarray(pos, pos + BLOCK);
    const { prefix, name } = splitPath(f.path)!;
    putString(header, 0, 100, name);
    putString(header, 100, 8, octal(f.mode ?? 0o644, 8));
    putString(header, 108, 8, octal(0, 8));
    putString(header, 116, 8, octal(0, 8));
    putString(header, 124, 12, octal(f.data.length, 12));
    putString(header, 136, 12, octal(0, 12));
    header[156] = 0x30; // '0': regular file
    putString(header, 257, 8, "ustar\x0000");
    putString(header, 265, 32, "root");
    putString(header, 297, 32, "root");
    putString(header, 329, 8, octal(0, 8));
    putString(header, 337, 8, octal(0, 8));
    putString(header, 345, 155, prefix);
    putString(header, 148, 8, octal(checksum(header), 7) + " ");
    out.set(f.data, pos + BLOCK);
    pos += BLOCK + Math.ceil(f.data.length / BLOCK) * BLOCK;
  }
  return out;
}

/** Pads an archive with zeros to a multiple of 512 bytes and at least `minBytes`. */
export function padUstar(archive: Uint8Array, minBytes = 0): Uint8Array {
  const size = Math.max(
    Math.ceil(archive.length / BLOCK) * BLOCK,
    Math.ceil(minBytes / BLOCK) * BLOCK,
  );
  if (size === archive.length) return archive;
  const out = new Uint8Array(size);
  out.set(archive);
  return out;
}

function cString(bytes: Uint8Array, what: string, label: string): string {
  const end = bytes.indexOf(0);
  try {
    return decoder.decode(end === -1 ? bytes : bytes.subarray(0, end));
  } catch (cause) {
    throw new UserError(`Cannot read ${label}: the ${what} is not UTF-8`, { cause });
  }
}

function parseOctal(bytes: Uint8Array, what: string, label: string): number {
  if (bytes[0] & 0x80) {
    throw new UserError(`Cannot read ${label}: the ${what} uses GNU base-256 (too large)`);
  }
  const text = String.fromCharCode(...bytes).replace(/[\0 ]+$/, "").replace(/^ +/, "");
  if (!/^[0-7]{1,12}$/.test(text)) {
    throw new UserError(
      `Cannot read ${label}: the ${what} field ${JSON.stringify(text)} is not octal`,
    );
  }
  return parseInt(text, 8);
}

const TYPE_NAMES: Record<string, string> = {
  "1": "a hard link",
  "2": "a symbolic link",
  "3": "a character device",
  "4": "a block device",
  "6": "a FIFO",
  "L": "a GNU long-name header",
  "K": "a GNU long-link header",
  "x": "a pax extended header",
  "g": "a pax global header",
};

/**
 * Reads a ustar archive strictly: regular files only (directories when allowed), in archive
 * order. A leading `./` is dropped from names. Throws a UserError naming the first problem.
 */
export function readUstar(bytes: Uint8Array, opts: ReadUstarOptions = {}): UstarEntry[] {
  const label = opts.label ?? "tar archive";
  const maxFile = opts.maxFileBytes ?? 1024 ** 3;
  const maxTotal = opts.maxTotalBytes ?? 2 * 1024 ** 3;
  const maxEntries = opts.maxEntries ?? 10000;
  const entries: UstarEntry[] = [];
  const seen = new Set<string>();
  let total = 0;
  let count = 0;
  let pos = 0;
  for (;;) {
    if (pos + BLOCK > bytes.length) {
      throw new UserError(
        `Cannot read ${label}: it is truncated (no end-of-archive marker at byte ${pos})`,
      );
    }
    const header = bytes.subarray(pos, pos + BLOCK);
    if (header.every((b) => b === 0)) {
      const next = bytes.subarray(pos + BLOCK, pos + 2 * BLOCK);
      if (next.length < BLOCK || !next.every((b) => b === 0)) {
        throw new UserError(
          `Cannot read ${label}: a lone zero block at byte ${pos} (truncated or corrupt)`,
        );
      }
      return entries;
    }
    const stored = parseOctal(header.subarray(148, 156), "checksum", label);
    if (stored !== checksum(header)) {
      throw new UserError(`Cannot read ${label}: bad header checksum at byte ${pos}`, {
        hint: "the file is not a tar archive or is corrupt",
      });
    }
    const magic = String.fromCharCode(...header.subarray(257, 265));
    if (magic !== "ustar\x0000" && magic !== "ustar  \0") {
      throw new UserError(`Cannot read ${label}: the entry at byte ${pos} is not ustar`, {
        hint: "write it with `tar --format=ustar`",
      });
    }
    const rawName = cString(header.subarray(0, 100), "name", label);
    const prefix = magic === "ustar\x0000"
      ? cString(header.subarray(345, 500), "prefix", label)
      : "";
    let path = prefix ? `${prefix}/${rawName}` : rawName;
    const type = String.fromCharCode(header[156]);
    const size = parseOctal(header.subarray(124, 136), "size", label);
    const mode = parseOctal(header.subarray(100, 108), "mode", label) & 0o7777;
    if (++count > maxEntries) {
      throw new UserError(`Cannot read ${label}: more than ${maxEntries} entries`);
    }
    while (path.startsWith("./")) path = path.slice(2);
    const isDir = type === "5";
    if (isDir) path = path.replace(/\/+$/, "");
    const shown = JSON.stringify(path);
    if (!(isDir && path === "")) {
      const problem = pathProblem(path);
      if (problem) throw new UserError(`Cannot read ${label}: entry ${shown}: ${problem}`);
    }
    if (TYPE_NAMES[type]) {
      throw new UserError(`Cannot read ${label}: entry ${shown} is ${TYPE_NAMES[type]}`, {
        hint: "only regular files are allowed",
      });
    }
    if (isDir) {
      if (!opts.allowDirectories) {
        throw new UserError(`Cannot read ${label}: entry ${shown} is a directory`, {
          hint: "only regular files are allowed",
        });
      }
      if (size !== 0) throw new UserError(`Cannot read ${label}: directory ${shown} has a size`);
      pos += BLOCK;
      continue;
    }
    if (type !== "0" && type !== "\0" && type !== "7") {
      throw new UserError(
        `Cannot read ${label}: entry ${shown} has unknown type ${JSON.stringify(type)}`,
      );
    }
    if (size > maxFile) {
      throw new UserError(`Cannot read ${label}: entry ${shown} is ${size} bytes, over ${maxFile}`);
    }
    total += size;
    if (total > maxTotal) {
      throw new UserError(`Cannot read ${label}: the files add up to over ${maxTotal} bytes`);
    }
    if (seen.has(path)) throw new UserError(`Cannot read ${label}: entry ${shown} appears twice`);
    seen.add(path);
    const start = pos + BLOCK;
    if (start + size > bytes.length) {
      throw new UserError(`Cannot read ${label}: entry ${shown} is truncated`, {
        hint: `it declares ${size} bytes but the archive ends ${bytes.length - start} bytes in`,
      });
    }
    entries.push({ path, data: bytes.slice(start, start + size), mode });
    pos = start + Math.ceil(size / BLOCK) * BLOCK;
  }
}

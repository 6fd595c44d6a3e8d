/**
 * A strict reader of newc cpio archives (`cpio -H newc`, what the kernel unpacks as an initramfs),
 * pure. It accepts directories, regular files and symbolic links, and refuses absolute paths, `..`,
 * hard links, devices, bad magic and truncated archives with a UserError naming what failed.
 */
import { UserError } from "./errors.ts";

/** One entry read from a newc archive. */
export type NewcEntry =
  | { kind: "dir"; path: string; mode: number }
  | { kind: "file"; path: string; mode: number; data: Uint8Array }
  | { kind: "symlink"; path: string; target: string };

const HEADER = 110;
const S_IFMT = 0o170000;
const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;
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

const pad4 = (n: number) => (n + 3) & ~3;

/** Reads every entry of a newc archive up to its `TRAILER!!!`; `label` names it in errors. */
export function readNewc(bytes: Uint8Array, label = "cpio archive"): NewcEntry[] {
  const out: NewcEntry[] = [];
  const bad = (at: number, why: string) =>
    new UserError(`Cannot read the ${label}: ${why} (at byte ${at})`, {
      hint: "the archive is damaged or not a newc cpio (cpio -H newc)",
    });
  let at = 0;
  for (;;) {
    if (at + HEADER > bytes.length) throw bad(at, "it ends before its TRAILER!!! entry");
    const head = new TextDecoder().decode(bytes.subarray(at, at + HEADER));
    const magic = head.slice(0, 6);
    if (magic !== "070701" && magic !== "070702") {
      throw bad(at, `bad magic ${JSON.stringify(magic)}`);
    }
    const field = (i: number) => {
      const hex = head.slice(6 + 8 * i, 14 + 8 * i);
      if (!/^[0-9A-Fa-f]{8}$/.test(hex)) throw bad(at, `header field ${i} is not hex`);
      return parseInt(hex, 16);
    };
    const mode = field(1), nlink = field(4), size = field(6), nameSize = field(11);
    const nameEnd = at + HEADER + nameSize;
    if (nameSize < 1 || nameEnd > bytes.length) throw bad(at, "the name runs past the end");
    if (bytes[nameEnd - 1] !== 0) throw bad(at, "the name is not NUL-terminated");
    let name: string;
    try {
      name = decoder.decode(bytes.subarray(at + HEADER, nameEnd - 1));
    } catch {
      throw bad(at, "the name is not UTF-8");
    }
    const dataAt = pad4(nameEnd);
    if (dataAt + size > bytes.length) throw bad(at, `${name}: its data runs past the end`);
    const data = bytes.subarray(dataAt, dataAt + size);
    at = pad4(dataAt + size);
    if (name === "TRAILER!!!") return out;
    if (name === ".") continue;
    const problem = pathProblem(name);
    if (problem) throw bad(at, `${JSON.stringify(name)}: ${problem}`);
    const perm = mode & 0o7777;
    switch (mode & S_IFMT) {
      case S_IFDIR:
        out.push({ kind: "dir", path: name, mode: perm });
        break;
      case S_IFREG:
        if (nlink > 1) throw bad(at, `${name}: hard links are not supported`);
        out.push({ kind: "file", path: name, mode: perm, data });
        break;
      case S_IFLNK:
        if (size === 0) throw bad(at, `${name}: a symbolic link without a target`);
        out.push({ kind: "symlink", path: name, target: decoder.decode(data) });
        break;
      default:
        throw bad(at, `${name}: only directories, files and symbolic links are supported`);
    }
  }
}

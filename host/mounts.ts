/**
 * Mounts and block devices for the appliance's early boot: which filesystems are mounted, the
 * label of an ext2/3/4 superblock, and finding the data disk by its label.
 */
import { runChecked, type RunCommand } from "./run.ts";

/** One line of /proc/mounts. */
export interface MountEntry {
  source: string;
  target: string;
  fstype: string;
  options: string;
}

/** Parses /proc/mounts (octal escapes such as \040 decoded). */
export function parseMounts(text: string): MountEntry[] {
  const unescape = (s: string) =>
    s.replace(/\\([0-7]{3})/g, (_, o) => String.fromCharCode(parseInt(o, 8)));
  return text.split("\n").filter((l) => l.trim() !== "").map((line) => {
    const [source, target, fstype, options] = line.split(" ");
    return { source: unescape(source), target: unescape(target), fstype, options: options ?? "" };
  });
}

/** Reads /proc/mounts, or returns [] when /proc is not mounted. */
export function readMounts(path = "/proc/mounts"): MountEntry[] {
  try {
    return parseMounts(Deno.readTextFileSync(path));
  } catch {
    return [];
  }
}

/** A filesystem to mount. */
export interface MountSpec {
  source: string;
  target: string;
  fstype: string;
  options?: string;
}

/** Options of {@linkcode mountOnce}. */
export interface MountOnceOptions {
  run: RunCommand;
  mounts?: () => MountEntry[];
}

/** Mounts spec unless something is already mounted on its target; returns whether it mounted. */
export async function mountOnce(spec: MountSpec, options: MountOnceOptions): Promise<boolean> {
  const mounts = (options.mounts ?? (() => readMounts()))();
  if (mounts.some((m) => m.target === spec.target)) return false;
  await Deno.mkdir(spec.target, { recursive: true });
  const argv = ["mount", "-t", spec.fstype];
  if (spec.options) argv.push("-o", spec.options);
  await runChecked(options.run, [...argv, spec.source, spec.target]);
  return true;
}

const EXT_MAGIC_OFFSET = 0x438;
const EXT_LABEL_OFFSET = 0x478;

/** The volume label of an ext2/3/4 filesystem from its first 2 KiB, or null if it is not one. */
export function ext4Label(head: Uint8Array): string | null {
  if (head.length < EXT_LABEL_OFFSET + 16) return null;
  if (head[EXT_MAGIC_OFFSET] !== 0x53 || head[EXT_MAGIC_OFFSET + 1] !== 0xef) return null;
  const raw = head.subarray(EXT_LABEL_OFFSET, EXT_LABEL_OFFSET + 16);
  const end = raw.indexOf(0);
  return new TextDecoder().decode(end < 0 ? raw : raw.subarray(0, end));
}

/** Options of {@linkcode findByLabel}. */
export interface FindByLabelOptions {
  /** Where block devices are listed (default /sys/class/block). */
  sysBlock?: string;
  /** Where their nodes are (default /dev). */
  devDir?: string;
}

/** Finds the block device (e.g. /dev/vda) holding an ext2/3/4 filesystem labelled `label`. */
export async function findByLabel(
  label: string,
  options: FindByLabelOptions = {},
): Promise<string | null> {
  const sysBlock = options.sysBlock ?? "/sys/class/block";
  const devDir = options.devDir ?? "/dev";
  const names: string[] = [];
  try {
    for await (const e of Deno.readDir(sysBlock)) names.push(e.name);
  } catch {
    return null;
  }
  for (const name of names.sort()) {
    if (/^(loop|ram|zram|sr)\d/.test(name)) continue;
    const head = await readHead(`${devDir}/${name}`);
    if (head && ext4Label(head) === label) return `${devDir}/${name}`;
  }
  return null;
}

async function readHead(path: string): Promise<Uint8Array | null> {
  let file: Deno.FsFile | undefined;
  try {
    file = await Deno.open(path, { read: true });
    const buf = new Uint8Array(2048);
    let got = 0;
    while (got < buf.length) {
      const n = await file.read(buf.subarray(got));
      if (n === null) break;
      got += n;
    }
    return buf.subarray(0, got);
  } catch {
    return null;
  } finally {
    file?.close();
  }
}

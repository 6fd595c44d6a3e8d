/**
 * Local disks as guest storage sees them: what /sys/block says about each disk (model, size,
 * partitions, holders), what its superblocks say (ext2/3/4 label and UUID, an ISO 9660 volume),
 * free space of a mounted filesystem, and making a whole-disk ext4 filesystem.
 */
import { readMounts } from "./mounts.ts";
import { runChecked, type RunCommand } from "./run.ts";

/** What the first 40 KiB of a block device says about its content. */
export interface Superblock {
  /** "ext4" (any ext2/3/4), "iso9660", or null when neither was recognised. */
  fstype: "ext4" | "iso9660" | null;
  label: string;
  uuid: string;
  /** An MBR or GPT partition table signature at 510 (0x55aa). */
  partitionTable: boolean;
}

const EXT_MAGIC = 0x438;
const EXT_UUID = 0x468;
const EXT_LABEL = 0x478;
const ISO_PVD = 0x8000;
/** How many bytes {@linkcode parseSuperblock} looks at. */
export const SUPERBLOCK_BYTES = ISO_PVD + 0x48;

/** Reads the superblocks in the head of a device (pure). */
export function parseSuperblock(head: Uint8Array): Superblock {
  const text = (from: number, n: number) => {
    const raw = head.subarray(from, from + n);
    const end = raw.indexOf(0);
    return new TextDecoder().decode(end < 0 ? raw : raw.subarray(0, end)).trim();
  };
  const partitionTable = head.length >= 512 && head[510] === 0x55 && head[511] === 0xaa;
  if (head.length >= EXT_LABEL + 16 && head[EXT_MAGIC] === 0x53 && head[EXT_MAGIC + 1] === 0xef) {
    const u = [...head.subarray(EXT_UUID, EXT_UUID + 16)].map((b) =>
      b.toString(16).padStart(2, "0")
    ).join("");
    const uuid = `${u.slice(0, 8)}-${u.slice(8, 12)}-${u.slice(12, 16)}-${u.slice(16, 20)}-${
      u.slice(20)
    }`;
    return { fstype: "ext4", label: text(EXT_LABEL, 16), uuid, partitionTable: false };
  }
  if (head.length >= ISO_PVD + 0x48 && text(ISO_PVD + 1, 5) === "CD001") {
    return { fstype: "iso9660", label: text(ISO_PVD + 0x28, 32), uuid: "", partitionTable };
  }
  return { fstype: null, label: "", uuid: "", partitionTable };
}

/** Reads a device's head and its superblocks; null when it cannot be opened. */
export async function readSuperblock(path: string): Promise<Superblock | null> {
  let file: Deno.FsFile | undefined;
  try {
    file = await Deno.open(path, { read: true });
    const buf = new Uint8Array(SUPERBLOCK_BYTES);
    let got = 0;
    while (got < buf.length) {
      const n = await file.read(buf.subarray(got));
      if (n === null) break;
      got += n;
    }
    return parseSuperblock(buf.subarray(0, got));
  } catch {
    return null;
  } finally {
    file?.close();
  }
}

/** One partition of a disk. */
export interface Partition {
  name: string;
  path: string;
  sizeBytes: number;
  superblock: Superblock | null;
}

/** One whole disk as /sys/block and its superblocks describe it. */
export interface BlockDisk {
  /** Kernel name, e.g. `vdb`, `sda`, `loop5`. */
  name: string;
  /** Device node, e.g. `/dev/vdb`. */
  path: string;
  model: string;
  sizeBytes: number;
  removable: boolean;
  readOnly: boolean;
  /** Devices built on it (device-mapper, md). */
  holders: string[];
  partitions: Partition[];
  superblock: Superblock | null;
}

/** Kernel names that are never local disks. */
const NOT_DISKS = /^(ram|zram|sr|fd|dm-|md|nbd|loop)\d*/;

/** Where {@linkcode readDisks} looks. */
export interface ReadDisksOptions {
  /** Default /sys/block. */
  sysBlock?: string;
  /** Default /dev. */
  devDir?: string;
  /** Only these device nodes (e.g. loop devices in hosted mode); default: every local disk. */
  only?: string[];
}

/** The local disks (or only the listed ones), sorted by name. */
export async function readDisks(options: ReadDisksOptions = {}): Promise<BlockDisk[]> {
  const sysBlock = options.sysBlock ?? "/sys/block";
  const devDir = options.devDir ?? "/dev";
  let names: string[] = [];
  if (options.only) {
    names = options.only.map((p) => p.replace(/^\/dev\//, ""));
  } else {
    try {
      for await (const e of Deno.readDir(sysBlock)) names.push(e.name);
    } catch {
      return [];
    }
    names = names.filter((n) => !NOT_DISKS.test(n));
  }
  const out: BlockDisk[] = [];
  for (const name of names.sort()) {
    const dir = `${sysBlock}/${name}`;
    const size = await readSys(`${dir}/size`);
    if (size === null) continue; // no such disk (an --storage-disks entry that is gone)
    const partitions: Partition[] = [];
    for (const e of await dirEntries(dir)) {
      if (!e.name.startsWith(name) || await readSys(`${dir}/${e.name}/partition`) === null) {
        continue;
      }
      partitions.push({
        name: e.name,
        path: `${devDir}/${e.name}`,
        sizeBytes: Number(await readSys(`${dir}/${e.name}/size`) ?? 0) * 512,
        superblock: await readSuperblock(`${devDir}/${e.name}`),
      });
    }
    partitions.sort((a, b) => a.name.localeCompare(b.name, "en", { numeric: true }));
    const holders: string[] = [];
    for (const e of await dirEntries(`${dir}/holders`)) {
      holders.push(e.name);
    }
    // A virtio disk has no model, and its vendor is the PCI id 0x1af4: call it what it is.
    const virtio = (await readSys(`${dir}/device/modalias`))?.startsWith("virtio:") ?? false;
    const vendor = virtio ? "" : await readSys(`${dir}/device/vendor`) ?? "";
    const model = await readSys(`${dir}/device/model`) ??
      (await readSys(`${dir}/loop/backing_file`))?.replace(/^/, "loop: ") ??
      (virtio ? "virtio disk" : "");
    out.push({
      name,
      path: `${devDir}/${name}`,
      model: [vendor, model].filter((s) => s !== "").join(" ") || "-",
      sizeBytes: Number(size) * 512,
      removable: await readSys(`${dir}/removable`) === "1",
      readOnly: await readSys(`${dir}/ro`) === "1",
      holders: holders.sort(),
      partitions,
      superblock: await readSuperblock(`${devDir}/${name}`),
    });
  }
  return out;
}

/** Where a disk is mounted (the disk itself or one of its partitions), from /proc/mounts. */
export function mountsOf(disk: BlockDisk, mounts = readMounts()): string[] {
  const nodes = new Set([disk.path, ...disk.partitions.map((p) => p.path)]);
  return mounts.filter((m) => nodes.has(m.source)).map((m) => m.target);
}

/** Devices in use as swap, from /proc/swaps. */
export function swapDevices(text = readText("/proc/swaps")): string[] {
  return text.split("\n").slice(1).map((l) => l.split(/\s+/)[0]).filter((s) => s !== "");
}

/** Free and total bytes of the filesystem holding `path` (`df -Pk`, busybox or coreutils). */
export async function freeSpace(
  run: RunCommand,
  path: string,
): Promise<{ freeBytes: number; totalBytes: number }> {
  const out = await runChecked(run, ["df", "-Pk", path]);
  return parseDf(out);
}

/** Parses the second line of `df -Pk` (pure). */
export function parseDf(out: string): { freeBytes: number; totalBytes: number } {
  const line = out.trim().split("\n")[1] ?? "";
  const cols = line.trim().split(/\s+/);
  const total = Number(cols[1]);
  const free = Number(cols[3]);
  if (!Number.isFinite(total) || !Number.isFinite(free)) {
    throw new Error(`cannot read df output: ${JSON.stringify(out)}`);
  }
  return { freeBytes: free * 1024, totalBytes: total * 1024 };
}

/** Options of {@linkcode makeExt4}. */
export interface MakeExt4Options {
  label: string;
  uuid: string;
  run: RunCommand;
}

/**
 * Makes one ext4 filesystem over a whole disk: wipes the first and last MiB (old partition
 * tables and superblocks, GPT's backup at the end), then `mke2fs -t ext4` with the label and
 * UUID KaOS records, no reserved blocks, lazy inode tables.
 */
export async function makeExt4(device: string, options: MakeExt4Options): Promise<void> {
  const zero = new Uint8Array(1024 * 1024);
  const file = await Deno.open(device, { write: true });
  try {
    const size = await file.seek(0, Deno.SeekMode.End);
    for (const at of [0, Math.max(0, size - zero.length)]) {
      await file.seek(at, Deno.SeekMode.Start);
      let done = 0;
      const n = Math.min(zero.length, size - at);
      while (done < n) done += await file.write(zero.subarray(done, n));
    }
    await file.syncData();
  } finally {
    file.close();
  }
  // e2fsprogs' mke2fs (the appliance carries it; busybox's applet makes only ext2).
  const mke2fs = await Deno.stat("/usr/sbin/mke2fs").then(() => "/usr/sbin/mke2fs", () => "mke2fs");
  await runChecked(options.run, [
    mke2fs,
    ...["-t", "ext4", "-F", "-q", "-m", "0"],
    ...["-L", options.label, "-U", options.uuid],
    ...["-E", "lazy_itable_init=1,lazy_journal_init=1"],
    device,
  ]);
}

async function dirEntries(path: string): Promise<Deno.DirEntry[]> {
  const out: Deno.DirEntry[] = [];
  try {
    for await (const e of Deno.readDir(path)) out.push(e);
  } catch { /* not there */ }
  return out;
}

async function readSys(path: string): Promise<string | null> {
  try {
    return (await Deno.readTextFile(path)).trim();
  } catch {
    return null;
  }
}

function readText(path: string): string {
  try {
    return Deno.readTextFileSync(path);
  } catch {
    return "";
  }
}

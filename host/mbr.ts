/**
 * Growing the appliance's data partition to the end of its stick. The image is a hybrid ISO whose
 * MBR lists the ISO, the EFI system partition and KAOSDATA last (scripts/build-image), so growing
 * is one edit of one MBR entry: {@linkcode growMbrEntry} computes it (pure), and
 * {@linkcode growPartitionToDisk} writes it to the disk and has the kernel read the table again.
 */
import { type RunCommand, runCommand } from "./run.ts";

/** What {@linkcode growMbrEntry} found out about one MBR partition entry. */
export interface MbrGrowth {
  /** Sector 0 with the entry's size changed. */
  sector: Uint8Array;
  /** First sector of the partition. */
  start: number;
  /** Sectors before and after. */
  oldSectors: number;
  newSectors: number;
}

const MBR_LIMIT = 0xffff_ffff;
/** Less free space than this (1 MiB) after the partition is not worth a change. */
const MIN_GROWTH_SECTORS = 2048;

/**
 * Sector 0 of a disk with MBR partition `number` (1-4) grown to the end of a disk of
 * `diskSectors` sectors, or null when there is nothing to do or it must not be done: no MBR
 * signature, a GPT (protective 0xEE entry), an empty entry, another partition after it, or less
 * than 1 MiB to gain. Sizes stay within what an MBR can say (2 TiB of 512-byte sectors).
 */
export function growMbrEntry(
  sector0: Uint8Array,
  options: { number: number; diskSectors: number },
): MbrGrowth | null {
  const { number, diskSectors } = options;
  if (sector0.length < 512 || number < 1 || number > 4) return null;
  if (sector0[510] !== 0x55 || sector0[511] !== 0xaa) return null;
  const view = new DataView(sector0.buffer, sector0.byteOffset, 512);
  const entry = (i: number) => {
    const off = 446 + 16 * (i - 1);
    return {
      off,
      type: sector0[off + 4],
      start: view.getUint32(off + 8, true),
      sectors: view.getUint32(off + 12, true),
    };
  };
  const me = entry(number);
  if (me.type === 0 || me.type === 0xee || me.sectors === 0) return null;
  for (let i = 1; i <= 4; i++) {
    const e = entry(i);
    if (e.type === 0xee) return null;
    if (i !== number && e.type !== 0 && e.start >= me.start + me.sectors) return null;
  }
  const end = Math.min(diskSectors, me.start + MBR_LIMIT);
  const newSectors = end - me.start;
  if (newSectors - me.sectors < MIN_GROWTH_SECTORS) return null;
  const out = sector0.slice(0, 512);
  new DataView(out.buffer).setUint32(me.off + 12, newSectors, true);
  return { sector: out, start: me.start, oldSectors: me.sectors, newSectors };
}

/** Options of {@linkcode growPartitionToDisk}. */
export interface GrowPartitionOptions {
  run?: RunCommand;
  /** Where block devices are listed (default /sys/class/block). */
  sysBlock?: string;
  /** Where their nodes are (default /dev). */
  devDir?: string;
}

/**
 * Grows partition `dev` (e.g. /dev/sda3) to the end of its disk when it is the last MBR partition
 * and the disk has room after it; returns the new size in bytes, or null when nothing changed.
 * Writes sector 0, syncs it, then `blockdev --rereadpt` (the disk's partitions must not be in use).
 */
export async function growPartitionToDisk(
  dev: string,
  options: GrowPartitionOptions = {},
): Promise<number | null> {
  const sys = options.sysBlock ?? "/sys/class/block";
  const devDir = options.devDir ?? "/dev";
  const run = options.run ?? runCommand;
  const name = dev.split("/").pop()!;
  const number = Number(await readSys(`${sys}/${name}/partition`));
  if (!Number.isInteger(number) || number < 1) return null; // a whole disk
  const real = await Deno.realPath(`${sys}/${name}`);
  const disk = real.split("/").slice(-2, -1)[0];
  const diskSectors = Number(await readSys(`${sys}/${disk}/size`));
  if (!(diskSectors > 0) || (await readSys(`${sys}/${disk}/ro`)) === "1") return null;
  const file = await Deno.open(`${devDir}/${disk}`, { read: true, write: true });
  try {
    const sector0 = new Uint8Array(512);
    let got = 0;
    while (got < 512) {
      const n = await file.read(sector0.subarray(got));
      if (n === null) return null;
      got += n;
    }
    const growth = growMbrEntry(sector0, { number, diskSectors });
    if (!growth) return null;
    await file.seek(0, Deno.SeekMode.Start);
    let put = 0;
    while (put < 512) put += await file.write(growth.sector.subarray(put));
    await file.sync();
    file.close();
    const r = await run(["blockdev", "--rereadpt", `${devDir}/${disk}`]);
    if (r.code !== 0) {
      throw new Error(
        `grew ${dev} in the partition table, but the kernel did not re-read it: ${r.stderr.trim()}`,
      );
    }
    return growth.newSectors * 512;
  } finally {
    try {
      file.close();
    } catch { /* closed above */ }
  }
}

async function readSys(path: string): Promise<string> {
  try {
    return (await Deno.readTextFile(path)).trim();
  } catch {
    return "";
  }
}

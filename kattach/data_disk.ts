/**
 * The appliance's data partition (the ext4 file system labelled KAOSDATA, on the stick itself
 * or on any disk): found by label, grown to the end of its stick on first boot, checked with
 * `e2fsck -p`, mounted on the state directory. What happened is a {@linkcode DataDiskStatus} that
 * `system status` shows. A partition that is found but cannot be checked or mounted is never
 * replaced silently: the state directory becomes a RAM directory only so kattach can report the
 * problem, and the store refuses every change that would be lost (kattach/boot.ts).
 */
import { findByLabel, growPartitionToDisk, mountOnce, type RunCommand } from "../host/mod.ts";
import type { DataDiskStatus } from "../ipc/mod.ts";

/** Options of {@linkcode mountDataDisk}. */
export interface DataDiskOptions {
  run: RunCommand;
  log: (line: string) => void;
  /** The ext4 label looked for. */
  label: string;
  /** Where the file system is mounted. */
  target: string;
  /** How long to wait for the disk to appear (USB sticks enumerate late). */
  waitMs: number;
  /**
   * Drivers still loading (the appliance's second modprobe group: EHCI/UHCI/OHCI, AHCI, NVMe):
   * the wait goes on until `waitMs` after they settle, so a disk behind them is found too.
   */
  driversLoading?: Promise<unknown>;
  /** Injected for tests: finds the device holding the label. */
  find?: (label: string) => Promise<string | null>;
  /** Injected for tests: grows a partition to the end of its disk (bytes, or null). */
  grow?: (dev: string) => Promise<number | null>;
}

/** Finds, grows, checks and mounts the data partition; never throws. */
export async function mountDataDisk(options: DataDiskOptions): Promise<DataDiskStatus> {
  const { run, log, label, target } = options;
  const find = options.find ?? ((l: string) => findByLabel(l));
  const grow = options.grow ?? ((dev: string) => growPartitionToDisk(dev, { run }));
  const ram = async () => {
    await mountOnce({ source: "tmpfs", target, fstype: "tmpfs", options: "mode=0700" }, { run });
  };

  let dev: string | null = null;
  let end = Date.now() + options.waitMs;
  let loading = options.driversLoading !== undefined;
  options.driversLoading?.catch(() => {}).finally(() => {
    loading = false;
    end = Math.max(end, Date.now() + options.waitMs);
  });
  while ((dev = await find(label)) === null && (loading || Date.now() < end)) {
    await new Promise((r) => setTimeout(r, 100));
  }
  if (dev === null) {
    await ram();
    const detail = `no disk labelled ${label}: state lives in RAM and is lost at power-off`;
    log(detail);
    return { state: "absent", device: null, detail };
  }

  const failed = async (why: string): Promise<DataDiskStatus> => {
    const detail = `the data partition ${dev} (${label}) ${why}; ` +
      "kattach refuses changes, which would be lost at power-off";
    log(`WARNING: ${detail}`);
    await ram().catch((err) => log(`cannot mount a RAM directory on ${target}: ${err}`));
    return { state: "failed", device: dev, detail };
  };

  // Grow first: the stick's partitions are not in use yet, so the kernel can re-read the table.
  let grown: number | null = null;
  try {
    grown = await grow(dev);
    if (grown !== null) {
      log(`data partition ${dev} grown to ${mib(grown)} MiB (end of its disk)`);
      // The kernel re-read the table: the partition's node comes back a moment later.
      const until = Date.now() + 5_000;
      while (!(await exists(dev)) && Date.now() < until) {
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  } catch (err) {
    log(`data partition ${dev} not grown: ${err instanceof Error ? err.message : err}`);
  }

  // Also when an earlier boot grew the partition but not its file system (power cut, failure).
  const resize = grown !== null || await fsSmallerThanPartition(dev);

  // e2fsck -p: 0 clean, 1 errors fixed, 2 fixed (reboot advised); 4 and up: not fixed, or worse.
  // A grown partition gets a full check (-f): resize2fs insists on one, and it is cheap on the
  // small file system the image carries.
  const fsck = await run(["e2fsck", ...(resize ? ["-f", "-p"] : ["-p"]), dev]);
  if (fsck.code === 127) {
    log("e2fsck is missing from the image: the data partition is mounted unchecked");
  } else if (fsck.code >= 4) {
    const said = (fsck.stdout + fsck.stderr).trim().split("\n").slice(-2).join(" ");
    return await failed(`is damaged and e2fsck -p cannot repair it (exit ${fsck.code}: ${said})`);
  } else if (fsck.code !== 0) {
    log(`e2fsck -p repaired the data partition ${dev} (exit ${fsck.code})`);
  }

  if (resize) {
    // Offline, before the mount: an online resize needs more of the kernel and of resize2fs.
    const r = await run(["resize2fs", dev]);
    log(
      r.code === 0
        ? `data file system on ${dev} resized to its partition`
        : `resize2fs ${dev} failed (exit ${r.code}): ${(r.stdout + r.stderr).trim()}`,
    );
  }
  try {
    await mountOnce({ source: dev, target, fstype: "ext4", options: "noatime" }, { run });
  } catch (err) {
    return await failed(`cannot be mounted (${err instanceof Error ? err.message : err})`);
  }
  const detail = `${dev} (${label}) mounted on ${target}`;
  log(`data disk ${detail}`);
  return { state: "mounted", device: dev, detail };
}

/** True when the ext4 file system on `dev` ends more than 1 MiB before its partition does. */
async function fsSmallerThanPartition(dev: string): Promise<boolean> {
  try {
    const name = dev.split("/").pop()!;
    const sectors = Number((await Deno.readTextFile(`/sys/class/block/${name}/size`)).trim());
    const f = await Deno.open(dev, { read: true });
    const sb = new Uint8Array(1024);
    try {
      await f.seek(1024, Deno.SeekMode.Start);
      let got = 0;
      while (got < sb.length) {
        const n = await f.read(sb.subarray(got));
        if (n === null) return false;
        got += n;
      }
    } finally {
      f.close();
    }
    const v = new DataView(sb.buffer);
    if (v.getUint16(0x38, true) !== 0xef53) return false;
    const blockSize = 1024 << v.getUint32(24, true);
    const is64 = (v.getUint32(0x60, true) & 0x80) !== 0; // INCOMPAT_64BIT
    const blocks = v.getUint32(4, true) + (is64 ? v.getUint32(0x150, true) * 2 ** 32 : 0);
    return sectors * 512 - blocks * blockSize > 1048576;
  } catch {
    return false;
  }
}

async function exists(path: string): Promise<boolean> {
  return await Deno.stat(path).then(() => true, () => false);
}

function mib(bytes: number): number {
  return Math.round(bytes / 1048576);
}

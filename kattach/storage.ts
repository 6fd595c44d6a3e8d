/**
 * Guest storage: local disks that `storage init` made into a whole-disk ext4 filesystem labelled
 * `KAOS-<name>` and recorded by UUID. kattach mounts every recorded storage at start (under
 * `STATE/storage/<name>`), reports the missing ones, places each new instance on the mounted
 * storage with the most free space (or the one its VM image names), and keeps that instance's
 * overlays and runtime files there. Without any storage, instances live in the state directory
 * (the appliance's data partition; a hosted kattach's --state) and KaOS says so.
 *
 * Which disks are candidates: on the appliance every local disk; in hosted mode only the devices
 * given with `kattach --hosted --storage-disks` (a developer's real disks are never offered).
 */
import {
  type BlockDisk,
  freeSpace,
  makeExt4,
  mountsOf,
  readDisks,
  readMounts,
  runChecked,
  runCommand,
  swapDevices,
} from "../host/mod.ts";
import type { DiskInfo, StorageInfo, StorageList } from "../ipc/mod.ts";
import { UserError } from "../lib/errors.ts";
import type { Kattach } from "./actions/_types.ts";
import {
  getStorage,
  insertStorage,
  instancesOn,
  instanceStorage,
  listStorage,
  setStorageDevice,
  type StorageRow,
} from "./store_storage.ts";

/** Labels of the boot stick's filesystems (the data partition; the image's ISO volume). */
const BOOT_LABELS = /^(KAOSDATA|KAOS[_-]?BOOT|KAOS[_ -]\d.*|KAOS)$/;
/** The smallest disk worth making into storage. */
const MIN_STORAGE_BYTES = 64 * 1024 * 1024;
/**
 * Where instances without a storage live, in words: the appliance's data partition, or a hosted
 * kattach's state directory (which is no partition of KaOS').
 */
export function instanceHome(k: Kattach): string {
  return k.mode === "appliance" ? "the data partition" : `the state directory ${k.stateDir}`;
}

/** Said wherever KaOS has no storage (status, `storage list`, deploy). */
export function noStorageNotice(k: Kattach): string {
  return `No guest storage: instances live ${k.mode === "appliance" ? "on" : "in"} ` +
    `${instanceHome(k)} (see \`storage list\`, then \`storage init DISK\`)`;
}

/** Where a storage is mounted. */
export function storageMountpoint(k: Kattach, name: string): string {
  return `${k.stateDir}/storage/${name}`;
}

/** True when something is mounted on the storage's mountpoint. */
export function isMounted(k: Kattach, name: string): boolean {
  const target = storageMountpoint(k, name);
  return readMounts().some((m) => m.target === target);
}

/** The directory an instance's runtime files live under (its storage or the state dir). */
export function instanceRoot(k: Kattach, instance: string): string {
  const storage = instanceStorage(k.store, instance);
  return storage === null ? k.stateDir : storageMountpoint(k, storage);
}

/** Like {@linkcode instanceRoot}, but a UserError when the instance's storage is not mounted. */
export function requireInstanceRoot(k: Kattach, instance: string): string {
  const storage = instanceStorage(k.store, instance);
  if (storage === null) return k.stateDir;
  if (!isMounted(k, storage)) {
    throw new UserError(`Cannot start ${instance}: its storage ${storage} is missing`, {
      hint: "attach the disk and restart KaOS, or delete the instance (`storage list`)",
      code: "missing",
    });
  }
  return storageMountpoint(k, storage);
}

/** The disks this kattach may consider. */
async function candidateDisks(k: Kattach): Promise<BlockDisk[]> {
  if (k.mode === "hosted") {
    const only = k.storageDisks ?? [];
    return only.length === 0 ? [] : await readDisks({ only });
  }
  return await readDisks();
}

/** True for the disk KaOS booted from or keeps its state on. */
function isBootDisk(k: Kattach, disk: BlockDisk, mounts: ReturnType<typeof readMounts>): boolean {
  const labels = [disk.superblock, ...disk.partitions.map((p) => p.superblock)]
    .map((s) => s?.label ?? "");
  if (labels.some((l) => BOOT_LABELS.test(l))) return true;
  // The filesystem holding the state directory (the appliance: its data partition).
  const holder =
    mounts.filter((m) => k.stateDir === m.target || k.stateDir.startsWith(`${m.target}/`))
      .sort((a, b) => b.target.length - a.target.length)[0];
  return holder !== undefined &&
    [disk.path, ...disk.partitions.map((p) => p.path)].includes(holder.source);
}

/** What `storage list` says about one disk. */
function describeDisk(
  k: Kattach,
  disk: BlockDisk,
  facts: { rows: StorageRow[]; mounts: ReturnType<typeof readMounts>; swaps: string[] },
): DiskInfo {
  const used: string[] = [];
  if (isBootDisk(k, disk, facts.mounts)) used.push("KaOS boot stick");
  const row = facts.rows.find((r) => r.uuid !== "" && r.uuid === disk.superblock?.uuid);
  if (row) used.push(`KaOS storage ${row.name}`);
  const mountedOn = mountsOf(disk, facts.mounts);
  if (mountedOn.length > 0 && !row) used.push(`mounted on ${mountedOn.join(", ")}`);
  if (disk.holders.length > 0) used.push(`held by ${disk.holders.join(", ")}`);
  const nodes = [disk.path, ...disk.partitions.map((p) => p.path)];
  if (facts.swaps.some((s) => nodes.includes(s))) used.push("swap");
  if (disk.readOnly) used.push("read-only");
  if (disk.sizeBytes < MIN_STORAGE_BYTES) used.push("too small");
  const label = disk.superblock?.fstype
    ? `${disk.superblock.fstype}${disk.superblock.label ? ` ${disk.superblock.label}` : ""}`
    : disk.partitions.map((p) =>
      `${p.name}${p.superblock?.fstype ? ` ${p.superblock.fstype}` : ""}${
        p.superblock?.label ? ` ${p.superblock.label}` : ""
      }`
    ).join(", ");
  return {
    device: disk.path,
    model: disk.model,
    sizeBytes: disk.sizeBytes,
    label,
    inUseBy: used.join("; "),
    candidate: used.length === 0,
  };
}

/** One recorded storage with its live state. */
async function storageInfo(k: Kattach, row: StorageRow): Promise<StorageInfo> {
  const mounted = isMounted(k, row.name);
  const free = mounted
    ? await freeSpace(runCommand, storageMountpoint(k, row.name)).catch(() => null)
    : null;
  return {
    ...row,
    state: mounted ? "mounted" : "missing",
    mountpoint: storageMountpoint(k, row.name),
    freeBytes: free?.freeBytes ?? null,
    instances: instancesOn(k.store, row.name).length,
  };
}

/** `storage list`: the storages, the disks and a notice when nothing is mounted. */
export async function listStorageAndDisks(k: Kattach): Promise<StorageList> {
  const rows = listStorage(k.store);
  const storages = await Promise.all(rows.map((r) => storageInfo(k, r)));
  const facts = { rows, mounts: readMounts(), swaps: swapDevices() };
  const disks = (await candidateDisks(k)).map((d) => describeDisk(k, d, facts));
  return {
    storages,
    disks,
    notice: storages.some((s) => s.state === "mounted") ? null : noStorageNotice(k),
  };
}

const busyDisks = new Set<string>();

/** `storage init DISK [--name N]`: makes the filesystem, mounts it and records it. */
export async function initStorage(
  k: Kattach,
  options: { disk: string; name?: string; progress(message: string): void },
): Promise<StorageInfo> {
  const path = options.disk.startsWith("/dev/") ? options.disk : `/dev/${options.disk}`;
  const disks = await candidateDisks(k);
  const disk = disks.find((d) => d.path === path);
  if (!disk) {
    throw new UserError(`Cannot init ${path}: no such local disk`, {
      hint: k.mode === "hosted"
        ? "hosted kattach offers only the disks given with --storage-disks"
        : "see `storage list` for the disks",
      code: "not-found",
    });
  }
  const rows = listStorage(k.store);
  const info = describeDisk(k, disk, { rows, mounts: readMounts(), swaps: swapDevices() });
  if (!info.candidate) {
    throw new UserError(`Cannot init ${path}: it is in use (${info.inUseBy})`, {
      hint: "choose a disk `storage list` shows as free",
      code: "in-use",
    });
  }
  const name = options.name ?? defaultName(disk.name, rows);
  if (getStorage(k.store, name)) {
    throw new UserError(`Cannot init ${path} as ${name}: storage ${name} exists already`, {
      hint: "choose another --name",
      code: "conflict",
    });
  }
  if (busyDisks.has(path)) {
    throw new UserError(`Cannot init ${path}: another storage init is working on it`, {
      code: "in-use",
    });
  }
  busyDisks.add(path);
  try {
    const uuid = crypto.randomUUID();
    const label = `KAOS-${name}`;
    options.progress(`making an ext4 filesystem labelled ${label} on ${path}`);
    await makeExt4(path, { label, uuid, run: runCommand });
    const mountpoint = storageMountpoint(k, name);
    await Deno.mkdir(mountpoint, { recursive: true, mode: 0o700 });
    await runChecked(runCommand, ["mount", "-t", "ext4", "-o", "noatime", path, mountpoint]);
    const row: StorageRow = {
      name,
      uuid,
      label,
      device: path,
      model: disk.model,
      sizeBytes: disk.sizeBytes,
      createdAt: new Date().toISOString(),
    };
    k.store.tx(() => insertStorage(k.store, row));
    k.log(`storage: ${path} (${disk.model}) is storage ${name} (${uuid}) on ${mountpoint}`);
    return await storageInfo(k, row);
  } finally {
    busyDisks.delete(path);
  }
}

function defaultName(device: string, rows: StorageRow[]): string {
  const taken = new Set(rows.map((r) => r.name));
  if (/^[a-z][a-z0-9]{0,10}$/.test(device) && !taken.has(device)) return device;
  for (let n = 1;; n++) if (!taken.has(`disk${n}`)) return `disk${n}`;
}

/** Mounts every recorded storage that is not mounted yet; returns the names of missing ones. */
export async function mountAllStorage(k: Kattach): Promise<string[]> {
  const rows = listStorage(k.store);
  if (rows.length === 0) return [];
  const disks = await candidateDisks(k);
  const missing: string[] = [];
  for (const row of rows) {
    if (isMounted(k, row.name)) continue;
    const disk = disks.find((d) => d.superblock?.uuid === row.uuid);
    if (!disk) {
      missing.push(row.name);
      k.log(
        `storage: ${row.name} is missing (no disk with UUID ${row.uuid}; last on ${row.device})`,
      );
      continue;
    }
    const mountpoint = storageMountpoint(k, row.name);
    try {
      await Deno.mkdir(mountpoint, { recursive: true, mode: 0o700 });
      await runChecked(runCommand, ["mount", "-t", "ext4", "-o", "noatime", disk.path, mountpoint]);
    } catch (err) {
      missing.push(row.name);
      k.log(
        `storage: cannot mount ${row.name} (${disk.path}): ${
          err instanceof Error ? err.message : err
        }`,
      );
      continue;
    }
    if (disk.path !== row.device) k.store.tx(() => setStorageDevice(k.store, row.name, disk.path));
    k.log(`storage: ${row.name} (${disk.path}) mounted on ${mountpoint}`);
  }
  return missing;
}

/** Unmounts a storage (before `storage del` forgets it). */
export async function unmountStorage(k: Kattach, name: string): Promise<void> {
  const mountpoint = storageMountpoint(k, name);
  if (isMounted(k, name)) await runChecked(runCommand, ["umount", mountpoint]);
  await Deno.remove(mountpoint).catch(() => {});
}

/**
 * Where new instances of a VM image go: the storage it names (which must be mounted), else the
 * mounted storage with the most free space, else null (the state directory: instanceHome).
 */
export async function placeInstances(k: Kattach, wanted: string | null): Promise<string | null> {
  if (wanted !== null) {
    if (!isMounted(k, wanted)) {
      throw new UserError(`Cannot deploy on storage ${wanted}: it is missing`, {
        hint: "attach its disk and restart KaOS, or `vmimage create … --storage` another one",
        code: "missing",
      });
    }
    return wanted;
  }
  let best: { name: string; free: number } | null = null;
  for (const row of listStorage(k.store)) {
    if (!isMounted(k, row.name)) continue;
    const { freeBytes } = await freeSpace(runCommand, storageMountpoint(k, row.name));
    if (!best || freeBytes > best.free) best = { name: row.name, free: freeBytes };
  }
  return best?.name ?? null;
}

/** What `system status` says about storage. */
export function storageStatus(
  k: Kattach,
): { mounted: string[]; missing: string[]; notice: string | null } {
  const names = listStorage(k.store).map((r) => r.name);
  const mounted = names.filter((n) => isMounted(k, n));
  const missing = names.filter((n) => !mounted.includes(n));
  return { mounted, missing, notice: mounted.length === 0 ? noStorageNotice(k) : null };
}

/**
 * The appliance's second archive (buildroot/appliance/README.md, "Two archives"): what only the
 * guests need (QEMU, its libraries and firmware, dnsmasq) is not in the initramfs GRUB loads but in
 * a zstd-compressed newc cpio beside it on the boot medium (`/boot/late.cpio.zst` in the ISO 9660
 * file system); so are the built-in queue's modules (`/boot/local-queue.cpio.zst`). PID 1 unpacks
 * them into RAM once the SSH service listens and kattach is ready, checked against the size and
 * sha256 the image carries (`/kaos/late.json`, `/kaos/late-queue.json`), all of an archive into a
 * staging directory first and moved into place only when whole; instance starts and the built-in
 * queue wait for them, and a missing or corrupt archive fails them with the reason.
 */
import { z } from "zod";
import { runChecked, type RunCommand } from "../host/mod.ts";
import { describeIssues, UserError } from "../lib/mod.ts";

/** What the initramfs says of the second archive (written by buildroot/appliance/build). */
export const LateManifest = z.strictObject({
  /** Its path in the boot medium's file system. */
  file: z.string().regex(/^\/boot\/[A-Za-z0-9._-]+$/),
  bytes: z.number().int().positive(),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
});
/** What the initramfs says of the second archive. */
export type LateManifest = z.infer<typeof LateManifest>;

/** Where the initramfs carries the manifest of QEMU's archive (buildroot/appliance/build). */
export const LATE_MANIFEST_FILE = "/kaos/late.json";
/** Where the image's small queue cpio carries the manifest of the queue's (scripts/build-image). */
export const LATE_QUEUE_MANIFEST_FILE = "/kaos/late-queue.json";

/** Reads and checks the manifest; undefined when the image has none (one archive only). */
export async function readLateManifest(
  path = LATE_MANIFEST_FILE,
): Promise<LateManifest | undefined> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return undefined;
    throw err;
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new UserError(`${path} is not JSON: ${err instanceof Error ? err.message : err}`);
  }
  const r = LateManifest.safeParse(json);
  if (!r.success) throw new UserError(`${path}: ${describeIssues(r.error.issues)}`);
  return r.data;
}

/** What {@linkcode installLateArchive} did. */
export interface LateInstall {
  files: number;
  bytes: number;
  /** ms spent copying the archive into RAM, checking its sha256, unpacking and moving. */
  ms: { copy: number; check: number; unpack: number; move: number };
}

/** Options of {@linkcode installLateArchive}. */
export interface InstallLateOptions {
  manifest: LateManifest;
  /** Where the archive's paths go; the staging directory and the archive's copy go there too. */
  root: string;
  /** The archive's name in messages (the boot medium's device and path). */
  source: string;
  run: RunCommand;
  /** The cpio program (default `cpio`: busybox's in the image). */
  cpio?: string[];
}

/**
 * Installs the archive at `file`: copies it next to `root` (a RAM file system on the appliance:
 * what is checked is what is unpacked, even if the medium changes meanwhile), checks its size and
 * sha256 (`sha256sum`), unpacks it with `zstd -dc | cpio -i` into `${root}/.kaos-late.partial`
 * and, only when all of it is there and holds nothing but directories, files and symbolic links,
 * moves the files and links to their places under `root` (renames on one file system). The bytes
 * never pass through kattach's heap (the runtime is about 13 MiB compressed, 50 MiB unpacked). On
 * any error nothing has been moved and the staging directory and the copy are removed.
 *
 * The archive is trusted once its sha256 matches the manifest in the initramfs: cpio writes its
 * paths as they are (busybox's strips a leading `/` but not `..`), so the check comes first.
 */
export async function installLateArchive(
  file: string,
  options: InstallLateOptions,
): Promise<LateInstall> {
  const { manifest, root, source, run } = options;
  const corrupt = (why: string) =>
    new UserError(`The guest runtime archive ${source} is corrupt: ${why}`, {
      hint: "guests cannot start; write the image to the stick again",
    });
  const t0 = performance.now();
  const copy = `${root}/.kaos-late.zst`;
  const staging = `${root}/.kaos-late.partial`;
  await Deno.remove(staging, { recursive: true }).catch(() => {});
  try {
    await Deno.mkdir(root || "/", { recursive: true });
    await Deno.copyFile(file, copy); // by the kernel (copy_file_range), not through the heap
    const t1 = performance.now();
    const size = (await Deno.stat(copy)).size;
    if (size !== manifest.bytes) throw corrupt(`${size} bytes, the image says ${manifest.bytes}`);
    const hashed = await run(["sha256sum", copy]);
    if (hashed.code !== 0) {
      throw new Error(`sha256sum ${copy} exited ${hashed.code}: ${hashed.stderr.trim()}`);
    }
    const sum = hashed.stdout.slice(0, 64);
    if (sum !== manifest.sha256) throw corrupt(`sha256 ${sum}, the image says ${manifest.sha256}`);
    const t2 = performance.now();
    await Deno.mkdir(staging);
    const unpacked = await run([
      "sh",
      "-c",
      // zstd's status through fd 3 (no pipefail in every sh), cpio's as the pipeline's.
      'd=$1 f=$2; shift 2; cd -- "$d" || exit 1; ' +
      'z=$({ { zstd -q -d -c -- "$f"; echo $? >&3; } | "$@" -i -d -m >&2; } 3>&1); c=$?; ' +
      '[ "$z" = 0 ] || { echo "zstd exited $z" >&2; exit 1; }; exit $c',
      "sh",
      staging,
      copy,
      ...(options.cpio ?? ["cpio"]),
    ]);
    if (unpacked.code !== 0) {
      throw corrupt(`zstd | cpio exited ${unpacked.code}: ${unpacked.stderr.trim()}`);
    }
    await Deno.remove(copy);
    const t3 = performance.now();
    const entries = await listTree(staging, corrupt);
    // Whole: move the files and links into place (directories are made as needed).
    for (const e of entries) {
      if (e.dir) continue;
      const to = `${root}/${e.path}`;
      await Deno.mkdir(to.slice(0, to.lastIndexOf("/")), { recursive: true });
      await Deno.rename(`${staging}/${e.path}`, to);
    }
    const t4 = performance.now();
    const ms = (a: number, b: number) => Math.round(b - a);
    return {
      files: entries.filter((e) => !e.dir).length,
      bytes: entries.reduce((n, e) => n + e.bytes, 0),
      ms: { copy: ms(t0, t1), check: ms(t1, t2), unpack: ms(t2, t3), move: ms(t3, t4) },
    };
  } finally {
    await Deno.remove(staging, { recursive: true }).catch(() => {});
    await Deno.remove(copy).catch(() => {});
  }
}

/** One path of an unpacked tree: a directory, or a file or link of `bytes` (0 for links). */
interface TreeEntry {
  path: string;
  dir: boolean;
  bytes: number;
}

/** Every path under `top`, parents first; anything but directories, files and links is refused. */
async function listTree(top: string, refuse: (why: string) => Error): Promise<TreeEntry[]> {
  const out: TreeEntry[] = [];
  const walk = async (rel: string): Promise<void> => {
    for await (const e of Deno.readDir(rel ? `${top}/${rel}` : top)) {
      const path = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory) {
        out.push({ path, dir: true, bytes: 0 });
        await walk(path);
      } else if (e.isSymlink) out.push({ path, dir: false, bytes: 0 });
      else if (e.isFile) {
        out.push({ path, dir: false, bytes: (await Deno.lstat(`${top}/${path}`)).size });
      } else throw refuse(`${path}: only directories, files and symbolic links belong in it`);
    }
  };
  await walk("");
  return out;
}

/** True when the first 2 KiB of an ISO 9660 volume descriptor area is a primary one. */
export function isIso9660(descriptor: Uint8Array): boolean {
  return descriptor.length >= 6 && descriptor[0] === 1 &&
    new TextDecoder().decode(descriptor.subarray(1, 6)) === "CD001";
}

/** Block devices whose sector 16 holds an ISO 9660 primary volume descriptor, partitions first. */
export async function isoDevices(sysBlock = "/sys/class/block"): Promise<string[]> {
  const found: string[] = [];
  for await (const e of Deno.readDir(sysBlock)) {
    if (/^(loop|ram|zram)/.test(e.name)) continue;
    let f: Deno.FsFile | undefined;
    try {
      f = await Deno.open(`/dev/${e.name}`, { read: true });
      await f.seek(16 * 2048, Deno.SeekMode.Start);
      const head = new Uint8Array(8);
      if ((await f.read(head)) === 8 && isIso9660(head)) found.push(e.name);
    } catch {
      /* no such node, no medium (an empty CD drive), unreadable */
    } finally {
      f?.close();
    }
  }
  const partition = (n: string) => /\d$/.test(n) && !/^sr\d+$/.test(n);
  return found.sort((a, b) => Number(partition(b)) - Number(partition(a)) || a.localeCompare(b));
}

/**
 * Finds the boot medium (an ISO 9660 file system holding `manifest.file` of the right size) and
 * calls `use` with that file's path while the medium is mounted; unmounts it after. Waits up to
 * `waitMs` for such a medium to appear.
 */
export async function onBootMedium<T>(
  manifest: LateManifest,
  options: { run: RunCommand; mountDir: string; waitMs: number; sysBlock?: string },
  use: (path: string, source: string) => Promise<T>,
): Promise<T> {
  const { run, mountDir } = options;
  const end = Date.now() + options.waitMs;
  const tried = new Set<string>();
  for (;;) {
    for (const dev of await isoDevices(options.sysBlock)) {
      if (tried.has(dev)) continue;
      tried.add(dev);
      await Deno.mkdir(mountDir, { recursive: true });
      if ((await run(["mount", "-t", "iso9660", "-o", "ro", `/dev/${dev}`, mountDir])).code !== 0) {
        continue;
      }
      try {
        const path = `${mountDir}${manifest.file}`;
        const st = await Deno.stat(path).catch(() => undefined);
        if (st?.isFile) return await use(path, `/dev/${dev}:${manifest.file}`);
      } finally {
        await runChecked(run, ["umount", mountDir]).catch(() => {});
      }
    }
    if (Date.now() > end) {
      throw new UserError(
        `Cannot find the guest runtime archive ${manifest.file}: no boot medium holds it (${
          tried.size === 0 ? "no ISO 9660 file system found" : `looked on ${[...tried].join(", ")}`
        })`,
        { hint: "guests cannot start; boot from the KaOS stick or CD, or write the image again" },
      );
    }
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** True once something listens on TCP `port` (IPv4 or IPv6), from /proc/net/tcp{,6}. */
export async function tcpListening(port: number): Promise<boolean> {
  const hex = `:${port.toString(16).toUpperCase().padStart(4, "0")} `;
  for (const file of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    const text = await Deno.readTextFile(file).catch(() => "");
    for (const line of text.split("\n").slice(1)) {
      const cols = line.trim().split(/\s+/);
      if (cols.length > 3 && `${cols[1]} `.includes(hex) && cols[3] === "0A") return true;
    }
  }
  return false;
}

/** Options of {@linkcode unpackLateArchive}. */
export interface UnpackLateOptions {
  run: RunCommand;
  log: (line: string) => void;
  /** Starts the work when it settles (PID 1: once the SSH service listens and kattach is ready). */
  when: Promise<void>;
  /** The manifests of the archives to unpack, in order; absent ones are skipped (default
   * /kaos/late.json, QEMU's, and /kaos/late-queue.json, the built-in queue's). */
  manifestPaths?: string[];
  /** Where the archive's paths go (default /). */
  root?: string;
  /** Where the boot medium is mounted for the read (default /run/kaos/boot). */
  mountDir?: string;
  /** How long to wait for the boot medium (default 30 s: a CD drive or a stick may come late). */
  waitMs?: number;
  /** Where block devices are listed (default /sys/class/block). */
  sysBlock?: string;
}

/**
 * PID 1's part: once `when` settles, finds the guest runtime's archives (QEMU's, the built-in
 * queue's) on the boot medium and installs them. Resolves when they are in place (at once when
 * the image names none); rejects with a UserError saying why they are not, after logging it.
 */
export async function unpackLateArchive(options: UnpackLateOptions): Promise<void> {
  const { log } = options;
  try {
    const manifests: LateManifest[] = [];
    for (const path of options.manifestPaths ?? [LATE_MANIFEST_FILE, LATE_QUEUE_MANIFEST_FILE]) {
      const m = await readLateManifest(path);
      if (m) manifests.push(m);
    }
    if (manifests.length === 0) return; // one archive: QEMU is in the initramfs
    await options.when;
    for (const manifest of manifests) await unpackOne(manifest, options);
  } catch (err) {
    const msg = err instanceof Error ? err.message : String(err);
    log(`WARNING: ${msg}; guests cannot start`);
    throw err instanceof UserError ? err : new UserError(`Guests cannot start: ${msg}`, {
      hint: "the guest runtime archive did not unpack; see `system log`",
      cause: err,
    });
  }
}

async function unpackOne(manifest: LateManifest, options: UnpackLateOptions): Promise<void> {
  const { run, log } = options;
  const t0 = performance.now();
  const rss0 = rssMiB();
  const { r, source } = await onBootMedium(manifest, {
    run,
    mountDir: options.mountDir ?? "/run/kaos/boot",
    waitMs: options.waitMs ?? 30_000,
    sysBlock: options.sysBlock,
  }, async (path, source) => ({
    r: await installLateArchive(path, { manifest, root: options.root ?? "", source, run }),
    source,
  }));
  log(
    `guest runtime: ${r.files} files, ${(r.bytes / 1048576).toFixed(1)} MiB from ${source} ` +
      `in ${Math.round(performance.now() - t0)} ms (copy ${r.ms.copy}, sha256 ${r.ms.check}, ` +
      `zstd | cpio ${r.ms.unpack}, move ${r.ms.move}); kattach RSS ${rss0} → ${rssMiB()} MiB`,
  );
}

/** This process's resident set, MiB with one decimal (for the log line above). */
function rssMiB(): string {
  return (Deno.memoryUsage().rss / 1048576).toFixed(1);
}

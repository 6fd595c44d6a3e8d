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
import { runChecked, type RunCommand, spawnOwned } from "../host/mod.ts";
import { describeIssues, readNewc, UserError } from "../lib/mod.ts";

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

/**
 * Decompresses with the `zstd` program, off kattach's event loop. (Deno 2.9's node:zlib zstd
 * reports a damaged frame as an uncaught error, not to its callback or stream, and its sync form
 * would stop PID 1 for seconds under emulation.)
 */
async function unzstd(compressed: Uint8Array): Promise<Uint8Array> {
  const child = spawnOwned("zstd", {
    args: ["-q", "-d", "-c"],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  });
  const writing = (async () => {
    const w = child.stdin.getWriter();
    try {
      await w.write(compressed);
      await w.close();
    } catch { /* zstd stopped reading: its exit status says why */ }
  })();
  const out = await child.output();
  await writing;
  if (!out.success) {
    throw new Error(new TextDecoder().decode(out.stderr).trim() || `exited ${out.code}`);
  }
  return out.stdout;
}

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

/** The lowercase hex sha256 of some bytes. */
async function sha256(bytes: Uint8Array): Promise<string> {
  const d = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>));
  return Array.from(d, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** What {@linkcode installLateArchive} did. */
export interface LateInstall {
  files: number;
  bytes: number;
  /** ms spent checking the sha256, unpacking (zstd and newc) and writing. */
  ms: { check: number; unpack: number; write: number };
}

/**
 * Checks `compressed` against the manifest (size, sha256), unpacks it (zstd, then newc) and
 * writes every entry under `${root}/.kaos-late.partial` first; only when all of it is there are
 * the entries moved to their places under `root` (renames on one file system). On any error
 * nothing has been moved and the staging directory is removed.
 */
export async function installLateArchive(
  compressed: Uint8Array,
  options: { manifest: LateManifest; root: string; source: string },
): Promise<LateInstall> {
  const { manifest, root, source } = options;
  const t0 = performance.now();
  const corrupt = (why: string) =>
    new UserError(`The guest runtime archive ${source} is corrupt: ${why}`, {
      hint: "guests cannot start; write the image to the stick again",
    });
  if (compressed.length !== manifest.bytes) {
    throw corrupt(`${compressed.length} bytes, the image says ${manifest.bytes}`);
  }
  const sum = await sha256(compressed);
  if (sum !== manifest.sha256) throw corrupt(`sha256 ${sum}, the image says ${manifest.sha256}`);
  const t1 = performance.now();
  let raw: Uint8Array;
  try {
    raw = await unzstd(compressed);
  } catch (err) {
    throw corrupt(`zstd: ${err instanceof Error ? err.message : err}`);
  }
  const entries = readNewc(raw, `guest runtime archive ${source}`);
  const t2 = performance.now();
  const staging = `${root}/.kaos-late.partial`;
  await Deno.remove(staging, { recursive: true }).catch(() => {});
  let bytes = 0;
  try {
    await Deno.mkdir(staging, { recursive: true });
    for (const e of entries) {
      const at = `${staging}/${e.path}`;
      await Deno.mkdir(at.slice(0, at.lastIndexOf("/")), { recursive: true });
      if (e.kind === "dir") await Deno.mkdir(at, { recursive: true, mode: e.mode });
      else if (e.kind === "symlink") await Deno.symlink(e.target, at);
      else {
        await Deno.writeFile(at, e.data, { mode: e.mode });
        await Deno.chmod(at, e.mode); // writeFile's mode is masked by the umask
        bytes += e.data.length;
      }
    }
    // Whole: move the files and links into place (directories are made as needed).
    for (const e of entries) {
      if (e.kind === "dir") continue;
      const to = `${root}/${e.path}`;
      await Deno.mkdir(to.slice(0, to.lastIndexOf("/")), { recursive: true });
      await Deno.rename(`${staging}/${e.path}`, to);
    }
  } finally {
    await Deno.remove(staging, { recursive: true }).catch(() => {});
  }
  const t3 = performance.now();
  return {
    files: entries.filter((e) => e.kind !== "dir").length,
    bytes,
    ms: { check: Math.round(t1 - t0), unpack: Math.round(t2 - t1), write: Math.round(t3 - t2) },
  };
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
 * Finds the boot medium (an ISO 9660 file system holding `manifest.file` of the right size),
 * reads that file and unmounts it. Waits up to `waitMs` for such a medium to appear.
 */
export async function readFromBootMedium(
  manifest: LateManifest,
  options: { run: RunCommand; mountDir: string; waitMs: number; sysBlock?: string },
): Promise<{ bytes: Uint8Array; source: string }> {
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
        if (st?.isFile) {
          return { bytes: await Deno.readFile(path), source: `/dev/${dev}:${manifest.file}` };
        }
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
  const found = await readFromBootMedium(manifest, {
    run,
    mountDir: options.mountDir ?? "/run/kaos/boot",
    waitMs: options.waitMs ?? 30_000,
    sysBlock: options.sysBlock,
  });
  const read = Math.round(performance.now() - t0);
  const r = await installLateArchive(found.bytes, {
    manifest,
    root: options.root ?? "",
    source: found.source,
  });
  log(
    `guest runtime: ${r.files} files, ${(r.bytes / 1048576).toFixed(1)} MiB from ${found.source} ` +
      `in ${Math.round(performance.now() - t0)} ms (read ${read}, sha256 ${r.ms.check}, ` +
      `unzstd ${r.ms.unpack}, write ${r.ms.write}); kattach RSS ${rss0} → ${rssMiB()} MiB`,
  );
}

/** This process's resident set, MiB with one decimal (for the log line above). */
function rssMiB(): string {
  return (Deno.memoryUsage().rss / 1048576).toFixed(1);
}

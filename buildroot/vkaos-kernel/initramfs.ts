/**
 * A tiny busybox-static initramfs for kernel smoke tests and boot benchmarks: /init is a shell
 * script run by busybox; the caller writes the script. Needs busybox-static, cpio and gzip.
 */
import { UserError } from "../../lib/errors.ts";

/** Debian's static busybox (package busybox-static). */
export const BUSYBOX = "/bin/busybox";

/** Applets symlinked into /bin so the /init script can call them by name. */
const APPLETS = [
  "sh",
  "mount",
  "umount",
  "mkdir",
  "cat",
  "ls",
  "echo",
  "poweroff",
  "sleep",
  "acpid",
  "ip",
  "grep",
  "test",
  "[",
];

/**
 * Writes `<dir>/initramfs.cpio.gz` holding busybox, its applet links and `init` as /init
 * (a `#!/bin/sh` script); returns the file's path.
 */
export async function buildBusyboxInitramfs(
  dir: string,
  options: { init: string; files?: Record<string, string> },
): Promise<string> {
  const stat = await Deno.stat(BUSYBOX).catch(() => null);
  if (!stat?.isFile) {
    throw new UserError(`Cannot build a test initramfs: ${BUSYBOX} is missing`, {
      hint: "apt-get install busybox-static",
      code: "not-found",
    });
  }
  const tree = `${dir}/initramfs`;
  await Deno.mkdir(`${tree}/bin`, { recursive: true });
  for (const d of ["proc", "sys", "dev", "mnt", "tmp", "etc"]) {
    await Deno.mkdir(`${tree}/${d}`, { recursive: true });
  }
  await Deno.copyFile(BUSYBOX, `${tree}/bin/busybox`);
  await Deno.chmod(`${tree}/bin/busybox`, 0o755);
  for (const applet of APPLETS) await Deno.symlink("busybox", `${tree}/bin/${applet}`);
  await Deno.writeTextFile(`${tree}/init`, options.init, { mode: 0o755 });
  await Deno.chmod(`${tree}/init`, 0o755);
  for (const [path, text] of Object.entries(options.files ?? {})) {
    const full = `${tree}/${path.replace(/^\/+/, "")}`;
    await Deno.mkdir(full.slice(0, full.lastIndexOf("/")), { recursive: true });
    await Deno.writeTextFile(full, text, { mode: 0o755 });
    await Deno.chmod(full, 0o755);
  }
  const out = `${dir}/initramfs.cpio.gz`;
  const res = await new Deno.Command("bash", {
    args: [
      "-o",
      "pipefail",
      "-c",
      'cd "$1" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0 | gzip -1 > "$2"',
      "bash",
      tree,
      out,
    ],
    stderr: "piped",
  }).output();
  if (!res.success) {
    throw new UserError(`Cannot pack the test initramfs into ${out}`, {
      hint: `${new TextDecoder().decode(res.stderr).trim()} (apt-get install cpio gzip)`,
      code: "build-failed",
    });
  }
  return out;
}

/**
 * Writes an ext4 image of `sizeMb` MiB at `path` holding `files` (relative path to text), made
 * with `mkfs.ext4 -d` so no root mount is needed.
 */
export async function buildExt4Image(
  path: string,
  options: { files: Record<string, string>; sizeMb?: number },
): Promise<string> {
  const src = `${path}.d`;
  await Deno.mkdir(src, { recursive: true });
  for (const [rel, text] of Object.entries(options.files)) {
    const full = `${src}/${rel.replace(/^\/+/, "")}`;
    await Deno.mkdir(full.slice(0, full.lastIndexOf("/")), { recursive: true });
    await Deno.writeTextFile(full, text);
  }
  const res = await new Deno.Command("mkfs.ext4", {
    args: ["-q", "-F", "-L", "vkaostest", "-d", src, path, `${options.sizeMb ?? 8}M`],
    stderr: "piped",
  }).output();
  if (!res.success) {
    throw new UserError(`Cannot make the ext4 image ${path}`, {
      hint: `${new TextDecoder().decode(res.stderr).trim()} (apt-get install e2fsprogs)`,
      code: "build-failed",
    });
  }
  return path;
}

/**
 * Where the vKaOS kernel lives and how to get it: `scripts/build-vkaos-kernel` builds it once per
 * config hash and is a no-op afterwards, so asking for the kernel is cheap once it is built.
 */
import { fileURLToPath } from "node:url";
import { UserError } from "../../lib/errors.ts";

/** The repository root (two folders up from this file). */
export const REPO_ROOT: string = fileURLToPath(new URL("../../", import.meta.url)).replace(
  /\/$/,
  "",
);

/** Paths of the latest vKaOS kernel build; stable, other subsystems may rely on them. */
export interface KernelPaths {
  /** Compressed kernel for `-kernel` with any firmware (qboot, SeaBIOS). */
  bzImage: string;
  /** Stripped ELF with a PVH note: `-M microvm -kernel vmlinux` boots it without decompressing. */
  vmlinux: string;
  /** The final kernel .config. */
  config: string;
}

/** The stable output paths under build/vkaos-kernel/ (symlinks to the latest build). */
export function kernelPaths(root: string = REPO_ROOT): KernelPaths {
  const dir = `${root}/build/vkaos-kernel`;
  return { bzImage: `${dir}/bzImage`, vmlinux: `${dir}/vmlinux`, config: `${dir}/config` };
}

/** The build script's path. */
export function buildScript(root: string = REPO_ROOT): string {
  return `${root}/scripts/build-vkaos-kernel`;
}

/** True when a file exists (following symlinks). */
export async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return false;
    throw err;
  }
}

/**
 * Runs scripts/build-vkaos-kernel (cached: a no-op when the config is unchanged) and returns the
 * kernel's paths. The build takes 3 to 6 minutes on 2 cores the first time; progress goes to stderr.
 */
export async function ensureKernel(
  options: { root?: string; quiet?: boolean } = {},
): Promise<KernelPaths> {
  const root = options.root ?? REPO_ROOT;
  const out = await new Deno.Command(buildScript(root), {
    stdout: "piped",
    stderr: options.quiet ? "piped" : "inherit",
  }).output();
  if (!out.success) {
    const detail = options.quiet ? new TextDecoder().decode(out.stderr).trim() : "";
    throw new UserError(`Cannot build the vKaOS kernel: scripts/build-vkaos-kernel failed`, {
      hint: detail || "read its output above; it names missing config options or packages",
      code: "build-failed",
    });
  }
  // The script ends with "…/bzImage -> …/<key>/bzImage": the build of this checkout's config. The
  // stable symlinks may point at another checkout's build when build/ is shared (git worktrees).
  const last = new TextDecoder().decode(out.stdout).trim().split("\n").pop() ?? "";
  const keyDir = / -> (\/.+)\/bzImage$/.exec(last)?.[1];
  const paths = keyDir
    ? { bzImage: `${keyDir}/bzImage`, vmlinux: `${keyDir}/vmlinux`, config: `${keyDir}/config` }
    : kernelPaths(root);
  for (const path of [paths.bzImage, paths.vmlinux, paths.config]) {
    if (!await exists(path)) {
      throw new UserError(`Cannot find ${path} after building the vKaOS kernel`, {
        hint: "rerun scripts/build-vkaos-kernel --force",
        code: "not-found",
      });
    }
  }
  return paths;
}

/** Parses a kernel .config or config fragment into option name to value ("n" for "is not set"). */
export function parseKernelConfig(text: string): Map<string, string> {
  const options = new Map<string, string>();
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    const set = /^(CONFIG_[A-Za-z0-9_]+)=(.*)$/.exec(line);
    if (set) {
      options.set(set[1], set[2]);
      continue;
    }
    const unset = /^# (CONFIG_[A-Za-z0-9_]+) is not set$/.exec(line);
    if (unset) options.set(unset[1], "n");
  }
  return options;
}

/** Fragment options whose value in the final config differs ("absent" counts as "n"). */
export function missingOptions(
  fragment: Map<string, string>,
  config: Map<string, string>,
): { name: string; want: string; got: string }[] {
  const missing: { name: string; want: string; got: string }[] = [];
  for (const [name, want] of fragment) {
    const got = config.get(name) ?? "n";
    if (got !== want) missing.push({ name, want, got });
  }
  return missing;
}

/**
 * Appliance helpers of the image tests: build the image (scripts/build-image), boot it as a USB
 * stick with scripts/run-appliance in daemon mode, watch its serial log, reach its SSH CLI and
 * stop its QEMU by pid file.
 */
import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { DEFAULT_PASSWORD } from "../kattach/auth.ts";
import { REPO_ROOT } from "./_harness.ts";
import { changePasswordInPty } from "./_ssh.ts";
import { run, type RunResult, Tmux, waitFor } from "./_util.ts";

/** Builds the appliance image (scripts/build-image; cached when up to date). */
export function buildAppliance(): Promise<RunResult> {
  return run([`${REPO_ROOT}/scripts/build-image`], { timeoutMs: 1_800_000 });
}

/** How {@linkcode startAppliance} boots the appliance. */
export interface ApplianceOptions {
  /** Host port forwarded to the appliance's SSH port. */
  port: number;
  /** The USB stick (written from the image if missing; KAOSDATA, the state, lives on it). */
  stick: string;
  /** The blank disk for guest storage (made if missing). */
  disk: string;
  /** Size of a new blank disk, e.g. `256M`. */
  diskSize: string;
  /** Boot under OVMF (UEFI) instead of SeaBIOS. */
  uefi?: boolean;
  /** Where QEMU writes its pid. */
  pidfile: string;
  /** Where the serial console is logged. */
  serial: string;
  /** Guest memory in MiB. */
  memoryMiB: number;
  /** Extra kernel command line. */
  append?: string;
  /** More host ports forwarded to the appliance: `{ host: 8080, guest: 80 }` (TCP). */
  forwards?: { host: number; guest: number }[];
  /** Also offer the serial port on this unix socket (the log file still gets every byte). */
  serialSocket?: string;
}

/** Boots the built appliance in the background (`scripts/run-appliance --daemon`). */
export function startAppliance(options: ApplianceOptions): Promise<RunResult> {
  return run([
    `${REPO_ROOT}/scripts/run-appliance`,
    ...["--no-build", "--daemon", "--port", String(options.port)],
    ...["--stick", options.stick, "--stick-size", "1G"],
    ...["--disk", options.disk, "--disk-size", options.diskSize],
    ...(options.uefi ? ["--uefi"] : []),
    ...["--pidfile", options.pidfile, "--serial-log", options.serial],
    ...["--memory", String(options.memoryMiB)],
    ...(options.append === undefined ? [] : ["--append", options.append]),
    ...(options.forwards ?? []).flatMap((f) => ["--forward", `${f.host}:${f.guest}`]),
    ...(options.serialSocket === undefined ? [] : ["--serial-socket", options.serialSocket]),
  ], { timeoutMs: 60_000 });
}

/** Copies MBR partition `n` of a disk image into its own (sparse) file, for e2fsck and debugfs. */
export async function extractPartition(image: string, n: number, out: string): Promise<void> {
  const f = await Deno.open(image, { read: true });
  const sector = new Uint8Array(512);
  try {
    await f.read(sector);
  } finally {
    f.close();
  }
  const view = new DataView(sector.buffer);
  const start = view.getUint32(446 + 16 * (n - 1) + 8, true);
  const sectors = view.getUint32(446 + 16 * (n - 1) + 12, true);
  const r = await run([
    ...["dd", `if=${image}`, `of=${out}`, "bs=1M", "iflag=skip_bytes,count_bytes"],
    ...[`skip=${start * 512}`, `count=${sectors * 512}`, "conv=sparse", "status=none"],
  ], { timeoutMs: 120_000 });
  if (r.code !== 0) throw new Error(`dd of partition ${n} of ${image} failed: ${r.stderr}`);
}

/** A file's text, or "" while it does not exist. */
export async function readLog(path: string): Promise<string> {
  try {
    return await Deno.readTextFile(path);
  } catch {
    return "";
  }
}

/** Waits until the serial log matches `re` and returns it; fails at once on a kernel panic. */
export async function waitForLog(
  path: string,
  re: RegExp,
  options: { timeoutMs: number },
): Promise<string> {
  let log = "";
  await waitFor(
    async () => {
      log = await readLog(path);
      if (/Kernel panic/.test(log)) throw new Error(`the appliance kernel panicked:\n${log}`);
      return re.test(log);
    },
    () => `${re} in the serial log within ${options.timeoutMs / 1000} s:\n${log}`,
    { timeoutMs: options.timeoutMs, intervalMs: 500 },
  );
  return log;
}

/** Stops the QEMU whose pid is in `pidfile`: SIGTERM, then SIGKILL after 10 s. */
export async function stopQemu(pidfile: string): Promise<void> {
  const pid = Number((await readLog(pidfile)).trim());
  if (!Number.isInteger(pid) || pid <= 1) return;
  const alive = () => {
    try {
      Deno.kill(pid, "SIGCONT"); // harmless probe: throws once the process is gone
      return true;
    } catch {
      return false;
    }
  };
  try {
    Deno.kill(pid, "SIGTERM");
  } catch {
    return;
  }
  for (let i = 0; i < 50 && alive(); i++) await new Promise((r) => setTimeout(r, 200));
  if (alive()) Deno.kill(pid, "SIGKILL");
}

/** How a test reaches a booted appliance's SSH CLI as aqcli (see {@linkcode ApplianceSsh}). */
export interface ApplianceSshOptions {
  /** The host port forwarded to the appliance's SSH port. */
  port: number;
  /** The password the forced change sets; every later command logs in with it. */
  newPassword: string;
  /** ssh client options (tests/_ssh.ts sshPasswordOpts). */
  sshOpts: string[];
  /** Default limit of one command, in ms. */
  execTimeoutMs: number;
  /** Name prefix of the tmux socket of the password change. */
  tmuxName: string;
}

/**
 * A booted appliance's SSH CLI from an image test: the forced change of the default password in
 * a real pty (tmux + sshpass + ssh), then one-line commands with the new password.
 */
export class ApplianceSsh {
  readonly #o: ApplianceSshOptions;

  constructor(options: ApplianceSshOptions) {
    this.#o = options;
  }

  /**
   * Logs in with the release's default password in a real pty and makes the forced change; the
   * login script goes to `script`. The first prompt may take `loginTimeoutMs` (the appliance may
   * still be starting its SSH CLI), each later one the exec limit.
   */
  async changeDefaultPassword(script: string, loginTimeoutMs: number): Promise<void> {
    const tmux = new Tmux({
      name: this.#o.tmuxName,
      holdSeconds: 600,
      commandTimeoutMs: 60_000,
      failOnExit: true,
    });
    try {
      await changePasswordInPty(tmux, script, {
        port: this.#o.port,
        password: DEFAULT_PASSWORD,
        newPassword: this.#o.newPassword,
        sshOpts: this.#o.sshOpts,
        loginTimeoutMs,
        stepTimeoutMs: this.#o.execTimeoutMs,
      });
    } finally {
      await tmux.stop();
    }
  }

  /** Runs one-line command `args` over SSH; returns what it left. */
  run(args: string[], timeoutMs = this.#o.execTimeoutMs): Promise<RunResult> {
    const { port, sshOpts, newPassword } = this.#o;
    return run(
      ["sshpass", "-e", "ssh", ...sshOpts, "-p", String(port), "aqcli@127.0.0.1", ...args],
      {
        env: { SSHPASS: newPassword },
        timeoutMs,
      },
    );
  }

  /** Runs `args` and fails the test unless it exits 0; returns its stdout. */
  async ok(args: string[], timeoutMs = this.#o.execTimeoutMs): Promise<string> {
    const r = await this.run(args, timeoutMs);
    assertEquals(r.code, 0, `${args.join(" ")} failed (${r.code}):\n${r.stdout}${r.stderr}`);
    return r.stdout;
  }
}

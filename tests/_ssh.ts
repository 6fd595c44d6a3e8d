/**
 * SSH helpers of the integration tests: the OpenSSH client options for password and key logins,
 * `ssh` through sshpass, and a hosted kattach started with its supervised sshd.
 */
import { kattachArgv } from "../lib/hosted_kattach.ts";
import { exitOrKill, TestKattach } from "./_harness.ts";
import { freePort, run, type RunResult, type Tmux, waitFor, withDeadline } from "./_util.ts";

/**
 * An SSH host key as ssh2's keygen made one in some 330 before b4ffa9f: the public key's leading 0
 * byte dropped, so ssh2's own parser refuses it ("Malformed OpenSSH private key").
 */
export const MALFORMED_HOST_KEY = [
  "-----BEGIN OPENSSH PRIVATE KEY-----",
  "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMgAAAAtz",
  "c2gtZWQyNTUxOQAAAB+TG3dBIsavv1qGurhHa1a2YAXZRx+iyzbkFYto9hf4AAAA",
  "kHQQawN0EGsDAAAAC3NzaC1lZDI1NTE5AAAAH5Mbd0Eixq+/Woa6uEdrVrZgBdlH",
  "H6LLNuQVi2j2F/gAAAA/dNXaw2JcRJ4pnOY52TqBPhYoI7Xvv6mUrtqDEdzRHTGT",
  "G3dBIsavv1qGurhHa1a2YAXZRx+iyzbkFYto9hf4AAAACWthb3MtaG9zdAECAwQF",
  "Bg==",
  "-----END OPENSSH PRIVATE KEY-----",
  "",
].join("\n");

/** Variations of the ssh client options. */
export interface SshOptsOptions {
  /** `ConnectTimeout`, in seconds (default 20). */
  connectTimeoutS?: number;
  /** `ServerAliveInterval`, in seconds (default: not set). */
  serverAliveIntervalS?: number;
}

/** ssh options that read no config, trust any host key and log only errors. */
export function sshCommonOpts(options: SshOptsOptions = {}): string[] {
  return [
    ...["-F", "/dev/null", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null"],
    ...["-o", "LogLevel=ERROR", "-o", `ConnectTimeout=${options.connectTimeoutS ?? 20}`],
    ...(options.serverAliveIntervalS === undefined
      ? []
      : ["-o", `ServerAliveInterval=${options.serverAliveIntervalS}`]),
  ];
}

/** ssh options for a password login (one prompt, no keys). */
export function sshPasswordOpts(options: SshOptsOptions = {}): string[] {
  return [
    ...sshCommonOpts(options),
    ...["-o", "PubkeyAuthentication=no", "-o", "PreferredAuthentications=password"],
    ...["-o", "NumberOfPasswordPrompts=1"],
  ];
}

/** ssh options for a login with one private key and nothing else. */
export function sshKeyOpts(keyFile: string, options: SshOptsOptions = {}): string[] {
  return [
    ...sshCommonOpts(options),
    ...["-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes"],
    ...["-o", "PreferredAuthentications=publickey", "-i", keyFile],
  ];
}

/** Who {@linkcode sshPw} logs in as and what it sends. */
export interface SshPwOptions {
  /** The user (default `aqcli`). */
  user?: string;
  /** Written to ssh's stdin (default: /dev/null). */
  stdin?: string;
}

/**
 * `ssh -p PORT USER@127.0.0.1 ARGS…` with a password through sshpass. Three positional
 * arguments (an exception to the two-argument rule): they read like the command line they make.
 */
export function sshPw(
  target: { readonly port: number },
  password: string,
  args: string[],
  options: SshPwOptions = {},
): Promise<RunResult> {
  const { user = "aqcli", stdin } = options;
  return run(
    ["sshpass", "-e", "ssh", ...sshPasswordOpts(), "-p", String(target.port), `${user}@127.0.0.1`]
      .concat(args),
    { env: { SSHPASS: password }, stdin },
  );
}

/** Writes a shell script that logs in with a password in a pty (`ssh -t`), for {@linkcode Tmux}. */
export async function writeLoginScript(
  path: string,
  options: { port: number; password: string; sshOpts?: string[] },
): Promise<void> {
  const opts = options.sshOpts ?? sshPasswordOpts();
  const ssh = ["ssh", ...opts, "-t", "-p", String(options.port), "aqcli@127.0.0.1"];
  await Deno.writeTextFile(path, `SSHPASS=${options.password} exec sshpass -e ${ssh.join(" ")}\n`);
}

/** How {@linkcode changePasswordInPty} logs in and how long it waits. */
export interface PasswordChange {
  /** The SSH port on 127.0.0.1. */
  port: number;
  /** The password that logs in (the release default: the change is forced). */
  password: string;
  /** The new password, typed twice. */
  newPassword: string;
  /** ssh client options (default {@linkcode sshPasswordOpts}). */
  sshOpts?: string[];
  /** Limit for the first prompt (the login itself), in ms. */
  loginTimeoutMs: number;
  /** Limit for each later prompt, in ms. */
  stepTimeoutMs: number;
}

/**
 * Logs in over SSH in a real pty (`tmux`, the login script written to `script`) and makes the
 * forced change of the password; returns once the CLI says "Password changed." and tmux stopped.
 */
export async function changePasswordInPty(
  tmux: Tmux,
  script: string,
  change: PasswordChange,
): Promise<void> {
  await writeLoginScript(script, {
    port: change.port,
    password: change.password,
    sshOpts: change.sshOpts,
  });
  await tmux.start(script);
  await tmux.waitFor("New password", change.loginTimeoutMs);
  await tmux.type(change.newPassword);
  await tmux.waitFor("Retype new password", change.stepTimeoutMs);
  await tmux.type(change.newPassword);
  await tmux.waitFor("Password changed.", change.stepTimeoutMs);
  await tmux.stop();
}

/** A hosted kattach with its supervised sshd on a free port, its log kept in memory. */
export class KattachWithSshd {
  readonly state: string;
  readonly port: number = freePort();
  /** Runs `aq` against this kattach. */
  readonly aq: TestKattach;
  #child: Deno.ChildProcess;
  #log: string[] = [];
  #pumps: Promise<void>;

  /** Starts kattach on the state directory `state` (see {@linkcode ready}). */
  constructor(state: string) {
    this.state = state;
    this.aq = new TestKattach(state);
    this.#child = new Deno.Command(Deno.execPath(), {
      args: kattachArgv({ state, sshPort: this.port, denoOptions: [] }).slice(1),
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const pump = async (s: ReadableStream<Uint8Array>) => {
      for await (const t of s.pipeThrough(new TextDecoderStream())) this.#log.push(t);
    };
    this.#pumps = Promise.all([pump(this.#child.stdout), pump(this.#child.stderr)]).then(() => {});
  }

  /** kattach's output so far. */
  get log(): string {
    return this.#log.join("");
  }

  /** Pids of the sshd children kattach has started, in order. */
  sshdPids(): number[] {
    return [...this.log.matchAll(/sshd: started \(pid (\d+)\)/g)].map((m) => Number(m[1]));
  }

  /** Waits until kattach is ready and its sshd has said `listening` that many times. */
  async ready(options: { listening?: number; timeoutMs?: number } = {}): Promise<void> {
    const { listening = 1, timeoutMs = 30_000 } = options;
    await waitFor(
      () =>
        /kattach: ready/.test(this.log) &&
        (this.log.match(/ssh: listening on 127\.0\.0\.1:\d+/g) ?? []).length >= listening,
      () => `kattach ready and sshd listening; log:\n${this.log}`,
      { timeoutMs },
    );
  }

  /** Sends a signal to kattach and waits for it to exit. */
  async stop(signal: Deno.Signal = "SIGTERM"): Promise<void> {
    try {
      this.#child.kill(signal);
    } catch { /* gone */ }
    await exitOrKill(this.#child, `kattach (pid ${this.#child.pid}) to exit after ${signal}`);
    await withDeadline(this.#pumps, 30_000, "kattach's output to end");
  }
}

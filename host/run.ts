/** Running a host command: the one side effect most host helpers need, injectable for tests. */
import { holdOwnChild, releaseOwnChild } from "./reaper.ts";

/** What a finished command left behind. */
export interface CommandResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs argv to completion; never throws for a non-zero exit (a missing program is code 127). */
export type RunCommand = (argv: string[]) => Promise<CommandResult>;

/** The real {@linkcode RunCommand}: Deno.Command with stdin closed and output captured. */
export async function runCommand(argv: string[]): Promise<CommandResult> {
  const [cmd, ...args] = argv;
  try {
    const out = await outputOwned(cmd, { args });
    const dec = new TextDecoder();
    return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) {
      return { code: 127, stdout: "", stderr: `${cmd}: not found` };
    }
    throw err;
  }
}

/**
 * Spawns a child whose exit status Deno collects itself, registered so that PID 1's orphan reaper
 * (host/reaper.ts) leaves it alone until then; under heavy load Deno may collect it late, and a
 * reaped child makes Deno's wait fail with ECHILD. Every child kattach waits for starts here.
 */
export function spawnOwned(cmd: string, options: Deno.CommandOptions = {}): Deno.ChildProcess {
  const child = new Deno.Command(cmd, options).spawn();
  holdOwnChild(child.pid);
  const release = () => releaseOwnChild(child.pid);
  child.status.then(release, release);
  return child;
}

/**
 * `new Deno.Command(cmd, options).output()` through {@linkcode spawnOwned}: stdin closed and the
 * output captured unless the options say otherwise.
 */
export async function outputOwned(
  cmd: string,
  options: Deno.CommandOptions = {},
): Promise<Deno.CommandOutput> {
  return await spawnOwned(cmd, { stdin: "null", stdout: "piped", stderr: "piped", ...options })
    .output();
}

/** Runs argv and throws when it fails, with its stderr in the message. */
export async function runChecked(run: RunCommand, argv: string[]): Promise<string> {
  const r = await run(argv);
  if (r.code !== 0) {
    throw new Error(`${argv.join(" ")} exited ${r.code}: ${r.stderr.trim() || r.stdout.trim()}`);
  }
  return r.stdout;
}

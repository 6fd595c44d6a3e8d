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
    const child = new Deno.Command(cmd, { args, stdin: "null", stdout: "piped", stderr: "piped" })
      .spawn();
    holdOwnChild(child.pid); // PID 1's orphan reaper must leave this one to Deno's own wait
    let out: Deno.CommandOutput;
    try {
      out = await child.output();
    } finally {
      releaseOwnChild(child.pid);
    }
    const dec = new TextDecoder();
    return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) {
      return { code: 127, stdout: "", stderr: `${cmd}: not found` };
    }
    throw err;
  }
}

/** Runs argv and throws when it fails, with its stderr in the message. */
export async function runChecked(run: RunCommand, argv: string[]): Promise<string> {
  const r = await run(argv);
  if (r.code !== 0) {
    throw new Error(`${argv.join(" ")} exited ${r.code}: ${r.stderr.trim() || r.stdout.trim()}`);
  }
  return r.stdout;
}

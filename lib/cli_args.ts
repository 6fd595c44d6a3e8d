/**
 * Strict command-line options for entry points (main.ts subcommands, scripts, benchmarks), on
 * `node:util` `parseArgs`: unknown options and missing values are refused with the usage, and
 * `--help`/`-h` prints the usage and asks the caller to exit 0 before it starts anything.
 */
import { parseArgs } from "node:util";

/** One option: a value (`string`) or a switch (`boolean`). */
export interface OptionSpec {
  type: "string" | "boolean";
  short?: string;
}

/** What an entry point accepts. */
export interface CliSpec<O extends Record<string, OptionSpec>> {
  /** Printed for `--help` (stdout) and after a refusal (stderr). */
  usage: string;
  options: O;
  /** Words that are not options are allowed (default: refused). */
  positionals?: boolean;
}

/** Parsed options: strings, booleans, and the remaining words. */
export interface CliArgs<O extends Record<string, OptionSpec>> {
  values: { [K in keyof O]?: O[K]["type"] extends "string" ? string : boolean };
  positionals: string[];
}

/** Where the usage goes. */
export interface CliIo {
  out(text: string): void;
  err(text: string): void;
}

const consoleIo: CliIo = {
  out: (text) => console.log(text.replace(/\n$/, "")),
  err: (text) => console.error(text.replace(/\n$/, "")),
};

/**
 * Parses `args` against `spec`. Returns the options, or `{ exit }` when the caller must stop:
 * 0 after `--help` (usage on stdout), 2 after a refusal (the reason and the usage on stderr).
 */
export function parseCli<O extends Record<string, OptionSpec>>(
  args: string[],
  spec: CliSpec<O>,
  io: CliIo = consoleIo,
): CliArgs<O> | { exit: 0 | 2 } {
  try {
    const { values, positionals } = parseArgs({
      args,
      options: { ...spec.options, help: { type: "boolean", short: "h" } },
      allowPositionals: spec.positionals ?? false,
      strict: true,
    });
    if ((values as Record<string, unknown>).help) {
      io.out(spec.usage.endsWith("\n") ? spec.usage : spec.usage + "\n");
      return { exit: 0 };
    }
    delete (values as Record<string, unknown>).help;
    return { values: values as CliArgs<O>["values"], positionals };
  } catch (err) {
    const message = err instanceof Error
      ? err.message.split("\n")[0].replace(/\. To specify .*$/, "")
      : String(err);
    io.err(`Error: ${message}\n${spec.usage.endsWith("\n") ? spec.usage : spec.usage + "\n"}`);
    return { exit: 2 };
  }
}

/** `parseCli` for a process' own entry point: exits on `--help` (0) and on a refusal (2). */
export function parseCliOrExit<O extends Record<string, OptionSpec>>(
  args: string[],
  spec: CliSpec<O>,
): CliArgs<O> {
  const parsed = parseCli(args, spec);
  if ("exit" in parsed) Deno.exit(parsed.exit);
  return parsed;
}

/** A port number from an option's text; undefined when it is not one. */
export function portNumber(text: string): number | undefined {
  if (!/^\d+$/.test(text)) return undefined;
  const port = Number(text);
  return port >= 0 && port <= 65535 ? port : undefined;
}

/**
 * What a one-line command is: its arguments, flags, the action it builds and how its result is
 * shown; the usage line; the operator's mistakes (UsageError). Every per-area command module
 * (cli/commands_*.ts) builds on this file; cli/commands.ts assembles the registry from them.
 */
import type { ActionName, ParamsOf } from "../ipc/mod.ts";
import type { ConsoleStdio } from "./console_attach.ts";

/** A positional argument. */
export interface ArgSpec {
  name: string;
  /** Takes all remaining words (key=value lists). */
  rest?: boolean;
  optional?: boolean;
}

/** A `--flag` (with a value unless `boolean`). */
export interface FlagSpec {
  name: string;
  value?: string;
  boolean?: boolean;
  /** The command refuses to run without it (shown without brackets in the usage line). */
  required?: boolean;
  help: string;
}

/** Parsed words of one command line. */
export interface Parsed {
  args: Record<string, string | undefined>;
  rest: string[];
  flags: Record<string, string | boolean | undefined>;
}

/** One one-line command. */
export interface Command {
  path: string[];
  summary: string;
  args: ArgSpec[];
  flags: FlagSpec[];
  /** Destructive commands are confirmed in menus. */
  destructive?: boolean;
  /**
   * A long list taking `--limit` and `--offset` ({@linkcode PAGE_FLAGS}): the menus fetch it a
   * page at a time through IPC instead of asking for those flags.
   */
  pageable?: boolean;
  build(p: Parsed): { action: ActionName; params: unknown };
  render(result: unknown): string;
  /**
   * Shows one progress frame; returns text for stdout, or undefined for the default line on
   * stderr (e.g. `qmp events` prints each event as one JSON line on stdout).
   */
  progress?(message: string, done?: number, total?: number): string | undefined;
  /** With `--json`: shows one progress frame as one JSON value a line (default: as `progress`). */
  progressJson?(message: string): string;
  /**
   * What went wrong although the action returned (e.g. deploy's instances that failed to start):
   * each line goes to stderr and the command exits 1. `params` are the ones the command built.
   */
  problems?(result: unknown, params: unknown): string[];
  /** Takes over the terminal after the action (e.g. `instance console`); returns the exit status. */
  interactive?(result: unknown, stdio?: ConsoleStdio): Promise<number>;
  /** Has no JSON output although it takes no terminal over (`system password`: menus only). */
  noJson?: boolean;
}

/** An operator's mistake on the command line. */
export class UsageError extends Error {
  /** The usage line of the command concerned, if known. */
  readonly usage: string;

  constructor(message: string, usage = "") {
    super(message);
    this.name = "UsageError";
    this.usage = usage;
  }
}

/** Types a command by the action it builds. */
export function cmd<A extends ActionName>(
  c: Omit<Command, "build"> & { build(p: Parsed): { action: A; params: ParamsOf<A> } },
): Command {
  return c as Command;
}

/** A whole number argument (from `range[0]` to `range[1]` when given), or a UsageError. */
export function intArg(
  value: string | undefined,
  what: string,
  range?: readonly [number, number],
): number {
  if (value === undefined || !/^-?\d+$/.test(value)) {
    throw new UsageError(`${what} must be a whole number, not ${JSON.stringify(value ?? "")}`);
  }
  if (!/^-?\d{1,9}$/.test(value)) {
    // A whole number still, only too long to be any count, id or size taken here.
    throw new UsageError(
      range
        ? `${what} runs from ${range[0]} to ${range[1]}, not ${value}`
        : `${what} must be a whole number of at most 9 digits, not ${value}`,
    );
  }
  const n = Number(value);
  if (range && (n < range[0] || n > range[1])) {
    throw new UsageError(`${what} runs from ${range[0]} to ${range[1]}, not ${n}`);
  }
  return n;
}

/** The flags of a pageable list command (the menus page it with `--limit` and `--offset`). */
export const PAGE_FLAGS: FlagSpec[] = [
  { name: "limit", value: "N", help: "at most N entries" },
  { name: "offset", value: "N", help: "skip the first N entries" },
  { name: "filter", value: "TEXT", help: "only names containing TEXT (any case)" },
];

/** The flags the menus set themselves when they page a list (cli/menus.ts runPages). */
export const WINDOW_FLAGS: ReadonlySet<string> = new Set(["limit", "offset"]);

/** The `limit`/`offset`/`filter` parameters of a pageable list command's action. */
export function pageParams(p: Parsed): { limit?: number; offset?: number; filter?: string } {
  const limit = p.flags.limit === undefined
    ? undefined
    : intArg(p.flags.limit as string, "--limit");
  const offset = p.flags.offset === undefined
    ? undefined
    : intArg(p.flags.offset as string, "--offset");
  if (limit !== undefined && limit < 1) throw new UsageError("--limit must be at least 1");
  if (offset !== undefined && offset < 0) throw new UsageError("--offset must not be negative");
  const filter = p.flags.filter === undefined ? undefined : String(p.flags.filter);
  if (filter !== undefined && !/^[A-Za-z0-9._-]{1,64}$/.test(filter)) {
    throw new UsageError(
      `--filter ${
        JSON.stringify(filter)
      }: give 1-64 letters, digits, '.', '_' or '-' (a part of a name)`,
    );
  }
  return { limit, offset, filter };
}

/** The usage line of a command. */
export function usage(c: Command): string {
  const args = c.args.map((a) => {
    const word = a.rest ? `${a.name}…` : a.name;
    return a.optional ? `[${word}]` : word;
  });
  const flags = c.flags.map((f) => {
    const word = f.boolean ? `--${f.name}` : `--${f.name} ${f.value}`;
    return f.required ? word : `[${word}]`;
  });
  return [...c.path, ...args, ...flags, ...hasJson(c) ? ["[--json]"] : []].join(" ");
}

/** Whether a command has JSON output: not one that takes over the terminal or is menus only. */
export function hasJson(c: Command): boolean {
  return !c.interactive && !c.noJson;
}

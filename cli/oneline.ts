/**
 * Runs one one-line command: parses the words against the command registry, sends the action to
 * kattach and prints the result (plain or `--json`). Used by `aq`, SSH exec and the menus.
 */
import { IpcClient, IpcError } from "../ipc/mod.ts";
import { isUserError } from "../lib/errors.ts";
import { stripControls, stripControlsLine } from "../lib/mod.ts";
import { type Command, commands, hasJson, type Parsed, usage, UsageError } from "./commands.ts";
import { findModuleCommand } from "./commands_appqueue.ts";
import type { ConsoleStdio } from "./console_attach.ts";
import { checkParams, WordError } from "./word_check.ts";

/** Exit statuses of a one-line command. */
export const EXIT = { ok: 0, failed: 1, usage: 2, unavailable: 3, internal: 4 } as const;

/** Where a one-line command writes and how it reaches kattach. */
export interface OneLineIo {
  /** The terminal interactive commands take over (default: the process' own stdio). */
  stdio?: ConsoleStdio;
  out(text: string): void;
  err(text: string): void;
  connect(): Promise<IpcClient>;
}

/** Finds the command a list of words names; returns it and the remaining words. */
export function findCommand(words: string[]): { command: Command; rest: string[] } | undefined {
  let best: Command | undefined;
  for (const c of commands) {
    if (c.path.every((w, i) => words[i] === w) && (!best || c.path.length > best.path.length)) {
      best = c;
    }
  }
  return best && { command: best, rest: words.slice(best.path.length) };
}

/** Parses the words after a command's path; a UsageError on anything unexpected. */
export function parseArgs(c: Command, words: string[]): Parsed {
  const parsed: Parsed = { args: {}, rest: [], flags: {} };
  const positional: string[] = [];
  let onlyPositional = false;
  for (let i = 0; i < words.length; i++) {
    const w = words[i];
    if (!onlyPositional && w === "--") {
      onlyPositional = true;
      continue;
    }
    if (!onlyPositional && w.startsWith("--")) {
      const eq = w.indexOf("=");
      const name = w.slice(2, eq === -1 ? undefined : eq);
      const spec = c.flags.find((f) => f.name === name);
      if (!spec) throw new UsageError(`unknown option --${name}`, usage(c));
      if (name in parsed.flags) throw new UsageError(`--${name} is given twice`, usage(c));
      if (spec.boolean) {
        if (eq !== -1) throw new UsageError(`--${name} takes no value`, usage(c));
        parsed.flags[name] = true;
      } else if (eq !== -1) {
        parsed.flags[name] = w.slice(eq + 1);
      } else {
        if (i + 1 >= words.length) throw new UsageError(`--${name} needs a value`, usage(c));
        parsed.flags[name] = words[++i];
      }
      continue;
    }
    positional.push(w);
  }
  for (const a of c.args) {
    if (a.rest) {
      parsed.rest = positional.splice(0);
      if (parsed.rest.length === 0 && !a.optional) {
        throw new UsageError(`${a.name} is missing`, usage(c));
      }
      continue;
    }
    const v = positional.shift();
    if (v === undefined && !a.optional) throw new UsageError(`${a.name} is missing`, usage(c));
    parsed.args[a.name] = v;
  }
  if (positional.length > 0) {
    throw new UsageError(`unexpected ${JSON.stringify(positional[0])}`, usage(c));
  }
  const missing = c.flags.find((f) => f.required && parsed.flags[f.name] === undefined);
  if (missing) throw new UsageError(`--${missing.name} is missing: ${missing.help}`, usage(c));
  return parsed;
}

/** The help text: every command, or those under a prefix. */
export function helpText(prefix: string[] = []): string {
  const matching = commands.filter((c) => prefix.every((w, i) => c.path[i] === w));
  const shown = matching.length > 0 ? matching : commands;
  const lines = shown.map((c) => `  ${usage(c)}\n      ${c.summary}`);
  return (prefix.length === 0 || matching.length === 0
    ? "KaOS AppQueue CLI — one-line commands (add --json for machine-readable output):\n"
    : "") + lines.join("\n") + "\n";
}

/** The most a `KEY=@-` value may read from standard input. */
const STDIN_VALUE_MAX = 1 << 20;

/**
 * `KEY=@-` among the values of `config-group add|set`: the value is the command's standard input
 * (one trailing newline dropped), for values longer than an SSH command may be (an SSH packet:
 * 35,000 bytes), e.g. `tar -czf - . | base64 -w0 | ssh … config-group set www site=@-`.
 */
async function valueFromStdin(
  params: unknown,
  stdio: () => ConsoleStdio | undefined,
): Promise<void> {
  const values = (params as { values?: Record<string, unknown> } | undefined)?.values;
  if (values === undefined) return;
  const keys = Object.keys(values).filter((k) => values[k] === "@-");
  if (keys.length === 0) return;
  if (keys.length > 1) {
    throw new UsageError(`only one value can come from stdin, not ${keys.join(" and ")}`);
  }
  const given = stdio();
  const stdin = given?.stdin ?? Deno.stdin.readable;
  if (given ? given.stdin.isTerminal?.() : Deno.stdin.isTerminal()) {
    throw new UsageError(`${keys[0]}=@- reads the value from stdin, which is a terminal here`);
  }
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of stdin) {
    size += chunk.length;
    if (size > STDIN_VALUE_MAX) {
      throw new UsageError(`${keys[0]}=@-: stdin holds more than ${STDIN_VALUE_MAX} bytes`);
    }
    chunks.push(chunk);
  }
  const all = new Uint8Array(size);
  let at = 0;
  for (const c of chunks) {
    all.set(c, at);
    at += c.length;
  }
  values[keys[0]] = new TextDecoder().decode(all).replace(/\r?\n$/, "");
}

/** Runs one command line given as words; returns the exit status. */
export async function runOneLine(words: string[], io: OneLineIo): Promise<number> {
  const json = words.includes("--json");
  words = words.filter((w) => w !== "--json");
  if (
    words.length === 0 || words[0] === "help" || words.includes("--help") || words.includes("-h")
  ) {
    let prefix = words[0] === "help" ? words.slice(1) : words.filter((w) => !w.startsWith("-"));
    if (prefix.length > 0 && !commands.some((c) => c.path[0] === prefix[0])) {
      io.err(
        `Error: no command starts with ${JSON.stringify(prefix[0])}\n` +
          "Hint: run `help` for the list of commands (`module commands` for the modules' own)\n",
      );
      return EXIT.usage;
    }
    // The longest leading words that name commands (`vlan add 10 --help`: vlan add's).
    while (!commands.some((c) => prefix.every((w, i) => c.path[i] === w))) {
      prefix = prefix.slice(0, -1);
    }
    io.out(helpText(prefix));
    return EXIT.ok;
  }
  const found = findCommand(words) ??
    (commands.some((c) => c.path[0] === words[0])
      ? undefined
      : await findModuleCommand(words, io.connect));
  if (!found) {
    const group = commands.filter((c) => c.path[0] === words[0]);
    io.err(
      group.length > 0 && words.length === 1
        ? `Error: ${words[0]} needs a subcommand\n${helpText([words[0]])}`
        : `Error: unknown command ${
          JSON.stringify(words.slice(0, 2).join(" "))
        }\nHint: run \`help\` for the list of commands (\`module commands\` for the modules' own)\n`,
    );
    return EXIT.usage;
  }
  if (json && !hasJson(found.command)) {
    const why = found.command.interactive ? "it takes over the terminal" : "it runs in the menus";
    io.err(
      `Error: ${found.command.path.join(" ")} has no JSON output (${why})\n` +
        `Usage: ${usage(found.command)}\n`,
    );
    return EXIT.usage;
  }
  let request;
  try {
    const parsed = parseArgs(found.command, found.rest);
    request = found.command.build(parsed);
    // io.stdio only when a value is read: with a terminal, asking for it takes the keys over.
    await valueFromStdin(request.params, () => io.stdio);
    // kattach's parameter checks, told in the command's words; nothing is sent when one fails.
    checkParams(found.command, parsed, request);
  } catch (err) {
    if (err instanceof WordError) return reportError(err, io, json);
    if (err instanceof UsageError) {
      io.err(`Error: ${err.message}\nUsage: ${err.usage || usage(found.command)}\n`);
      return EXIT.usage;
    }
    throw err;
  }
  let client: IpcClient | undefined;
  try {
    client = await io.connect();
    const counter = progressLines(io.err);
    const result = await client.call(request.action, request.params as never, {
      onProgress: (message, done, total) => {
        const shown = json && found.command.progressJson
          ? found.command.progressJson(message)
          : found.command.progress?.(message, done, total);
        if (shown !== undefined) io.out(stripControls(shown));
        else counter(stripControlsLine(message), done, total);
      },
    });
    if (found.command.interactive) {
      return await found.command.interactive(result, io.stdio);
    }
    // A command that streams lines on stdout keeps --json output one JSON value per line.
    const indent = found.command.progress ? undefined : 2;
    // Results carry text from guests and modules (serial lines, health details, descriptions,
    // release notes): plain output reaches the terminal without their control characters.
    io.out(
      json
        ? JSON.stringify(result, null, indent) + "\n"
        : stripControls(found.command.render(result)),
    );
    const problems = found.command.problems?.(result, request.params) ?? [];
    for (const p of problems) io.err(stripControls(`Error: ${p}\n`));
    return problems.length > 0 ? EXIT.failed : EXIT.ok;
  } catch (err) {
    return reportError(err, io, json);
  } finally {
    client?.close();
  }
}

/** How long a counter of one message (`[262144/4362240] downloading web.aqi`) stays quiet. */
export const PROGRESS_QUIET_MS = 1000;

/**
 * Writes progress frames as lines on stderr: every new message, but a counter that goes on for
 * the same message (a download's bytes) at most once per {@linkcode PROGRESS_QUIET_MS} and at its
 * end; each frame a line of its own would be 17 lines for a 4 MiB module.
 */
export function progressLines(
  err: (text: string) => void,
  now: () => number = Date.now,
): (message: string, done?: number, total?: number) => void {
  let last = { message: "", at: -Infinity };
  return (message, done, total) => {
    const t = now();
    const counting = total !== undefined && total > 0 && message === last.message;
    if (counting && (done ?? 0) < total && t - last.at < PROGRESS_QUIET_MS) return;
    last = { message, at: t };
    err(`${total ? `[${done ?? 0}/${total}] ` : ""}${message}\n`);
  };
}

function reportError(err: unknown, io: OneLineIo, json: boolean): number {
  const kind = err instanceof IpcError ? err.info.kind : isUserError(err) ? "user" : "internal";
  const code = err instanceof IpcError ? err.info.code : isUserError(err) ? err.code : "internal";
  const message = err instanceof Error ? err.message : String(err);
  const hint = isUserError(err) ? err.hint : "";
  if (json) {
    // A refused word adds `issues` (word, value, field, reason, message) to the same shape.
    const issues = err instanceof WordError ? { issues: err.issues } : {};
    io.err(JSON.stringify({ error: { kind, code, message, hint, ...issues } }) + "\n");
  } else {
    io.err(stripControls(`Error: ${message}\n${hint ? `Hint: ${hint}\n` : ""}`));
  }
  if (code === "unavailable") return EXIT.unavailable;
  if (kind === "user") return EXIT.failed;
  return EXIT.internal;
}

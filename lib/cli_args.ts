/**
 * Strict command-line options for entry points (main.ts subcommands, scripts, benchmarks), parsed
 * as `node:util` `parseArgs` parses them in strict mode (same rules, same messages; its test holds
 * them equal): unknown options and missing values are refused with the usage, and `--help`/`-h`
 * prints the usage and asks the caller to exit 0 before it starts anything. Not node:util itself
 * (issue 13: memory): importing it loads Deno's Node layer, about 1 MiB of RSS that kattach idle
 * otherwise never loads, and kattach parses its options at every start.
 */

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
  const parsed = parseStrict(args, {
    options: { ...spec.options, help: { type: "boolean", short: "h" } },
    positionals: spec.positionals ?? false,
  });
  if (typeof parsed === "string") {
    io.err(`Error: ${parsed}\n${spec.usage.endsWith("\n") ? spec.usage : spec.usage + "\n"}`);
    return { exit: 2 };
  }
  const { values, positionals } = parsed;
  if (values.help) {
    io.out(spec.usage.endsWith("\n") ? spec.usage : spec.usage + "\n");
    return { exit: 0 };
  }
  delete values.help;
  return { values: values as CliArgs<O>["values"], positionals };
}

/**
 * `parseArgs({ args, options, allowPositionals, strict: true })` of node:util for options of
 * {@linkcode OptionSpec} (no `multiple`, no defaults): the values and words, or the first line of
 * the error message parseArgs throws (without its advice to use `--`).
 */
export function parseStrict(
  argv: readonly string[],
  spec: { options: Record<string, OptionSpec>; positionals: boolean },
): { values: Record<string, string | boolean>; positionals: string[] } | string {
  const args = [...argv];
  const values: Record<string, string | boolean> = Object.create(null);
  const positionals: string[] = [];
  const byShort = new Map<string, string>();
  for (const [name, o] of Object.entries(spec.options)) if (o.short) byShort.set(o.short, name);
  const optionLike = (v: string | undefined) => v !== undefined && v.length > 1 && v[0] === "-";
  /** One option as parseArgs' tokens have it: name, how it was written, its value. */
  const use = (name: string, raw: string, value: string | undefined, inline: boolean) => {
    const o = Object.hasOwn(spec.options, name) ? spec.options[name] : undefined;
    if (o === undefined) return `Unknown option '${raw}'`;
    if (o.type === "string" && !inline && optionLike(value)) {
      return `Option '${raw}' argument is ambiguous.`;
    }
    const both = `${o.short ? `-${o.short}, ` : ""}--${name}`;
    if (o.type === "string" && value === undefined) {
      return `Option '${both} <value>' argument missing`;
    }
    if (o.type === "boolean" && value !== undefined) {
      return `Option '${both}' does not take an argument`;
    }
    values[name] = o.type === "string" ? value! : true;
  };
  const unexpected = (word: string) =>
    `Unexpected argument '${word}'. This command does not take positional arguments`;
  const typeOf = (name: string | undefined) =>
    name !== undefined && Object.hasOwn(spec.options, name) ? spec.options[name].type : undefined;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    let problem: string | undefined;
    if (arg === "--") {
      const rest = args.slice(i + 1);
      if (rest.length > 0 && !spec.positionals) return unexpected(rest[0]);
      positionals.push(...rest);
      break;
    } else if (arg.startsWith("--")) {
      const eq = arg.indexOf("=", 3); // `--=x` names an option "=x"
      if (eq !== -1) problem = use(arg.slice(2, eq), arg.slice(0, eq), arg.slice(eq + 1), true);
      else {
        const name = arg.slice(2);
        const takes = typeOf(name) === "string" && i + 1 < args.length;
        problem = use(name, arg, takes ? args[++i] : undefined, false);
      }
    } else if (arg.length > 1 && arg[0] === "-") {
      const first = byShort.get(arg[1]);
      if (arg.length === 2) {
        const takes = typeOf(first) === "string" && i + 1 < args.length;
        problem = use(first ?? arg[1], arg, takes ? args[++i] : undefined, false);
      } else if (typeOf(first) === "string") {
        problem = use(first!, arg.slice(0, 2), arg.slice(2), true); // -sVALUE
      } else {
        // A group: -abc is -a -b -c, and -abfFILE is -a -b -fFILE when -f takes a value.
        const one: string[] = [];
        for (let k = 1; k < arg.length; k++) {
          if (typeOf(byShort.get(arg[k])) !== "string" || k === arg.length - 1) {
            one.push(`-${arg[k]}`);
          } else {
            one.push(`-${arg.slice(k)}`);
            break;
          }
        }
        args.splice(i, 1, ...one);
        i--;
        continue;
      }
    } else if (spec.positionals) positionals.push(arg);
    else problem = unexpected(arg);
    if (problem) return problem;
  }
  return { values, positionals };
}

/**
 * Where the words start in `args` whose leading options are a program's own (parseArgs' tokens,
 * not strict): the index of the first word or `--` (args.length when none). `valueOptions` take
 * a value (`--state DIR`); any other option is a switch.
 */
export function firstWordIndex(args: readonly string[], valueOptions: readonly string[]): number {
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg === "--" || arg === "-" || arg[0] !== "-") return i;
    if (arg.startsWith("--") && !arg.includes("=") && valueOptions.includes(arg.slice(2))) i++;
  }
  return args.length;
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

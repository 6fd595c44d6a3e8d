/**
 * Turning a one-line command's ArgSpecs and FlagSpecs into prompts: arguments that name an
 * existing object get a select filled from the object's `list` action, flags get optional inputs
 * or checkboxes, and configuration values get one prompt per field the module declares. The
 * answers become the words of the equivalent one-line command.
 */
import { checkbox, confirm, input, select } from "@inquirer/prompts";
import type { ActionName, IpcClient, Module, ParamsOf, ResultOf } from "../ipc/mod.ts";
import type { ArgSpec, Command, FlagSpec } from "./commands.ts";
import { PAGE_FLAGS } from "./command.ts";
import { stripControlsLine } from "../lib/mod.ts";
import { splitWords } from "./render.ts";
import type { Terminal } from "./terminal.ts";

/** A kind of object the operator can pick from a list. */
export interface ObjectSource {
  /** What one object is called, e.g. "VLAN". */
  noun: string;
  /** Fetches the choices: the word to put on the command line and a label. */
  list(call: Caller): Promise<{ value: string; label: string }[]>;
}

/** Sends one action to kattach. */
export type Caller = <A extends ActionName>(action: A, params: ParamsOf<A>) => Promise<ResultOf<A>>;

/** Makes a Caller that opens one IPC connection per call. */
export function callerOf(connect: () => Promise<IpcClient>): Caller {
  return async (action, params) => {
    const client = await connect();
    try {
      return await client.call(action, params);
    } finally {
      client.close();
    }
  };
}

/** Object kinds by the word that names them (argument name, flag name or command group). */
export const OBJECT_SOURCES: Record<string, ObjectSource> = {
  vlan: {
    noun: "VLAN",
    list: async (call) =>
      (await call("vlan.list", {})).map((v) => ({
        value: String(v.id),
        label: `${v.id}  ${v.name}  ${v.cidr}`,
      })),
  },
  module: {
    noun: "module",
    list: async (call) =>
      (await call("module.list", {})).map((m) => ({
        value: m.name,
        label: `${m.name}  ${m.version}  ${m.description}`,
      })),
  },
  "config-group": {
    noun: "configuration group",
    list: async (call) =>
      (await call("configGroup.list", {})).map((g) => ({
        value: g.name,
        label: `${g.name}  (${g.module})`,
      })),
  },
  vmimage: {
    noun: "VM image",
    list: async (call) =>
      (await call("vmimage.list", {})).map((v) => ({
        value: v.name,
        label: `${v.name}  ${v.modules.join(",")}`,
      })),
  },
  instance: {
    noun: "instance",
    list: async (call) =>
      (await call("instance.list", {})).map((i) => ({
        value: i.name,
        label: `${i.name}  ${i.state}`,
      })),
  },
  queue: {
    noun: "AppQueue",
    list: async (call) =>
      (await call("appqueue.list", {})).map((q) => ({
        value: q.name,
        label: `${q.name}  ${q.url}`,
      })),
  },
  "ssh-key": {
    noun: "SSH key",
    list: async (call) =>
      (await call("auth.keys.list", {})).map((k) => ({
        value: k.fingerprint,
        label: `${k.comment || k.type}  ${k.fingerprint}`,
      })),
  },
};

const ALIASES: Record<string, string> = {
  appqueue: "queue",
  configgroup: "config-group",
  "config-groups": "config-group",
  modules: "module",
  vlans: "vlan",
  vlan2: "vlan",
  instances: "instance",
};

/** Commands of one word whose NAME names an object of another kind (e.g. `qmp NAME …`). */
const NAME_OF: Record<string, string> = { qmp: "instance" };

/** Verbs whose NAME argument names a new object rather than an existing one. */
const CREATING = new Set(["add", "create", "import", "install", "new"]);

function sourceKey(word: string): string | undefined {
  const w = word.toLowerCase();
  const key = ALIASES[w] ?? w;
  return Object.hasOwn(OBJECT_SOURCES, key) ? key : undefined;
}

/** The object kind an argument names, if it names an existing one. */
export function argSource(command: Command, arg: ArgSpec): string | undefined {
  if (arg.rest) return undefined;
  const direct = sourceKey(arg.name);
  if (direct) return direct;
  const verb = command.path[command.path.length - 1];
  if (arg.name === "NAME" && !CREATING.has(verb)) {
    return sourceKey(NAME_OF[command.path[0]] ?? command.path[0]);
  }
  return undefined;
}

/** The object kind a flag's value names, and whether it takes several (comma-separated). */
export function flagSource(flag: FlagSpec): { key: string; multiple: boolean } | undefined {
  if (flag.boolean) return undefined;
  const key = sourceKey(flag.name) ?? (flag.value ? sourceKey(flag.value) : undefined);
  if (!key) return undefined;
  return { key, multiple: (flag.value ?? "").includes(",") || flag.name.endsWith("s") };
}

/** Answers collected so far for one command. */
export interface Answers {
  args: Record<string, string | undefined>;
  rest: string[];
  flags: [string, string | true][];
}

/** Runs prompts on a Terminal. */
export interface Prompter {
  terminal: Terminal;
  call: Caller;
}

async function choices(p: Prompter, key: string) {
  try {
    return await OBJECT_SOURCES[key].list(p.call);
  } catch {
    return []; // kattach cannot list them: fall back to typing the name
  }
}

/** Asks for one argument. */
export async function promptArg(p: Prompter, command: Command, arg: ArgSpec): Promise<string> {
  const key = argSource(command, arg);
  const t = p.terminal;
  if (key) {
    const options = await choices(p, key);
    if (options.length > 0) {
      const none = arg.optional ? [{ value: "", name: "(none)" }] : [];
      return await t.prompt((ctx) =>
        select({
          message: `${OBJECT_SOURCES[key].noun} (${arg.name})`,
          choices: [
            ...none,
            ...options.map((o) => ({ value: o.value, name: stripControlsLine(o.label) })),
          ],
          pageSize: Math.max(5, Math.min(15, t.rows - 6)),
        }, ctx)
      );
    }
    t.write(`(no ${OBJECT_SOURCES[key].noun} to choose from; type a name)\n`);
  }
  return (await t.prompt((ctx) =>
    input({
      message: arg.optional ? `${arg.name} (optional)` : arg.name,
      required: !arg.optional,
    }, ctx)
  )).trim();
}

/** Asks for one flag; undefined when the operator leaves it out. */
export async function promptFlag(p: Prompter, flag: FlagSpec): Promise<string | true | undefined> {
  const t = p.terminal;
  if (flag.boolean) {
    const on = await t.prompt((ctx) =>
      confirm({ message: `--${flag.name}: ${flag.help}?`, default: false }, ctx)
    );
    return on ? true : undefined;
  }
  const fixed = flag.value && /^[\w.-]+(\|[\w.-]+)+$/.test(flag.value) ? flag.value.split("|") : [];
  if (fixed.length > 0) {
    const picked = await t.prompt((ctx) =>
      select({
        message: `--${flag.name}: ${flag.help}`,
        choices: [{ value: "", name: "(leave out)" }, ...fixed.map((v) => ({ value: v, name: v }))],
      }, ctx)
    );
    return picked === "" ? undefined : picked;
  }
  const source = flagSource(flag);
  if (source) {
    const options = await choices(p, source.key);
    if (options.length > 0 && source.multiple) {
      const picked = await t.prompt((ctx) =>
        checkbox({
          message: `--${flag.name}: ${flag.help} (space selects, enter goes on)`,
          choices: options.map((o) => ({ value: o.value, name: stripControlsLine(o.label) })),
          pageSize: Math.max(5, Math.min(15, t.rows - 6)),
        }, ctx)
      );
      return picked.length > 0 ? picked.join(",") : undefined;
    }
    if (options.length > 0) {
      const picked = await t.prompt((ctx) =>
        select({
          message: `--${flag.name}: ${flag.help}`,
          choices: [
            { value: "", name: "(leave out)" },
            ...options.map((o) => ({ value: o.value, name: stripControlsLine(o.label) })),
          ],
        }, ctx)
      );
      return picked === "" ? undefined : picked;
    }
  }
  const text =
    (await t.prompt((ctx) =>
      input({ message: `--${flag.name} ${flag.value ?? ""}: ${flag.help} (empty: leave out)` }, ctx)
    )).trim();
  return text === "" ? undefined : text;
}

/** Asks for the values of a module's configuration fields; returns `key=value` words. */
export async function promptFields(
  p: Prompter,
  module: Module,
  current: Record<string, unknown> = {},
): Promise<string[]> {
  const t = p.terminal;
  const words: string[] = [];
  for (const f of module.climod.fields) {
    const had = Object.hasOwn(current, f.name) ? current[f.name] : undefined;
    const start = had ?? f.default;
    // f.help comes from the module's climod.aq: shown without control characters.
    const label = stripControlsLine(`${f.name}${f.help ? ` — ${f.help}` : ""}`);
    let value: string;
    if (f.type === "enum") {
      value = await t.prompt((ctx) =>
        select({
          message: label,
          choices: f.choices.map((c) => ({ value: c, name: c })),
          default: typeof start === "string" ? start : undefined,
        }, ctx)
      );
    } else if (f.type === "boolean") {
      value = String(
        await t.prompt((ctx) =>
          confirm({ message: label, default: typeof start === "boolean" ? start : false }, ctx)
        ),
      );
    } else {
      value = (await t.prompt((ctx) =>
        input({
          message: `${label} (${f.type})`,
          default: start === undefined ? undefined : String(start),
          required: start === undefined && f.default === undefined,
          validate: f.type === "integer"
            ? (v: string) => v.trim() === "" || /^-?\d+$/.test(v.trim()) || "a whole number"
            : undefined,
        }, ctx)
      )).trim();
    }
    if (value === "" || (start !== undefined && value === String(start))) continue;
    words.push(`${f.name}=${value}`);
  }
  return words;
}

/**
 * Collects every argument and flag of `command` with prompts, in order; returns the words after
 * the command's path. Configuration values (`KEY=VALUE…` after a MODULE or a configuration
 * group NAME) are asked field by field.
 */
export async function promptCommand(p: Prompter, command: Command): Promise<string[]> {
  const positional: string[] = [];
  const chosen: Record<string, string> = {};
  for (const arg of command.args) {
    if (arg.rest) {
      positional.push(...await promptRest(p, command, arg, chosen));
      continue;
    }
    const value = await promptArg(p, command, arg);
    if (value === "" && arg.optional) break; // later positionals cannot follow a missing one
    chosen[arg.name] = value;
    positional.push(value);
  }
  const flagWords: string[] = [];
  for (const flag of command.flags) {
    // A pageable list is fetched page by page by the menu (cli/menus.ts runPages).
    if (command.pageable && PAGE_FLAGS.includes(flag)) continue;
    const v = await promptFlag(p, flag);
    if (v === true) flagWords.push(`--${flag.name}`);
    else if (v !== undefined) flagWords.push(`--${flag.name}=${v}`);
  }
  // "--" keeps a positional starting with "-" from being read as a flag.
  const risky = positional.some((w) => w.startsWith("-"));
  return [...flagWords, ...(risky ? ["--"] : []), ...positional];
}

async function promptRest(
  p: Prompter,
  command: Command,
  arg: ArgSpec,
  chosen: Record<string, string>,
): Promise<string[]> {
  if (arg.name === "KEY=VALUE") {
    try {
      if (chosen.MODULE) {
        return await promptFields(p, await p.call("module.show", { name: chosen.MODULE }));
      }
      if (chosen.NAME && argSource(command, { name: "NAME" }) === "config-group") {
        const group = await p.call("configGroup.show", { name: chosen.NAME });
        const module = await p.call("module.show", { name: group.module });
        return await promptFields(p, module, group.values);
      }
    } catch (err) {
      if (err instanceof Error && /Prompt/.test(err.name)) throw err;
      // kattach could not describe the fields: ask for words instead
    }
  }
  const text = await p.terminal.prompt((ctx) =>
    input({
      message: `${arg.name}…${arg.optional ? " (optional)" : ""}`,
      required: !arg.optional,
    }, ctx)
  );
  return text.trim() === "" ? [] : arg.name === "KEY" ? [text.trim()] : splitWords(text);
}

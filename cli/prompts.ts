/**
 * Turning a one-line command's ArgSpecs and FlagSpecs into prompts: arguments that name an
 * existing object get a pick list fed by the object's `list` action one screenful at a time
 * ("next", "previous", "type a name", and what the operator types as a name filter that kattach
 * answers from SQLite), flags get optional inputs or checkboxes, and configuration values get one
 * prompt per field the module declares. The answers become the words of the equivalent one-line
 * command.
 */
import { checkbox, confirm, input, search, select } from "@inquirer/prompts";
import {
  type ActionName,
  CHECKED_ACTIONS,
  type CheckedAction,
  type CheckIssue,
  type InstanceState,
  type IpcClient,
  type Module,
  type ParamsOf,
  type ResultOf,
} from "../ipc/mod.ts";
import type { ArgSpec, Command, FlagSpec } from "./commands.ts";
import { type Parsed, WINDOW_FLAGS } from "./command.ts";
import { answerProblem, type Request } from "./word_check.ts";
import { stripControlsLine } from "../lib/mod.ts";
import { splitWords } from "./render.ts";
import type { Terminal } from "./terminal.ts";

/** One screenful of a pick list: at most `limit` entries after `offset`, names containing `filter`. */
export interface PickWindow {
  limit: number;
  offset: number;
  filter?: string;
}

/** One entry of a pick list: the word to put on the command line and a label. */
export interface PickEntry {
  value: string;
  label: string;
}

/** A kind of object the operator can pick from a list. */
export interface ObjectSource {
  /** What one object is called, e.g. "VLAN". */
  noun: string;
  /**
   * Fetches one window of the choices. The lists that can hold thousands (instances, VLANs,
   * modules, VM images, configuration groups) send the window to kattach, which answers it from
   * SQLite with a LIMIT; the short ones (AppQueues, SSH keys) are cut here.
   */
  list(call: Caller, window: PickWindow): Promise<PickEntry[]>;
  /** Drops what `list` kept for one pick list (a list fetched whole once per pick). */
  forget?(call: Caller): void;
}

/** The window of a short list that kattach sends whole: names (or labels) containing the filter. */
function cut(entries: PickEntry[], w: PickWindow): PickEntry[] {
  const f = w.filter?.toLowerCase();
  const kept = f === undefined
    ? entries
    : entries.filter((e) => `${e.value} ${e.label}`.toLowerCase().includes(f));
  return kept.slice(w.offset, w.offset + w.limit);
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

function isCheckedAction(action: string): action is CheckedAction {
  return (CHECKED_ACTIONS as readonly string[]).includes(action);
}

/** Object kinds by the word that names them (argument name, flag name or command group). */
export const OBJECT_SOURCES: Record<string, ObjectSource> = {
  vlan: {
    noun: "VLAN",
    list: async (call, w) =>
      (await call("vlan.list", w)).map((v) => ({
        value: String(v.id),
        label: `${v.id}  ${v.name}  ${v.cidr}`,
      })),
  },
  module: {
    noun: "module",
    list: async (call, w) =>
      (await call("module.list", w)).map((m) => ({
        value: m.name,
        label: `${m.name}  ${m.version}  ${m.description}`,
      })),
  },
  "config-group": {
    noun: "configuration group",
    list: async (call, w) =>
      (await call("configGroup.list", w)).map((g) => ({
        value: g.name,
        label: `${g.name}  (${g.module})`,
      })),
  },
  vmimage: {
    noun: "VM image",
    list: async (call, w) =>
      (await call("vmimage.list", w)).map((v) => ({
        value: v.name,
        label: `${v.name}  ${v.modules.join(",")}`,
      })),
  },
  instance: instancesIn("instance"),
  // What a verb can act on (kattach refuses the rest with code conflict); a name typed is sent.
  "instance-stopped": instancesIn("stopped instance", ["defined", "stopped", "failed"]),
  "instance-live": instancesIn("running instance", ["running", "paused", "starting", "stopping"]),
  "instance-running": instancesIn("running instance", ["running", "starting"]),
  "instance-paused": instancesIn("paused instance", ["paused"]),
  available: {
    noun: "module in the AppQueues",
    list: async (call, w) => cut(await offered(call), w),
    forget: (call) => offeredBy.delete(call),
  },
  queue: {
    noun: "AppQueue",
    list: async (call, w) =>
      cut(
        (await call("appqueue.list", {})).map((q) => ({
          value: q.name,
          label: `${q.name}  ${q.url}`,
        })),
        w,
      ),
  },
  "ssh-key": {
    noun: "SSH key",
    list: async (call, w) =>
      cut(
        (await call("auth.keys.list", {})).map((k) => ({
          value: k.fingerprint,
          label: `${k.comment || k.type}  ${k.fingerprint}`,
        })),
        w,
      ),
  },
};

/**
 * Instances (those in `states` only, when given: kattach selects them, a screenful at a time),
 * each with its state.
 */
function instancesIn(noun: string, states?: InstanceState[]): ObjectSource {
  return {
    noun,
    list: async (call, w) =>
      (await call("instance.list", states ? { ...w, state: states } : w)).map((i) => ({
        value: i.name,
        label: `${i.name}  ${i.state}`,
      })),
  };
}

/** What the AppQueues offer, kept for the pick list under way (see {@linkcode offered}). */
const offeredBy = new WeakMap<Caller, Promise<PickEntry[]>>();

/**
 * What the AppQueues offer (each queue's newest release of each module, the version installed
 * beside it), fetched whole once per pick list: the list is asked again at every change of its
 * filter, and each `module.search` reads every queue's index anew (over the network).
 */
function offered(call: Caller): Promise<PickEntry[]> {
  const kept = offeredBy.get(call);
  if (kept) return kept;
  const entries = call("module.search", { allVersions: false }).then((rs) =>
    rs.map((r) => ({
      value: r.name,
      label: `${r.name}  ${r.version}  ${r.queue}${
        r.installed === null ? "" : `  (installed: ${r.installed})`
      }  ${r.description}`,
    }))
  );
  offeredBy.set(call, entries);
  entries.catch(() => offeredBy.delete(call)); // a failure is not kept
  return entries;
}

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

/** Arguments offered from a list of a kind of their own, by command and argument name. */
const ARG_SOURCES: Record<string, string> = {
  "module install NAME[@VERSION]": "available",
  "instance start NAME": "instance-stopped",
  "instance stop NAME": "instance-live",
  "instance kill NAME": "instance-live",
  "instance pause NAME": "instance-running",
  "instance resume NAME": "instance-paused",
};

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
  const own = ARG_SOURCES[`${command.path.join(" ")} ${arg.name}`];
  if (own) return own;
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

/** The entries of one pick-list screen (its navigation entries come on top of these). */
export function pickPageSize(t: Terminal): number {
  return Math.max(5, Math.min(15, t.rows - 10));
}

/** What a pick list gave: a word, nothing (the "none" entry), or "done" (several, finished). */
export type Picked = { value: string } | { none: true } | { done: true };

/** How a pick list looks and what it offers besides the objects. */
export interface PickOptions {
  /** The prompt's message, e.g. `instance (NAME)`. */
  message: string;
  /** What typing a name asks for (the argument's or the flag's name). */
  typeName: string;
  /** The label of a "none" entry on top (an optional argument or flag), if any. */
  none?: string;
  /** Picks several: the ones picked so far, shown beside a "Done" entry. */
  chosen?: string[];
  /** The first screenful, when the caller fetched it already. */
  first?: PickEntry[];
}

/** What one entry of a pick-list screen stands for: an object's word, or a way to move on. */
type PickValue =
  | { word: string }
  | { nav: "move"; offset: number; filter?: string }
  | { nav: "type"; term?: string }
  | { nav: "none" }
  | { nav: "done" };

const NAME_PART = /^[A-Za-z0-9._-]{1,64}$/;

/**
 * A pick list over one object kind (a key of OBJECT_SOURCES, or a source of its own) that fetches
 * one screenful at a time. What the operator types filters it: each change of the text is one
 * request for the first screenful of the names containing it (kattach matches it in SQLite,
 * before its LIMIT); `› Next` and `‹ Previous` fetch the neighbouring window, and
 * `✎ Type a name…` is the way out to an input. 10,000 instances cost one request of
 * `pickPageSize() + 1` entries per screen, never the whole list.
 */
export async function pickObject(
  p: Prompter,
  kind: string | ObjectSource,
  o: PickOptions,
): Promise<Picked> {
  const t = p.terminal;
  const source = typeof kind === "string" ? OBJECT_SOURCES[kind] : kind;
  const size = pickPageSize(t);
  let offset = 0;
  let filter: string | undefined;
  let first = o.first;
  // Tab puts the active entry's whole label into the search text (inquirer's search prompt):
  // an object's label stands for its name, a navigation entry's for the text of its screen.
  const labels = new Map<string, { text: string | undefined }>();
  const entry = (value: PickValue, name: string) => ({ value, name });
  for (;;) {
    const at = offset;
    const term = filter;
    const screen = async (text: string | undefined) => {
      let f = text?.trim() || undefined;
      const tabbed = f === undefined ? undefined : labels.get(f);
      if (tabbed) f = tabbed.text;
      const entries = await screenEntries(f);
      labels.clear();
      for (const e of entries) {
        labels.set(e.name.trim(), { text: "word" in e.value ? e.value.word : f });
      }
      return entries;
    };
    const screenEntries = async (f: string | undefined) => {
      const from = f === term ? at : 0; // a changed text starts at its first screen
      const head = o.none === undefined ? [] : [entry({ nav: "none" }, o.none)];
      const tail = o.chosen
        ? [entry({ nav: "done" }, `✓ Done${o.chosen.length ? ` (${o.chosen.join(",")})` : ""}`)]
        : [];
      if (f !== undefined && !NAME_PART.test(f)) {
        const why = "(a filter is letters, digits, '.', '_' or '-')";
        return [...head, entry({ nav: "type", term: f }, `✎ Type a name… ${why}`), ...tail];
      }
      let rows: PickEntry[];
      if (first && from === 0 && f === undefined) {
        rows = first;
        first = undefined;
      } else {
        rows = await source.list(p.call, { limit: size + 1, offset: from, filter: f });
      }
      const more = rows.length > size;
      const shown = rows.slice(0, size);
      const nothing = shown.length === 0 && f !== undefined ? ` (no name contains "${f}")` : "";
      return [
        ...head,
        ...shown.map((e) => entry({ word: e.value }, stripControlsLine(e.label))),
        ...(more
          ? [entry(
            { nav: "move", offset: from + size, filter: f },
            `› Next ${size} (${from + 1}-${from + size} shown)`,
          )]
          : []),
        ...(from > 0
          ? [
            entry(
              { nav: "move", offset: Math.max(0, from - size), filter: f },
              `‹ Previous ${size}`,
            ),
          ]
          : []),
        entry({ nav: "type", term: f }, `✎ Type a name…${nothing}`),
        ...tail,
      ];
    };
    const picked = await t.prompt((ctx) =>
      search<PickValue>({
        message: `${o.message}, type to filter:`,
        initialValue: term,
        pageSize: size + 5,
        source: (text) => screen(text),
      }, ctx)
    );
    if ("word" in picked) return { value: picked.word };
    switch (picked.nav) {
      case "none":
        return { none: true };
      case "done":
        return { done: true };
      case "move":
        offset = picked.offset;
        filter = picked.filter;
        break;
      case "type":
        return {
          value: (await t.prompt((ctx) =>
            input({ message: o.typeName, required: true, default: picked.term }, ctx)
          )).trim(),
        };
    }
  }
}

/** The first screenful of a pick list, or undefined when kattach cannot list them (`why`). */
async function firstWindow(
  p: Prompter,
  key: string,
  why?: (message: string) => void,
): Promise<PickEntry[] | undefined> {
  try {
    return await OBJECT_SOURCES[key].list(p.call, {
      limit: pickPageSize(p.terminal) + 1,
      offset: 0,
    });
  } catch (err) {
    why?.(err instanceof Error ? err.message : String(err));
    return undefined; // kattach cannot list them: fall back to typing the name
  }
}

/** Asks for one argument. */
export async function promptArg(p: Prompter, command: Command, arg: ArgSpec): Promise<string> {
  const key = argSource(command, arg);
  const t = p.terminal;
  if (key) {
    let why = "";
    try {
      const first = await firstWindow(p, key, (m) => why = `: ${stripControlsLine(m)}`);
      if (first && first.length > 0) {
        const picked = await pickObject(p, key, {
          message: `${OBJECT_SOURCES[key].noun} (${arg.name})`,
          typeName: arg.name,
          none: arg.optional ? "(none)" : undefined,
          first,
        });
        return "value" in picked ? picked.value : "";
      }
    } finally {
      OBJECT_SOURCES[key].forget?.(p.call);
    }
    t.write(`(no ${OBJECT_SOURCES[key].noun} to choose from${why}; type a name)\n`);
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
        choices: [
          ...(flag.required ? [] : [{ value: "", name: "(leave out)" }]),
          ...fixed.map((v) => ({ value: v, name: v })),
        ],
      }, ctx)
    );
    return picked === "" ? undefined : picked;
  }
  const source = flagSource(flag);
  const first = source && await firstWindow(p, source.key);
  if (source && first && first.length > 0) {
    const message = `--${flag.name}: ${flag.help}`;
    const typeName = `--${flag.name} ${flag.value ?? ""}`.trim();
    if (source.multiple && first.length <= pickPageSize(t)) {
      // All of them fit on one screen: a checkbox.
      const picked = await t.prompt((ctx) =>
        checkbox({
          message: `${message} (space selects, enter goes on)`,
          choices: first.map((o) => ({ value: o.value, name: stripControlsLine(o.label) })),
          pageSize: first.length,
        }, ctx)
      );
      return picked.length > 0 ? picked.join(",") : undefined;
    }
    if (source.multiple) {
      // More than a screenful: one pick at a time until Done.
      const chosen: string[] = [];
      for (;;) {
        const picked = await pickObject(p, source.key, {
          message,
          typeName,
          chosen,
          first: chosen.length === 0 ? first : undefined,
        });
        if (!("value" in picked)) break;
        for (const v of picked.value.split(",")) {
          if (v.trim() !== "" && !chosen.includes(v.trim())) chosen.push(v.trim());
        }
      }
      return chosen.length > 0 ? chosen.join(",") : undefined;
    }
    const picked = await pickObject(p, source.key, {
      message,
      typeName,
      none: "(leave out)",
      first,
    });
    return "value" in picked && picked.value !== "" ? picked.value : undefined;
  }
  const text = (await t.prompt((ctx) =>
    input({
      message: `--${flag.name} ${flag.value ?? ""}: ${flag.help}` +
        (flag.required ? "" : " (empty: leave out)"),
      required: flag.required,
    }, ctx)
  )).trim();
  return text === "" ? undefined : text;
}

/** Options of {@linkcode promptFields}. */
export interface FieldsOptions {
  /** The values stored now (`config-group set`): each prompt starts from its field's. */
  current?: Record<string, unknown>;
  /**
   * Checks one `key=value` answer as it is given: what is wrong with it, or undefined. A wrong
   * one is refused with its reason and its field asked again.
   */
  check?: (word: string) => Promise<string | undefined>;
}

/** Asks for the values of a module's configuration fields; returns `key=value` words. */
export async function promptFields(
  p: Prompter,
  module: Module,
  options: FieldsOptions = {},
): Promise<string[]> {
  const t = p.terminal;
  const current = options.current ?? {};
  const words: string[] = [];
  for (const f of module.climod.fields) {
    for (;;) {
      const word = await promptField(t, f, current);
      if (word === undefined) break;
      const why = await options.check?.(word);
      if (why === undefined) {
        words.push(word);
        break;
      }
      t.write(`Error: ${why}\n`);
    }
  }
  return words;
}

/** Asks for one configuration field: its `key=value` word, or undefined when it stays as it is. */
async function promptField(
  t: Terminal,
  f: Module["climod"]["fields"][number],
  current: Record<string, unknown>,
): Promise<string | undefined> {
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
  if (value === "" || (start !== undefined && value === String(start))) return undefined;
  return `${f.name}=${value}`;
}

/**
 * Collects every argument and flag of `command` with prompts, in order; returns the words after
 * the command's path. Configuration values (`KEY=VALUE…` after a MODULE or a configuration
 * group NAME) are asked field by field. Each answer is checked as it is given, by the rules the
 * one-line grammar checks the whole line with (cli/word_check.ts), then by kattach's rules that
 * need the store (`check`: a taken name, an overlapping subnet, a value against its module's
 * pattern): a wrong one is refused with its reason and its prompt asked again (Ctrl+C still
 * cancels).
 */
export async function promptCommand(p: Prompter, command: Command): Promise<string[]> {
  const positional: string[] = [];
  const chosen: Record<string, string> = {};
  const given: Parsed = { args: {}, rest: [], flags: {} };
  for (const arg of command.args) {
    if (arg.rest) {
      const words = await checked(
        p,
        command,
        given,
        () => promptRest(p, command, { arg, chosen, given }),
        {
          put: (v, into) => into.rest = v,
          mentions: (v) => [arg.name, ...v],
        },
      );
      positional.push(...words);
      continue;
    }
    const value = await checked(p, command, given, () => promptArg(p, command, arg), {
      put: (v, into) => into.args[arg.name] = v,
      mentions: (v) => [arg.name, v],
      skip: (v) => v === "" && arg.optional === true,
    });
    if (value === "" && arg.optional) break; // later positionals cannot follow a missing one
    chosen[arg.name] = value;
    positional.push(value);
  }
  const flagWords: string[] = [];
  for (const flag of command.flags) {
    // A pageable list is fetched page by page by the menu (cli/menus.ts runPages).
    if (command.pageable && WINDOW_FLAGS.has(flag.name)) continue;
    const v = await checked(p, command, given, () => promptFlag(p, flag), {
      put: (v, into) => {
        if (v !== undefined) into.flags[flag.name] = v;
      },
      mentions: (v) => [`--${flag.name}`, typeof v === "string" ? v : ""],
      probe: (into) => into.flags[flag.name] = flag.boolean || PLACEHOLDER,
      missing: (v) =>
        v === undefined && flag.required ? `--${flag.name} is required: ${flag.help}` : undefined,
    });
    if (v === true) flagWords.push(`--${flag.name}`);
    else if (v !== undefined) flagWords.push(`--${flag.name}=${v}`);
  }
  // "--" keeps a positional starting with "-" from being read as a flag.
  const risky = positional.some((w) => w.startsWith("-"));
  return [...flagWords, ...(risky ? ["--"] : []), ...positional];
}

/** How one answer goes into the command's words, and what names it in a UsageError. */
interface AnswerHow<T> {
  put: (value: T, into: Parsed) => void;
  /** What a UsageError about this answer names: its word, its value. */
  mentions: (value: T) => string[];
  /**
   * Puts a stand-in for the answer: which parameters it fills when given, so that leaving it
   * out is checked too (`vmimage create` without `--config-groups` for a module that needs one).
   */
  probe?: (into: Parsed) => void;
}

/**
 * Asks one prompt until its answer passes the command's checks, then records it in `given`.
 * A check sees the answers so far; required flags not asked yet stand in as a placeholder, so a
 * command that refuses to build without them (`vmimage create` without `--modules`) still checks
 * the words before them. What fails only because of a word not asked yet is left to that word.
 */
async function checked<T>(
  p: Prompter,
  command: Command,
  given: Parsed,
  ask: () => Promise<T>,
  how: AnswerHow<T> & {
    skip?: (value: T) => boolean;
    missing?: (value: T) => string | undefined;
  },
): Promise<T> {
  for (;;) {
    const value = await ask();
    if (how.skip?.(value)) return value;
    const why = how.missing?.(value) ?? await answerCheck(p, command, given, value, how);
    if (why === undefined) {
      how.put(value, given);
      return value;
    }
    p.terminal.write(`Error: ${why}\n`);
  }
}

/**
 * What is wrong with one answer, or undefined: first by the one-line grammar's rules
 * (cli/word_check.ts), then by kattach's rules that need the store (`check`: a taken name, a
 * subnet overlapping another VLAN, a value against its module's pattern), about the parameters
 * this answer filled and on the answers so far.
 */
async function answerCheck<T>(
  p: Prompter,
  command: Command,
  given: Parsed,
  value: T,
  how: AnswerHow<T>,
): Promise<string | undefined> {
  const withIt = withPlaceholders(command, given, (into) => how.put(value, into));
  const without = withPlaceholders(command, given, () => {});
  const nothing: Parsed = { args: {}, rest: [], flags: {} };
  return answerProblem(command, { withIt, without, mentions: how.mentions(value) }) ??
    await storeProblem(p, command, {
      withIt,
      without,
      alone: withPlaceholders(command, nothing, (into) => how.put(value, into)),
      none: withPlaceholders(command, nothing, () => {}),
      probe: how.probe && withPlaceholders(command, nothing, how.probe),
    });
}

/**
 * What kattach's `check` says of the parameters an answer filled, or undefined: nothing broken,
 * an action it has no rules for, or a kattach that cannot answer (the action itself still checks
 * everything when it is sent).
 */
async function storeProblem(
  p: Prompter,
  command: Command,
  answer: { withIt: Parsed; without: Parsed; alone: Parsed; none: Parsed; probe?: Parsed },
): Promise<string | undefined> {
  const now = builtOrNot(command, answer.withIt);
  if (!now || !isCheckedAction(now.action)) return undefined;
  const params = (now.params ?? {}) as Record<string, unknown>;
  const fields = answerFields(command, params, answer);
  if (fields.length === 0) return undefined;
  let issues: CheckIssue[];
  try {
    issues = await p.call("check", { action: now.action, params, fields });
  } catch {
    return undefined; // kattach could not check: the action tells when it is sent
  }
  if (issues.length === 0) return undefined;
  return issues.map((i) => `${i.message}${i.hint ? `\nHint: ${i.hint}` : ""}`).join("\nError: ");
}

/** The action a command builds from some words, or undefined when it cannot build one yet. */
function builtOrNot(command: Command, words: Parsed): Request | undefined {
  try {
    return command.build(words);
  } catch {
    return undefined; // a word not asked yet: nothing to ask kattach about
  }
}

/**
 * The parameters one answer filled: those whose value differs with it and without it; when the
 * command builds nothing without it (`vlan set` with no change, `vlan add` with no ID yet), those
 * it fills alone (against no answer at all); when it is left out, those a stand-in for it fills
 * (`probe`), as they are without it. Never a parameter of an earlier answer.
 */
function answerFields(
  command: Command,
  params: Record<string, unknown>,
  answer: { without: Parsed; alone: Parsed; none: Parsed; probe?: Parsed },
): string[] {
  const paramsOf = (words: Parsed | undefined) => {
    const r = words && builtOrNot(command, words);
    return r ? (r.params ?? {}) as Record<string, unknown> : undefined;
  };
  const differs = (a: Record<string, unknown>, b: Record<string, unknown> = {}) =>
    Object.keys(a).filter((k) =>
      a[k] !== undefined && JSON.stringify(a[k]) !== JSON.stringify(b[k])
    );
  const none = paramsOf(answer.none);
  const before = paramsOf(answer.without);
  const own = before ? differs(params, before) : differs(paramsOf(answer.alone) ?? {}, none);
  if (own.length > 0 || !before) return own.filter((k) => Object.hasOwn(params, k));
  // Left out: what it would have filled, checked as it is without it (e.g. an empty list).
  const probed = paramsOf(answer.probe);
  return probed ? differs(probed, none).filter((k) => params[k] !== undefined) : [];
}

/** What a not-yet-asked required flag stands in as while the words before it are checked. */
const PLACEHOLDER = "x";

/** A copy of the answers so far, edited, with required flags not asked yet as placeholders. */
function withPlaceholders(command: Command, given: Parsed, edit: (p: Parsed) => void): Parsed {
  const copy: Parsed = {
    args: { ...given.args },
    rest: [...given.rest],
    flags: { ...given.flags },
  };
  edit(copy);
  for (const f of command.flags) {
    if (f.required && !(f.name in copy.flags)) copy.flags[f.name] = f.boolean || PLACEHOLDER;
  }
  return copy;
}

/**
 * Asks for the words of a rest argument: for configuration values, field by field (each value
 * checked as it is given, alone: `given` holds the answers before it); else as one line.
 */
async function promptRest(
  p: Prompter,
  command: Command,
  o: { arg: ArgSpec; chosen: Record<string, string>; given: Parsed },
): Promise<string[]> {
  const { arg, chosen } = o;
  const check = (word: string) =>
    answerCheck(p, command, o.given, word, {
      put: (w, into) => into.rest = [w],
      mentions: (w) => [arg.name, w],
    });
  if (arg.name === "KEY=VALUE") {
    try {
      if (chosen.MODULE) {
        return await promptFields(p, await p.call("module.show", { name: chosen.MODULE }), {
          check,
        });
      }
      if (chosen.NAME && argSource(command, { name: "NAME" }) === "config-group") {
        const group = await p.call("configGroup.show", { name: chosen.NAME });
        const module = await p.call("module.show", { name: group.module });
        return await promptFields(p, module, { current: group.values, check });
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

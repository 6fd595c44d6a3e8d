/**
 * Checks a command's words before kattach is asked: the command builds its action (its own
 * UsageErrors), then the action's parameters are checked against the same schema kattach checks
 * them with (ipc/actions.ts), and each problem is told in the words of the command — the argument
 * or flag as the usage line spells it and the value given — not by the IPC field it went into:
 * `"Web_1" is not a valid instance name (NAME): instance names look like web-1`. The one-line
 * grammar (cli/oneline.ts) and the menus' prompt-by-prompt checks (cli/prompts.ts) both use it,
 * so there is one copy of the rules: the schemas.
 */
import { type ActionName, actions } from "../ipc/mod.ts";
import { UserError } from "../lib/errors.ts";
import { type Command, type Parsed, UsageError } from "./command.ts";

/** One wrong word: how the command spells it, the value given, the IPC field, the reason. */
export interface WordIssue {
  /** The argument (`NAME`), flag (`--gateway`) or value key (`port=`) as the command spells it. */
  word: string;
  /** The value given, as typed (absent when it was not given). */
  value?: string;
  /** The IPC parameter it went into, e.g. `name` or `values.port`. */
  field: string;
  /** Why it was refused (the schema's message). */
  reason: string;
  /** The whole sentence, e.g. `"Web_1" is not a valid instance name (NAME): …`. */
  message: string;
}

/** Parameters refused by the action's schema, told by the command's words (exit 1, code invalid). */
export class WordError extends UserError {
  /** Each wrong word. */
  readonly issues: WordIssue[];

  constructor(message: string, issues: WordIssue[]) {
    super(message, { code: "invalid" });
    this.name = "WordError";
    this.issues = issues;
  }
}

/** A built action. */
export interface Request {
  action: ActionName;
  params: unknown;
}

/**
 * Builds a command's action from its parsed words and checks the parameters against the action's
 * schema; a UsageError (from the command) or a WordError (from the schema) when a word is wrong.
 */
export function buildChecked(c: Command, p: Parsed): Request {
  const request = c.build(p);
  checkParams(c, p, request);
  return request;
}

/** Checks built parameters against the action's schema; a WordError naming the wrong words. */
export function checkParams(c: Command, p: Parsed, request: Request): void {
  const spec = actions[request.action];
  if (!spec) return; // an action this front-end does not know: kattach answers for it
  const r = spec.params.safeParse(request.params ?? {});
  if (r.success) return;
  const issues = r.error.issues.map((i) => wordIssue(c, p, request.params, i));
  throw new WordError(issues.map((i) => i.message).join("; "), issues);
}

/**
 * What is wrong with one answer of the menus, in the words of the one-line command, or undefined:
 * the problems the words answered so far have (`with`) that they do not have without this answer
 * (`without`: the same answers, this one left out). Words not asked yet are missing in both, and
 * a parameter without a value is never this answer's problem, so theirs never count against it.
 * A command's own UsageError counts only when it names the answer (`mentions`: its value or its
 * word, e.g. `--pool`): with this answer the build may get further and stop at a later word.
 */
export function answerProblem(
  c: Command,
  answer: { withIt: Parsed; without: Parsed; mentions: string[] },
): string | undefined {
  const now = problems(c, answer.withIt);
  if (now.length === 0) return undefined;
  const before = new Set(problems(c, answer.without).map((x) => x.key));
  const named = (text: string) => answer.mentions.some((m) => m !== "" && mentionsWord(text, m));
  const own = now.filter((x) => !before.has(x.key) && (!x.usage || named(x.text)));
  return own.length > 0 ? own.map((x) => x.text).join("; ") : undefined;
}

/** True when `text` holds `word` whole (`5` is not in `256`, `ID` is not in `VIDEO`). */
function mentionsWord(text: string, word: string): boolean {
  for (let at = text.indexOf(word); at !== -1; at = text.indexOf(word, at + 1)) {
    const before = text[at - 1] ?? " ";
    const after = text[at + word.length] ?? " ";
    if (!/[\w.-]/.test(before) && !/[\w.-]/.test(after)) return true;
  }
  return false;
}

/** The problems of a command's words: UsageErrors of its build, issues of its parameters. */
function problems(c: Command, p: Parsed): { key: string; text: string; usage?: true }[] {
  let request: Request;
  try {
    request = c.build(p);
  } catch (err) {
    if (err instanceof UsageError) {
      return [{ key: `usage ${err.message}`, text: err.message, usage: true }];
    }
    return []; // e.g. a word not asked yet that the build reads: nothing to tell about this one
  }
  try {
    checkParams(c, p, request);
    return [];
  } catch (err) {
    if (!(err instanceof WordError)) throw err;
    // A parameter with no value comes from a word not asked yet: that word's problem, later.
    return err.issues.filter((i) => i.value !== undefined).map((i) => ({
      key: `${i.field} ${i.value ?? ""} ${i.reason}`,
      text: i.message,
    }));
  }
}

/** One issue as a sentence: `"Web_1" is not a valid instance name (NAME): names are …`. */
function sentence(what: string, value: string | undefined, reason: string): string {
  return value === undefined
    ? `${what}: ${reason}`
    : `${JSON.stringify(value)} is not a valid ${what}: ${reason}`;
}

/** What objects the first word of a command, or an argument's name, stands for. */
const NOUNS: Record<string, string> = {
  vlan: "VLAN",
  instance: "instance",
  vmimage: "VM image",
  "config-group": "configuration group",
  module: "module",
  appqueue: "AppQueue",
  qmp: "instance",
  storage: "storage",
  firewall: "firewall rule",
};

/** How a positional argument is called in a message: `instance name (NAME)`, `VLAN (VLAN)`. */
function argWhat(c: Command, name: string): string {
  const own = NOUNS[name.toLowerCase()];
  if (own) return `${own} (${name})`;
  const noun = NOUNS[c.path[0]];
  if (noun && (name === "NAME" || name === "ID")) return `${noun} ${name.toLowerCase()} (${name})`;
  return name;
}

/** How a flag's value is called in a message: `VLAN name` (--name), `IP` (--gateway). */
function flagWhat(c: Command, name: string, value: string | undefined): string {
  const own = NOUNS[name];
  if (own) return own;
  const noun = NOUNS[c.path[0]];
  if (noun && name === "name") return `${noun} name`;
  return value && /^[A-Z]{2,}$/.test(value) && value !== "NAME" ? value : name;
}

interface Candidate {
  word: string;
  what: string;
  value: string;
  /** The parameter names this word plausibly fills (its own name, lower case). */
  names: string[];
}

/** Every word the operator gave: arguments, flags with values, `KEY=VALUE` words. */
function candidates(c: Command, p: Parsed): Candidate[] {
  const out: Candidate[] = [];
  for (const a of c.args) {
    const v = p.args[a.name];
    if (a.rest || v === undefined) continue;
    out.push({ word: a.name, what: argWhat(c, a.name), value: v, names: [a.name.toLowerCase()] });
  }
  for (const f of c.flags) {
    const v = p.flags[f.name];
    if (typeof v !== "string") continue;
    out.push({
      word: `--${f.name}`,
      what: `${flagWhat(c, f.name, f.value)} (--${f.name})`,
      value: v,
      names: [f.name.toLowerCase().replace(/-/g, "")],
    });
  }
  for (const w of p.rest) {
    const eq = w.indexOf("=");
    const key = eq === -1 ? w : w.slice(0, eq);
    out.push({
      word: eq === -1 ? w : `${key}=`,
      what: eq === -1 ? w : `value of ${key}`,
      value: eq === -1 ? w : w.slice(eq + 1),
      names: [key.toLowerCase()],
    });
  }
  return out;
}

function valueAt(params: unknown, path: readonly PropertyKey[]): unknown {
  let v = params;
  for (const k of path) {
    if (v === null || typeof v !== "object") return undefined;
    v = (v as Record<PropertyKey, unknown>)[k];
  }
  return v;
}

/**
 * The word an issue is about: one whose value is the parameter's (best when its name is the
 * field's too), else one whose value holds it as a piece (`--pool A-B` gives `poolStart`), else
 * one named like the field. The field itself when no word fits (a parameter the command set).
 */
function wordIssue(
  c: Command,
  p: Parsed,
  params: unknown,
  issue: BoundIssue,
): WordIssue {
  const field = issue.path.map(String).join(".");
  const v = valueAt(params, issue.path);
  const given = typeof v === "string" || typeof v === "number" || typeof v === "boolean"
    ? String(v)
    : undefined;
  const names = issue.path.filter((k) => typeof k === "string").map((k) =>
    (k as string).toLowerCase()
  );
  // `--vlan 1,2` fills `vlans`: a list's field is the word's name in the plural.
  const named = (x: Candidate) => x.names.some((n) => names.includes(n) || names.includes(`${n}s`));
  const all = candidates(c, p);
  const exact = given === undefined ? [] : all.filter((x) => x.value === given);
  const piece = given === undefined
    ? []
    : all.filter((x) => x.value.split(/[-,@=\s]/).includes(given));
  const found = exact.find(named) ?? exact[0] ?? piece.find(named) ?? piece[0] ??
    all.find(named);
  const reason = plainReason(issue);
  if (!found) {
    return { word: field, value: given, field, reason, message: sentence(field, given, reason) };
  }
  const value = given ?? found.value;
  return { word: found.word, value, field, reason, message: sentence(found.what, value, reason) };
}

/** A zod issue, with what a size bound's issue (`too_big`, `too_small`) adds. */
interface BoundIssue {
  path: readonly PropertyKey[];
  message: string;
  code?: string;
  origin?: string;
  maximum?: unknown;
  minimum?: unknown;
  inclusive?: boolean;
}

/**
 * An issue's reason: the schema's own words, or in plain words where zod used its default for a
 * bound (`Too big: expected string to have <=64 characters` -> `it is longer than 64 characters`).
 */
function plainReason(issue: BoundIssue): string {
  const big = issue.code === "too_big";
  if ((!big && issue.code !== "too_small") || !/^Too (big|small): /.test(issue.message)) {
    return issue.message;
  }
  const bound = Number(big ? issue.maximum : issue.minimum);
  const unit = ({ string: "characters", array: "items" } as Record<string, string>)[
    issue.origin ?? ""
  ];
  if (unit === undefined) {
    const at = issue.inclusive === false
      ? (big ? "below" : "above")
      : `${big ? "at most" : "at least"}`;
    return `it must be ${at} ${bound}`;
  }
  if (issue.inclusive === false) {
    return `it must have ${big ? "fewer" : "more"} than ${bound} ${unit}`;
  }
  return `it must have ${big ? "at most" : "at least"} ${bound} ${unit}`;
}

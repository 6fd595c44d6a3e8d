/**
 * The interactive menus of the AppQueue CLI, on an SSH pty or the console. Menus are data built
 * from the one-line command registry: commands are grouped into pages by their first word, each
 * command's arguments and flags become prompts (cli/prompts.ts), and running an item shows its
 * one-line equivalent and then runs exactly that line, so the menu and `aq` can never disagree.
 * Commands added to the registry later appear on their page (or under "More") by themselves.
 */
import { confirm, password, select } from "@inquirer/prompts";
import type { IpcClient, ModuleCommandInfo } from "../ipc/mod.ts";
import { type Command, commands as registry } from "./commands.ts";
import { moduleCommand } from "./commands_appqueue.ts";
import { PASSWORD_PATH } from "./commands_auth.ts";
import { DEBUG_FLOWS, type MenuFlow } from "./menu_debug.ts";
import { STORAGE_FLOWS } from "./menu_storage.ts";
import { type OneLineIo, runOneLine } from "./oneline.ts";
import { Pager } from "./pager.ts";
import { type Caller, callerOf, promptCommand } from "./prompts.ts";
import { quoteWord } from "./render.ts";
import { terminalStdio } from "./stdio.ts";
import { type Terminal, toldIfRefused } from "./terminal.ts";

/** Where a page's commands come from: the first words of their paths. */
export interface PageSpec {
  title: string;
  groups: string[];
  /** Also lists the commands installed modules declare (climod.aq), fetched when opened. */
  moduleCommands?: boolean;
}

/** The top-level pages, in order (STYLE rule 9: a registry, not a switch). */
export const PAGES: PageSpec[] = [
  { title: "System", groups: ["system"] },
  { title: "Networking", groups: ["vlan", "pool", "firewall", "net", "network", "nat"] },
  { title: "AppQueues", groups: ["appqueue"] },
  { title: "App Modules", groups: ["module"], moduleCommands: true },
  { title: "Configuration Groups", groups: ["config-group"] },
  { title: "VM Images", groups: ["vmimage"] },
  { title: "Instances", groups: ["deploy", "instance"] },
  { title: "Storage", groups: ["storage"] },
  { title: "Debug", groups: ["qmp", "debug", "event", "events"] },
];

/** Menu items with flows of their own, by command path (see cli/menu_debug.ts). */
const MENU_FLOWS: Record<string, MenuFlow> = { ...DEBUG_FLOWS, ...STORAGE_FLOWS };

/** One entry of a menu page. */
export type MenuItem =
  | { kind: "command"; label: string; command: Command }
  | { kind: "page"; label: string; page: MenuPage };

/** A menu page: a title and its entries. */
export interface MenuPage {
  title: string;
  items: MenuItem[];
  /** See PageSpec.moduleCommands. */
  moduleCommands?: boolean;
}

/** The label of a command: its one-line path and summary. */
function commandLabel(c: Command): string {
  return `${c.path.join(" ").padEnd(22)} ${c.summary}`;
}

/** Builds one page: commands with a path longer than `depth + 1` words get a sub-page. */
function buildPage(title: string, cs: Command[], depth: number): MenuPage {
  const items: MenuItem[] = [];
  const sub = new Map<string, Command[]>();
  for (const c of cs) {
    if (c.path.length > depth + 1) {
      const key = c.path.slice(0, depth + 1).join(" ");
      if (!sub.has(key)) {
        sub.set(key, []);
        items.push({ kind: "page", label: key, page: { title: "", items: [] } });
      }
      sub.get(key)!.push(c);
    } else {
      items.push({ kind: "command", label: commandLabel(c), command: c });
    }
  }
  return {
    title,
    items: items.map((item): MenuItem => {
      if (item.kind !== "page") return item;
      const group = sub.get(item.label)!;
      if (group.length === 1) {
        return { kind: "command", label: commandLabel(group[0]), command: group[0] };
      }
      const word = item.label.split(" ").pop()!;
      return {
        kind: "page",
        label: `${item.label} ›`,
        page: buildPage(`${title} › ${word}`, group, depth + 1),
      };
    }),
  };
}

/** Builds the whole menu tree from a command registry (pure; the default is the real registry). */
export function buildMenu(commands: Command[] = registry, pages: PageSpec[] = PAGES): MenuPage {
  const claimed = new Set(pages.flatMap((p) => p.groups));
  const root: MenuPage = { title: "KaOS", items: [] };
  const specs = [...pages];
  const others = commands.filter((c) => !claimed.has(c.path[0]));
  if (others.length > 0) {
    specs.push({ title: "More", groups: [...new Set(others.map((c) => c.path[0]))] });
  }
  for (const spec of specs) {
    const cs = commands.filter((c) => spec.groups.includes(c.path[0]));
    if (cs.length === 0 && !spec.moduleCommands) continue;
    const present = new Set(cs.map((c) => c.path[0]));
    const depth = present.size === 1 && cs.every((c) => c.path.length > 1) ? 1 : 0;
    const page = buildPage(spec.title, cs, depth);
    page.moduleCommands = spec.moduleCommands;
    root.items.push({ kind: "page", label: spec.title, page });
  }
  return root;
}

/** The one-line equivalent of a command and its words, as a shell would take it. */
export function oneLineText(words: string[]): string {
  return words.map(quoteWord).join(" ");
}

/** How to run the menus. */
export interface MenuOptions {
  connect(): Promise<IpcClient>;
  /** The logged-in user (for `system password`); default "aqcli". */
  user?: string;
  /** The menu tree; default buildMenu(). */
  menu?: MenuPage;
}

/** True for the error a prompt throws on Ctrl+C. */
function isCtrlC(err: unknown): boolean {
  return err instanceof Error && err.name === "ExitPromptError";
}

/** True for the errors a prompt throws when the terminal goes away. */
function isGone(err: unknown): boolean {
  return err instanceof Error &&
    (err.name === "AbortPromptError" || err.name === "CancelPromptError");
}

const BACK = -1;
const LEAVE = -2;

/**
 * Runs the menus on `terminal` until the operator logs out or the terminal closes. Ctrl+C goes
 * back one level (at the top it only redraws); errors are shown with their hint and the menu goes
 * on; bugs show one generic line.
 */
export async function runMenus(terminal: Terminal, options: MenuOptions): Promise<void> {
  const menu = options.menu ?? buildMenu();
  const call = callerOf(options.connect);
  const ctx: RunContext = { terminal, call, options, user: options.user ?? "aqcli" };
  await banner(ctx);
  await runPage(ctx, menu, true);
  terminal.write("Bye.\n");
}

interface RunContext {
  terminal: Terminal;
  call: Caller;
  options: MenuOptions;
  user: string;
}

async function banner(ctx: RunContext): Promise<void> {
  try {
    const s = await ctx.call("system.status", {});
    ctx.terminal.write(
      `KaOS ${s.version} on ${s.hostname} (${s.mode}, ${s.accel.kind.toUpperCase()}) — ` +
        `AppQueue CLI. Arrows and Enter choose; Ctrl+C goes back.\n`,
    );
    // Why an ssh client warns: said at the login too, not only under `system status`.
    if (s.sshHostKey?.notice) ctx.terminal.write(`Warning: ${s.sshHostKey.notice}\n`);
  } catch (err) {
    ctx.terminal.write(`KaOS AppQueue CLI (kattach not reachable: ${(err as Error).message})\n`);
  }
}

/** Module commands as one-line commands (empty when kattach cannot list them). */
async function moduleItems(ctx: RunContext): Promise<MenuItem[]> {
  let list: ModuleCommandInfo[];
  try {
    list = await ctx.call("module.commands", {});
  } catch {
    return [];
  }
  return list.map((c) => {
    const command = moduleCommand(c);
    return { kind: "command", label: commandLabel(command), command };
  });
}

/** Shows one page until Back (or Ctrl+C); returns LEAVE when the operator logs out. */
async function runPage(ctx: RunContext, page: MenuPage, top: boolean): Promise<number> {
  const t = ctx.terminal;
  let last: number | undefined;
  while (!t.closed) {
    const items = page.moduleCommands ? [...page.items, ...await moduleItems(ctx)] : page.items;
    const choices = [
      ...items.map((item, i) => ({ value: i, name: item.label })),
      top ? { value: LEAVE, name: "Log out" } : { value: BACK, name: "← Back" },
    ];
    let picked: number;
    try {
      picked = await t.prompt((c) =>
        select({
          message: page.title,
          choices,
          default: last,
          pageSize: Math.max(5, Math.min(choices.length, t.rows - 4)),
          loop: false,
        }, c)
      );
    } catch (err) {
      if (!isCtrlC(err)) throw err;
      if (top) {
        t.write("(choose Log out to leave)\n");
        continue;
      }
      return BACK;
    }
    if (picked === LEAVE) return LEAVE;
    if (picked === BACK) return BACK;
    last = picked;
    const item = items[picked];
    if (item.kind === "page") {
      if (await runPage(ctx, item.page, false) === LEAVE) return LEAVE;
      continue;
    }
    await runItem(ctx, item.command);
  }
  return LEAVE;
}

/** Prompts for a command's words, shows the one-line equivalent, confirms and runs it. */
async function runItem(ctx: RunContext, command: Command): Promise<void> {
  const t = ctx.terminal;
  try {
    if (command.path.join(" ") === PASSWORD_PATH.join(" ")) {
      await changePassword(ctx);
      return;
    }
    const flow = MENU_FLOWS[command.path.join(" ")];
    if (flow) {
      await flow({ terminal: t, call: ctx.call, run: (words) => runWords(ctx, words) });
      return;
    }
    const words = [...command.path, ...await promptCommand(ctx, command)];
    if (command.pageable && !words.some((w) => /^--(limit|offset)(=|$)/.test(w))) {
      await runPages(ctx, words);
      return;
    }
    t.write(`= ${oneLineText(words)}\n`);
    if (command.destructive) {
      const sure = await t.prompt((c) =>
        confirm({
          message: `Really ${command.path.join(" ")}? This cannot be undone`,
          default: false,
        }, c)
      );
      if (!sure) {
        t.write("Cancelled.\n");
        return;
      }
    }
    await runPaged(ctx, words);
  } catch (err) {
    if (isCtrlC(err)) {
      t.write("Cancelled.\n");
      return;
    }
    if (isGone(err) || t.closed) throw err;
    report(t, err);
  }
}

/** Where a one-line command run from the menus writes: the menu's terminal (output paged). */
function lineIo(ctx: RunContext, out: (text: string) => void): OneLineIo {
  const t = ctx.terminal;
  return {
    get stdio() {
      return terminalStdio(t); // only opened when an interactive command asks for it
    },
    out,
    err: (text) => t.write(text),
    connect: ctx.options.connect,
  };
}

/**
 * Runs a one-line command on the menu's terminal; output longer than a screen is shown a page
 * at a time (`instance list` of thousands of instances), each page after a "more?" question.
 */
async function runPaged(ctx: RunContext, words: string[]): Promise<number> {
  const t = ctx.terminal;
  const pager = new Pager((text) => t.write(text), Math.max(5, t.rows - 2));
  const code = await runOneLine(words, lineIo(ctx, (text) => pager.write(text)));
  await pager.finish((shown, total) =>
    t.prompt((c) =>
      confirm({ message: `Lines 1-${shown} of ${total} shown. More?`, default: true }, c)
    )
  );
  return code;
}

/**
 * Runs a pageable list (`instance list`, `vlan list`) a screenful at a time through IPC: each
 * page is its own one-line command with `--limit` and `--offset` (shown before it), and the next
 * is fetched only when the operator asks for more, so 10,000 instances are never fetched at once.
 */
async function runPages(ctx: RunContext, words: string[]): Promise<void> {
  const t = ctx.terminal;
  const size = Math.max(5, t.rows - 4); // room for the one-line, the header and the question
  // What the operator chose, once: the page size and offset are the menu's own doing.
  t.write(`= ${oneLineText(words)}\n`);
  for (let offset = 0;; offset += size) {
    const page = [...words, `--limit=${size}`, `--offset=${offset}`];
    let lines = 0;
    const code = await runOneLine(
      page,
      lineIo(ctx, (text) => {
        for (let i = text.indexOf("\n"); i !== -1; i = text.indexOf("\n", i + 1)) lines++;
        t.write(text);
      }),
    );
    // A full page is its header and `size` rows; anything less was the end (or an error).
    if (code !== 0 || lines <= size) return;
    const more = await t.prompt((c) =>
      confirm({ message: `Entries ${offset + 1}-${offset + size} shown. More?`, default: true }, c)
    );
    if (!more) return;
  }
}

/** Shows the one-line equivalent of a menu flow's answers and runs it. */
function runWords(ctx: RunContext, words: string[]): Promise<number> {
  ctx.terminal.write(`= ${oneLineText(words)}\n`);
  return runPaged(ctx, words);
}

/** Shows an error: a UserError's message and hint, anything else as one generic line. */
function report(t: Terminal, err: unknown): void {
  const e = err as { message?: string; hint?: string; name?: string };
  if (err instanceof Error && "hint" in err) {
    t.write(`Error: ${e.message}\n${e.hint ? `Hint: ${e.hint}\n` : ""}`);
  } else {
    t.write(`Error: ${err instanceof Error ? err.message : String(err)}\n`);
  }
}

/**
 * `system password`: asks the current password and a new one twice. The new one is checked right
 * after its first entry (kattach's dry run: the current password, the policy) and asked again with
 * the reason, up to three times; a wrong current password ends the flow.
 */
async function changePassword(ctx: RunContext): Promise<void> {
  const t = ctx.terminal;
  t.write(`= ${PASSWORD_PATH.join(" ")}   (interactive only)\n`);
  const ask = (message: string) => t.prompt((c) => password({ message, mask: "*" }, c));
  const oldPassword = await ask("Current password");
  let newPassword: string | undefined;
  for (let tries = 0; tries < 3 && newPassword === undefined; tries++) {
    const typed = await ask("New password");
    const check = { user: ctx.user, oldPassword, newPassword: typed, dryRun: true };
    // A refused new password is told and asked again; a wrong current one ends the flow.
    const told = (err: { code: string }) => err.code === "invalid";
    if (await toldIfRefused(t, () => ctx.call("auth.change", check), told)) newPassword = typed;
  }
  if (newPassword === undefined) {
    t.write("Nothing was changed.\n");
    return;
  }
  const again = await ask("Retype new password");
  if (newPassword !== again) {
    t.write("The passwords do not match; nothing was changed.\n");
    return;
  }
  await ctx.call("auth.change", { user: ctx.user, oldPassword, newPassword });
  t.write("Password changed.\n");
}

/**
 * The Debug page's own flows: `qmp` picks a running instance, then a QMP command from the list
 * its QEMU answers to `query-commands` (type to search), then optional JSON arguments (checked
 * before anything is sent), and shows the reply; `qmp events` watches an instance's QMP events
 * for some seconds. Each runs the one-line command it shows, like every other menu item.
 */
import { input, search } from "@inquirer/prompts";
import { type InstanceState, MAX_EVENT_WATCH_SECONDS } from "../ipc/mod.ts";
import { qmpArgs } from "./commands_guests.ts";
import { type Caller, type ObjectSource, pickObject, pickPageSize } from "./prompts.ts";
import type { Terminal } from "./terminal.ts";

/** What a menu flow may use: the terminal, kattach, and a way to run (and show) one line. */
export interface FlowContext {
  terminal: Terminal;
  call: Caller;
  /** Shows `= WORDS` and runs them as one one-line command; returns its exit status. */
  run(words: string[]): Promise<number>;
}

/** A menu item that asks its own questions instead of one prompt per argument. */
export type MenuFlow = (ctx: FlowContext) => Promise<void>;

/** Instance states in which a QEMU runs and answers QMP. */
const LIVE: InstanceState[] = ["running", "paused", "starting", "stopping"];

/** The instances whose QEMU runs, a screenful at a time (kattach selects them by state). */
const RUNNING: ObjectSource = {
  noun: "running instance",
  list: async (call, w) =>
    (await call("instance.list", { ...w, state: LIVE })).map((i) => ({
      value: i.name,
      label: `${i.name}  ${i.state}  ${i.vmimage}`,
    })),
};

/**
 * Asks for one running instance from a pick list (cli/prompts.ts: a screenful per request, with
 * a name filter, among 10,000 defined instances); undefined (after saying so) when none runs.
 */
export async function pickRunningInstance(ctx: FlowContext): Promise<string | undefined> {
  const first = await RUNNING.list(ctx.call, {
    limit: pickPageSize(ctx.terminal) + 1,
    offset: 0,
  });
  if (first.length === 0) {
    ctx.terminal.write("No instance is running (start one with `instance start NAME`).\n");
    return undefined;
  }
  const picked = await pickObject(ctx, RUNNING, {
    message: "Running instance",
    typeName: "NAME",
    first,
  });
  return "value" in picked ? picked.value : undefined;
}

/** The error text for JSON-ARGS, or true when they are fine (empty means none). */
export function checkJsonArgs(text: string): true | string {
  if (text.trim() === "") return true;
  try {
    qmpArgs(text.trim());
    return true;
  } catch (err) {
    return (err as Error).message;
  }
}

/** `qmp`: instance, command (searchable), JSON arguments; shows the reply. */
async function qmpFlow(ctx: FlowContext): Promise<void> {
  const t = ctx.terminal;
  const name = await pickRunningInstance(ctx);
  if (name === undefined) return;
  const { commands } = await ctx.call("qmp.commands", { name });
  const command = await t.prompt((c) =>
    search<string>({
      message: `QMP command of ${name} (type to filter)`,
      source: (term) => {
        const words = (term ?? "").toLowerCase().split(/\s+/).filter((w) => w !== "");
        return commands
          .filter((cmd) => words.every((w) => cmd.toLowerCase().includes(w)))
          .map((cmd) => ({ value: cmd, name: cmd }));
      },
      pageSize: Math.max(5, Math.min(15, t.rows - 6)),
    }, c)
  );
  const args = (await t.prompt((c) =>
    input({
      message: `Arguments of ${command} as a JSON object (empty: none)`,
      validate: checkJsonArgs,
    }, c)
  )).trim();
  await ctx.run(["qmp", name, command, ...(args === "" ? [] : [args])]);
}

/** `qmp events`: instance and seconds; the events are printed as they come. */
async function eventsFlow(ctx: FlowContext): Promise<void> {
  const name = await pickRunningInstance(ctx);
  if (name === undefined) return;
  const seconds = (await ctx.terminal.prompt((c) =>
    input({
      message: `Watch for how many seconds (1-${MAX_EVENT_WATCH_SECONDS})`,
      default: "10",
      validate: (v: string) => {
        const n = Number(v.trim());
        return (/^\d+$/.test(v.trim()) && n >= 1 && n <= MAX_EVENT_WATCH_SECONDS) ||
          `a whole number from 1 to ${MAX_EVENT_WATCH_SECONDS}`;
      },
    }, c)
  )).trim();
  await ctx.run(["qmp", "events", name, `--seconds=${seconds}`]);
}

/** Menu flows by command path (STYLE rule 9: a registry, not a switch). */
export const DEBUG_FLOWS: Record<string, MenuFlow> = {
  "qmp": qmpFlow,
  "qmp events": eventsFlow,
};

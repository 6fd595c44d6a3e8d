/**
 * Menu flows of guest storage and the log: `storage init` picks a free disk from `storage list`,
 * asks an optional name and confirms that the disk is erased before it runs the one-line command
 * with `--yes`; `system log` shows the last lines (following belongs to the one-line mode, where
 * Ctrl+C or leaving ends it).
 */
import { confirm, input, select } from "@inquirer/prompts";
import { humanBytes } from "./commands_storage.ts";
import type { FlowContext, MenuFlow } from "./menu_debug.ts";

/** `storage init`: disk, name, confirmation. */
async function storageInitFlow(ctx: FlowContext): Promise<void> {
  const t = ctx.terminal;
  const list = await ctx.call("storage.list", {});
  const free = list.disks.filter((d) => d.candidate);
  if (free.length === 0) {
    t.write(
      "No free disk: every disk is in use or none was found (see `storage list`).\n",
    );
    return;
  }
  const disk = await t.prompt((c) =>
    select({
      message: "Disk to make guest storage (everything on it is erased)",
      choices: free.map((d) => ({
        value: d.device,
        name: `${d.device}  ${d.model}  ${humanBytes(d.sizeBytes)}  ${d.label || "-"}`,
      })),
    }, c)
  );
  const name = (await t.prompt((c) =>
    input({
      message: "Storage name (optional; default: the disk's)",
      validate: (v) =>
        v.trim() === "" || /^[a-z][a-z0-9-]{0,10}$/.test(v.trim()) ||
        "1-11 lower-case letters, digits or '-', starting with a letter",
    }, c)
  )).trim();
  const sure = await t.prompt((c) =>
    confirm({ message: `Erase everything on ${disk}? This cannot be undone`, default: false }, c)
  );
  if (!sure) {
    t.write("Cancelled.\n");
    return;
  }
  await ctx.run(["storage", "init", disk, ...(name ? ["--name", name] : []), "--yes"]);
}

/** `system log`: how many lines, then shows them. */
async function systemLogFlow(ctx: FlowContext): Promise<void> {
  const lines = (await ctx.terminal.prompt((c) =>
    input({
      message: "How many of the last lines",
      default: "50",
      validate: (v) => /^\d{1,4}$/.test(v.trim()) || "a number from 0 to 9999",
    }, c)
  )).trim();
  await ctx.run(["system", "log", "--lines", lines]);
}

/** The storage and log flows, by command path. */
export const STORAGE_FLOWS: Record<string, MenuFlow> = {
  "storage init": storageInitFlow,
  "system log": systemLogFlow,
};

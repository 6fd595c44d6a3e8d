/**
 * The console front-end: the same login and menus as over SSH, on the local terminal (the
 * appliance's /dev/console, where kattach starts and respawns it, or a developer's terminal with
 * `main.ts console --state DIR` in hosted mode).
 */
import type { IpcClient } from "../ipc/mod.ts";
import { runConsoleSession } from "./session.ts";
import { Terminal } from "./terminal.ts";

/**
 * Runs one console session on the local tty; resolves when the operator logs out or presses
 * Ctrl+C (kattach then starts the next one: a fresh login prompt). `tty` names the terminal in
 * the banner (tty1, ttyS0).
 */
export async function runConsole(
  options: { connect(): Promise<IpcClient>; tty?: string },
): Promise<void> {
  const terminal = Terminal.fromLocalTty();
  try {
    await runConsoleSession(terminal, options);
  } catch (err) {
    if (!(err instanceof Error && /Prompt/.test(err.name))) throw err;
  } finally {
    terminal.close();
  }
}

/**
 * Console sessions: the aqcli login (forcing the change of the release's default password, like
 * the SSH server does) and then the menus. Talks to kattach only over IPC. Kept free of ssh2 (its
 * types pull in @types/node@18, which lacks node:sqlite), so main.ts can import it.
 */
import { password as passwordPrompt } from "@inquirer/prompts";
import type { IpcClient } from "../ipc/mod.ts";
import { runMenus } from "./menus.ts";
import { type Terminal, toldIfRefused } from "./terminal.ts";

/** The only operator account (the same as the SSH server's). */
export const CLI_USER = "aqcli";

/** The SSH port of the appliance. */
export const CLI_SSH_PORT = 1289;

/** How a session reaches kattach. */
export interface SessionOptions {
  connect(): Promise<IpcClient>;
}

async function call<T>(options: SessionOptions, fn: (c: IpcClient) => Promise<T>): Promise<T> {
  const client = await options.connect();
  try {
    return await fn(client);
  } finally {
    client.close();
  }
}

/**
 * Logs in on a terminal (the console): asks the aqcli password, forces the change of the
 * default one, then returns. Wrong passwords are slowed down; false after three failures.
 */
export async function consoleLogin(terminal: Terminal, options: SessionOptions): Promise<boolean> {
  const ask = (message: string) =>
    terminal.prompt((ctx) => passwordPrompt({ message, mask: "*" }, ctx));
  for (let attempt = 1; attempt <= 3; attempt++) {
    const pw = await ask(`Password for ${CLI_USER}`);
    const { verdict } = await call(
      options,
      (c) => c.call("auth.check", { user: CLI_USER, password: pw.slice(0, 1024) }),
    );
    if (verdict === "denied") {
      await new Promise((r) => setTimeout(r, 1000 * attempt));
      terminal.write("Login incorrect.\n");
      continue;
    }
    if (verdict === "ok") return true;
    terminal.write("The default password must be changed before you continue.\n");
    for (let tries = 0; tries < 3; tries++) {
      const first = await ask("New password");
      // The policy's answer now, not after the retype (a too short password typed twice).
      const check = { user: CLI_USER, newPassword: first, dryRun: true };
      if (
        !await toldIfRefused(terminal, () => call(options, (c) => c.call("auth.change", check)))
      ) {
        continue;
      }
      const second = await ask("Retype new password");
      if (first !== second) {
        terminal.write("The passwords do not match; try again.\n");
        continue;
      }
      const change = { user: CLI_USER, newPassword: first };
      if (
        await toldIfRefused(terminal, () => call(options, (c) => c.call("auth.change", change)))
      ) {
        terminal.write("Password changed.\n");
        return true;
      }
    }
    return false;
  }
  return false;
}

/** The console session: login, then the menus, until logout. */
export async function runConsoleSession(
  terminal: Terminal,
  options: SessionOptions,
): Promise<void> {
  terminal.write(
    `KaOS console — log in as ${CLI_USER} (over the network: ssh -p ${CLI_SSH_PORT} ${CLI_USER}@HOST)\n`,
  );
  if (!(await consoleLogin(terminal, options))) return;
  await runMenus(terminal, { connect: options.connect, user: CLI_USER });
}

/**
 * One-line commands of operator access and power: `system ssh-key add|list|del`,
 * `system password` (interactive only: a password never travels on a command line),
 * `system shutdown` and `system reboot`.
 */
import type { PowerResult, SshKeyInfo } from "../ipc/mod.ts";
import type { Command } from "./command.ts";
import { cmd, UsageError } from "./command.ts";
import { fields, table } from "./render.ts";

function renderKey(k: SshKeyInfo): string {
  return fields([
    ["Fingerprint", k.fingerprint],
    ["Type", k.type],
    ["Comment", k.comment || "-"],
    ["Added", k.addedAt],
  ]);
}

/** The path of the interactive-only password command (the menus run it with prompts). */
export const PASSWORD_PATH = ["system", "password"];

/** The access and power one-line commands. */
export const authCommands: Command[] = [
  cmd({
    path: PASSWORD_PATH,
    summary: "Change the aqcli password (interactive: from the menu)",
    args: [],
    flags: [],
    noJson: true,
    build() {
      throw new UsageError(
        "system password is interactive: passwords are never given on a command line; " +
          "log in with `ssh -p 1289 aqcli@HOST` and choose System → password",
      );
    },
    render: () => "Password changed.\n",
  }),
  cmd({
    path: ["system", "ssh-key", "add"],
    summary: "Authorize an SSH public key for aqcli (one line of a .pub file)",
    args: [{ name: "KEY", rest: true }],
    flags: [],
    build: (p) => ({ action: "auth.keys.add", params: { key: p.rest.join(" ") } }),
    render: (r) => "Authorized SSH key.\n" + renderKey(r as SshKeyInfo),
  }),
  cmd({
    path: ["system", "ssh-key", "list"],
    summary: "List the SSH keys authorized for aqcli",
    args: [],
    flags: [],
    build: () => ({ action: "auth.keys.list", params: {} }),
    render: (r) =>
      table(
        ["FINGERPRINT", "TYPE", "COMMENT", "ADDED"],
        (r as SshKeyInfo[]).map((k) => [k.fingerprint, k.type, k.comment || "-", k.addedAt]),
      ),
  }),
  cmd({
    path: ["system", "ssh-key", "del"],
    summary: "Remove an authorized SSH key (by fingerprint or comment)",
    args: [{ name: "SSH-KEY" }],
    flags: [],
    destructive: true,
    build: (p) => ({ action: "auth.keys.del", params: { key: p.args["SSH-KEY"]! } }),
    render: (r) => `Deleted ${(r as { deleted: string }).deleted}.\n`,
  }),
  cmd({
    path: ["system", "shutdown"],
    summary: "Power the appliance off (appliance only)",
    args: [],
    flags: [],
    destructive: true,
    build: () => ({ action: "system.shutdown", params: {} }),
    render: (r) => `${(r as PowerResult).message}\n`,
  }),
  cmd({
    path: ["system", "reboot"],
    summary: "Reboot the appliance (appliance only)",
    args: [],
    flags: [],
    destructive: true,
    build: () => ({ action: "system.reboot", params: {} }),
    render: (r) => `${(r as PowerResult).message}\n`,
  }),
];

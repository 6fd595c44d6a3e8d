/**
 * The one-line grammar's registry, assembled here and only here from the per-area command
 * modules (which build on cli/command.ts and never import this file): each command a path of
 * words, its arguments and flags, the action it sends to kattach and how its result is shown.
 * aq, SSH exec and the menus all use these same commands (a menu action shows its one-line
 * equivalent).
 */
import type { Command } from "./command.ts";
import { appqueueCommands } from "./commands_appqueue.ts";
import { authCommands } from "./commands_auth.ts";
import { coreCommands } from "./commands_core.ts";
import { firewallCommands } from "./commands_firewall.ts";
import { guestCommands } from "./commands_guests.ts";
import { networkCommands } from "./commands_network.ts";
import { storageCommands } from "./commands_storage.ts";

export {
  type ArgSpec,
  type Command,
  type FlagSpec,
  hasJson,
  intArg,
  type Parsed,
  usage,
  UsageError,
} from "./command.ts";

/** Every command, in the order help and menus show them. */
export const commands: Command[] = [
  ...coreCommands,
  ...appqueueCommands,
  ...guestCommands,
  ...authCommands,
  ...networkCommands,
  ...firewallCommands,
  ...storageCommands,
];

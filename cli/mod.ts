/** The AppQueue CLI front-ends: the one-line grammar (aq, SSH exec), the menus, SSH and console. */
export { type Command, commands, usage, UsageError } from "./commands.ts";
export { EXIT, findCommand, helpText, type OneLineIo, parseArgs, runOneLine } from "./oneline.ts";
export { quoteWord, splitWords } from "./render.ts";
export { buildMenu, type MenuPage, oneLineText, PAGES, runMenus } from "./menus.ts";
export { CLI_SSH_PORT, CLI_USER, consoleLogin, runConsoleSession } from "./session.ts";
export { runConsole } from "./console.ts";
export { runSshdMain, sshdMain } from "./sshd.ts";

/** The AppQueue CLI front-ends: the one-line grammar (aq, SSH exec) and, later, the menus. */
export { type Command, commands, usage, UsageError } from "./commands.ts";
export { EXIT, findCommand, helpText, type OneLineIo, parseArgs, runOneLine } from "./oneline.ts";
export { quoteWord, splitWords } from "./render.ts";

/**
 * The console's own entry point: `main.ts console` without the rest of main.ts. The appliance
 * bundles it as /kaos/console.js (buildroot/appliance/bundle-front-ends), so an idle console loads
 * the terminal only; kattach runs it as `/kaos/console.js console --state DIR --tty NAME
 * --wait-key` (the word `console` is skipped, as main.ts would).
 *
 *   deno run -A console_main.ts [console] [--state DIR] [--tty NAME] [--wait-key]
 */
import { consoleMain } from "./cli/console.ts";
import { startMemoryLog } from "./lib/memory_log.ts";

startMemoryLog("console"); // as `main.ts console` (bench/memory.ts; off unless KAOS_MEMORY_LOG)
const args = Deno.args[0] === "console" ? Deno.args.slice(1) : Deno.args;
const code = await consoleMain(args);
if (code !== undefined) Deno.exitCode = code; // ends normally: Deno writes its code cache
else Deno.exit(0); // the session ended (kattach starts the next)

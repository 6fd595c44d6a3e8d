/**
 * The sshd's own entry point: `main.ts sshd` without the rest of main.ts. The appliance bundles it
 * alone as /kaos/sshd.js (buildroot/appliance/build), so the SSH service loads the CLI, IPC client
 * and SSH server only, no store, QEMU or network code.
 *
 *   deno run -A sshd_main.ts [--state DIR] [--port N] [--listen ADDR] [--supervised] [--wait-go]
 */
// cli/sshd.ts, not cli/mod.ts: the bundle holds the SSH server and what it loads at a login.
import { sshdMain } from "./cli/sshd.ts";
import { startMemoryLog } from "./lib/memory_log.ts";

startMemoryLog("sshd"); // as `main.ts sshd` (bench/memory.ts; off unless KAOS_MEMORY_LOG is set)
const code = await sshdMain(Deno.args);
if (code !== undefined) Deno.exitCode = code; // ends normally: Deno writes its code cache

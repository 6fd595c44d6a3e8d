/**
 * The sshd's own entry point: `main.ts sshd` without the rest of main.ts. The appliance bundles it
 * alone as /kaos/sshd.js (buildroot/appliance/build), so the SSH service loads the CLI, IPC client
 * and SSH server only, no store, QEMU or network code.
 *
 *   deno run -A sshd_main.ts [--state DIR] [--port N] [--listen ADDR] [--supervised]
 */
import { sshdMain } from "./cli/mod.ts";

const code = await sshdMain(Deno.args);
if (code !== undefined) Deno.exitCode = code; // ends normally: Deno writes its code cache

/**
 * For bench/memory.ts: when `KAOS_MEMORY_LOG` names a directory, the process writes its
 * `Deno.memoryUsage()` (RSS and JS heap) to `DIR/ROLE-PID.json` every 250 ms, with its idle-time
 * reducer's runs (`idle`: how many, and the last one's figures; lib/idle_memory.ts). Off otherwise.
 */
import { idleMemoryRuns } from "./idle_memory.ts";

/** Starts the memory log of this process under `role` (kattach, sshd, console) when asked. */
export function startMemoryLog(role: string): void {
  let dir: string | undefined;
  try {
    dir = Deno.env.get("KAOS_MEMORY_LOG");
  } catch { /* no env permission: off */ }
  if (!dir) return;
  const path = `${dir}/${role}-${Deno.pid}.json`;
  const write = () => {
    try {
      Deno.writeTextFileSync(
        `${path}.tmp`,
        JSON.stringify({ ...Deno.memoryUsage(), idle: idleMemoryRuns() }),
      );
      Deno.renameSync(`${path}.tmp`, path);
    } catch { /* the bench went away */ }
  };
  write();
  Deno.unrefTimer(setInterval(write, 250));
}

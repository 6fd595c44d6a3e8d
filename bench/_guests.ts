/**
 * Guests shared by the benchmarks: the `web` vmimage of the fixtures, and clean-up: the guests a
 * hosted kattach started are daemonized QEMUs that outlive it (kattach re-attaches after a
 * restart), so a benchmark kills them by pid file.
 */
import type { IpcClient } from "../ipc/mod.ts";

/**
 * Imports vKaOS (`vkaos`: its module directory) and the `web` fixture module from `out`
 * (fixtures/out), and creates the `web` vmimage of `web` alone.
 */
export async function createWebImage(client: IpcClient, o: { out: string; vkaos?: string }) {
  await client.call("module.import", { path: o.vkaos ?? `${o.out}/vkaos` });
  await client.call("module.import", { path: `${o.out}/web` });
  await client.call("vmimage.create", {
    name: "web",
    modules: ["web"],
    configGroups: [],
    vlans: [],
  });
}

/** SIGKILLs the process whose pid a pid file holds; a missing file or process is no error. */
export function killPidfile(path: string): void {
  try {
    const pid = Number(Deno.readTextFileSync(path).trim());
    if (pid > 1) Deno.kill(pid, "SIGKILL");
  } catch { /* gone */ }
}

/** SIGKILLs every guest QEMU of the hosted kattach state directory `state`. */
export function killStateGuests(state: string): void {
  try {
    for (const e of Deno.readDirSync(`${state}/instances`)) {
      killPidfile(`${state}/instances/${e.name}/qemu.pid`);
    }
  } catch { /* no instances */ }
}

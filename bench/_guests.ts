/**
 * Clean-up shared by the benchmarks: the guests a hosted kattach started are daemonized QEMUs
 * that outlive it (kattach re-attaches after a restart), so a benchmark kills them by pid file.
 */

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

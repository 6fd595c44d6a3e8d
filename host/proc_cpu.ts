/**
 * A process's CPU time from /proc/<pid>/stat (utime + stime, all its threads): what a guest's
 * readiness deadline counts, so a guest starved by a loaded host is not taken for a stuck one.
 */

/** Clock ticks per second of /proc's times (USER_HZ: 100 on every Linux ABI KaOS runs on). */
const USER_HZ = 100;

/** The CPU time in ms (utime + stime) of one /proc/<pid>/stat line; comm may hold ") ". */
export function parseProcCpuMs(text: string): number {
  const close = text.lastIndexOf(")");
  // After "comm)": state is field 3, utime field 14, stime field 15.
  const fields = close < 0 ? [] : text.slice(close + 2).split(" ");
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  if (!Number.isSafeInteger(utime) || !Number.isSafeInteger(stime) || !fields[12]) {
    throw new Error(`not a /proc/<pid>/stat line: ${text.slice(0, 80)}`);
  }
  return (utime + stime) * 1000 / USER_HZ;
}

/** The CPU time in ms a process has used so far, or undefined when it is gone or unreadable. */
export function processCpuMs(pid: number, procDir = "/proc"): number | undefined {
  try {
    return parseProcCpuMs(Deno.readTextFileSync(`${procDir}/${pid}/stat`));
  } catch {
    return undefined;
  }
}

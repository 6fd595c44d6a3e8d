/**
 * The host's TSC rate. Under TCG a guest's TSC ticks at the host's rate; `-M microvm` has no HPET
 * and no ACPI PM timer, so the guest calibrates its TSC against the PIT, which fails often on a
 * loaded host and leaves Linux hung with a frozen clock. Passing the rate as `tsc_early_khz=`
 * skips that calibration (buildroot/vkaos-kernel/README.md has the measurements).
 */
import { outputOwned } from "./run.ts";

/**
 * The host TSC rate in kHz: from the kernel log's TSC calibration when given (exact), else from
 * /proc/cpuinfo's "cpu MHz" where the TSC has a constant rate (exact in VMs, the current clock
 * on hosts that scale frequency). Undefined when neither tells.
 */
export function parseTscKhz(cpuinfo: string, kernelLog = ""): number | undefined {
  const logged = /Refined TSC clocksource calibration: ([0-9.]+) MHz/.exec(kernelLog)?.[1] ??
    /tsc: Detected ([0-9.]+) MHz processor/.exec(kernelLog)?.[1];
  const flags = /^flags\s*:(.*)$/m.exec(cpuinfo)?.[1].split(/\s+/) ?? [];
  const mhz = logged ??
    (flags.includes("constant_tsc") ? /^cpu MHz\s*:\s*([0-9.]+)$/m.exec(cpuinfo)?.[1] : undefined);
  const khz = mhz ? Math.round(Number(mhz) * 1000) : NaN;
  return Number.isFinite(khz) && khz > 0 ? khz : undefined;
}

let cached: Promise<number | undefined> | undefined;

/**
 * The running host's TSC rate in kHz (see {@linkcode parseTscKhz}), or undefined. Read once per
 * process (`/proc/cpuinfo` and `dmesg`); the rate does not change while the host runs.
 */
export function hostTscKhz(): Promise<number | undefined> {
  cached ??= (async () => {
    const cpuinfo = await Deno.readTextFile("/proc/cpuinfo").catch(() => "");
    const dmesg = await outputOwned("dmesg", { stderr: "null" })
      .then((o) => o.success ? new TextDecoder().decode(o.stdout) : "", () => "");
    return parseTscKhz(cpuinfo, dmesg);
  })();
  return cached;
}

/** Detects whether guests can use KVM or must fall back to TCG (software emulation). */

/** Which accelerator QEMU should use, and why. */
export interface Accel {
  kind: "kvm" | "tcg";
  reason: string;
}

/** Inputs of the decision, read from the host (injectable for tests). */
export interface AccelProbe {
  cpuinfo: string;
  kvmOpenable: boolean | string;
}

/** Decides KVM vs TCG: KVM needs a vmx/svm CPU flag and an openable /dev/kvm. */
export function decideAccel(probe: AccelProbe): Accel {
  const flags = probe.cpuinfo.match(/^flags\s*:(.*)$/m)?.[1].split(/\s+/) ?? [];
  const virt = flags.includes("vmx") ? "vmx" : flags.includes("svm") ? "svm" : null;
  if (!virt) {
    return {
      kind: "tcg",
      reason: "the CPU shows no vmx/svm flag: guests run under TCG software emulation (slow)",
    };
  }
  if (probe.kvmOpenable !== true) {
    const why = typeof probe.kvmOpenable === "string" ? probe.kvmOpenable : "not usable";
    return {
      kind: "tcg",
      reason: `/dev/kvm is ${why}: guests run under TCG software emulation (slow)`,
    };
  }
  return { kind: "kvm", reason: `KVM available (${virt})` };
}

/** Reads /proc/cpuinfo and tries /dev/kvm on this host. */
export function probeAccel(): Accel {
  let cpuinfo = "";
  try {
    cpuinfo = Deno.readTextFileSync("/proc/cpuinfo");
  } catch { /* no procfs: no KVM */ }
  let kvmOpenable: boolean | string = true;
  try {
    Deno.openSync("/dev/kvm", { read: true, write: true }).close();
  } catch (err) {
    kvmOpenable = err instanceof Deno.errors.NotFound ? "missing" : "not openable";
  }
  return decideAccel({ cpuinfo, kvmOpenable });
}

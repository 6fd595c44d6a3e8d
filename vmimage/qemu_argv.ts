/**
 * The QEMU command line of one KaOS instance, rendered by a pure function (STYLE rule 7): the
 * vKaOS kernel and initrd, the config disk, one copy-on-write overlay per app module, user-mode
 * NICs with host forwards, QMP and a serial console socket that also logs to a file, a virtio-rng
 * fed by QEMU's own generator (a guest without one waits about a second under TCG for its kernel
 * to gather entropy the first time a program asks getrandom(), as PostgreSQL does), and
 * `-pidfile`, and QEMU's seccomp sandbox ({@linkcode QEMU_SANDBOX}). kattach starts it detached (no
 * `-daemonize`: its fork and setsid() come after the sandbox is in place, which denies them) as
 * the unprivileged user `kaos-qemu` when kattach is root. docs/guest.md describes the shape.
 *
 * Machines: `microvm` (virtio-mmio devices, qboot firmware when installed, `tsc_early_khz=` under
 * TCG) is the default; `q35` (virtio-pci, SeaBIOS) serves modules that need PCI. docs/supervisor.md.
 */
import { z } from "zod";
import { INHERITED_FD } from "../host/mod.ts";
import { describeIssues } from "../lib/errors.ts";
import { agentArgs } from "./agent/argv.ts";
import { CONFIG_DISK_SERIAL, DATA_DISK_SERIAL, moduleDiskSerial } from "./guest_config.ts";

/**
 * QEMU's seccomp sandbox: no obsolete system calls, no set*uid/set*gid, no fork/exec, no
 * scheduler or resource-limit changes (docs/security.md).
 */
export const QEMU_SANDBOX =
  "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny";

/**
 * The CPU model under TCG: QEMU's default (qemu64) with ARAT, the "always running APIC timer" TCG
 * emulates. Without it Linux takes the local APIC timer for one that stops in deep idle states and
 * wants a broadcast timer to run tickless; microvm has none (no HPET), so an idle vKaOS guest kept
 * its periodic tick, 250 interrupts a second (bench/idle_guest.ts). Under KVM the host's CPU.
 */
export const TCG_CPU = "qemu64,+arat";

/**
 * Kernel command-line word for a microvm guest under TCG: the TSC is taken as reliable, so the
 * kernel's clocksource watchdog does not check it. microvm has no HPET and no ACPI PM timer, so
 * the only watchdog is jiffies, which falls behind when the guest gets too little CPU for its
 * ticks (nested in the TCG appliance a booting guest counted 512 ms of jiffies against 800 ms of
 * TSC): the kernel then marked the TSC unstable and ran on jiffies, with no high-resolution
 * timers and no tickless idle, 250 interrupts a second for good. Under TCG the guest's TSC is
 * QEMU's reading of the host's, at a constant rate and never going back (QEMU keeps it
 * monotonic). q35 has an HPET to check the TSC against; KVM guests use kvmclock.
 */
export const TCG_MICROVM_TSC = "tsc=reliable";

/** The QEMU binary KaOS runs. */
export const QEMU_BINARY = "qemu-system-x86_64";

/**
 * The whole environment a guest's QEMU gets, as libvirt gives its QEMUs a clean one: nothing of
 * kattach's own (on a host in development that is whoever started it), messages in C.
 */
export const QEMU_ENV: Readonly<Record<string, string>> = Object.freeze({
  PATH: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
  LC_ALL: "C",
});

/** The machine types an instance can run on. */
export const Machine = z.enum(["q35", "microvm"]);
export type Machine = z.infer<typeof Machine>;

/** qboot, shipped by Debian's qemu-system-x86: a small firmware that only boots Linux, fast. */
export const QBOOT_ROM = "/usr/share/qemu/qboot.rom";

/** Kernel command-line words KaOS always passes before the module's own. */
export const BASE_KERNEL_CMDLINE = "console=ttyS0 panic=-1 quiet";

const AbsPath = z.string().startsWith("/", "paths must be absolute").refine(
  (s) => !s.includes("\0") && !s.includes("\n"),
  "paths must not hold NUL or newlines",
);
const Port = z.number().int().min(1).max(65535);

/** A host port forwarded to a guest port (user-mode networking, 127.0.0.1 only). */
export const PortForward = z.strictObject({
  hostPort: Port,
  guestPort: Port,
  /** The module whose readiness check or service the forward serves. */
  module: z.string(),
});
export type PortForward = z.infer<typeof PortForward>;

/** Everything that decides an instance's QEMU command line. */
export const QemuArgvInput = z.strictObject({
  instance: z.string().min(1),
  machine: Machine,
  accel: z.enum(["kvm", "tcg"]),
  memoryMiB: z.number().int().min(32),
  cpus: z.number().int().min(1).max(64),
  kernel: AbsPath,
  initrd: AbsPath,
  /**
   * The qboot firmware when the host has it: microvm boots with `-bios` set to it (faster than
   * SeaBIOS); q35 keeps SeaBIOS.
   */
  qboot: AbsPath.optional(),
  /**
   * The host's TSC rate (kHz). On microvm under TCG it becomes `tsc_early_khz=`: microvm has no
   * HPET or PM timer and the guest's PIT calibration of the TSC hangs it on a loaded host.
   */
  hostTscKhz: z.number().int().min(1).optional(),
  /** Words appended after {@linkcode BASE_KERNEL_CMDLINE} (the vKaOS manifest's kernelCmdline). */
  kernelCmdline: z.string().max(1024).default(""),
  /** The instance's runtime files (all under STATE/instances/<name>/). */
  paths: z.strictObject({
    qmp: AbsPath,
    console: AbsPath,
    serialLog: AbsPath,
    pidfile: AbsPath,
    configDisk: AbsPath,
    /** The guest agent's virtio-serial port (docs/guest.md); omitted: no agent channel. */
    agent: AbsPath.optional(),
  }),
  /** One qcow2 overlay per app module, in the VM image's order. */
  disks: z.array(z.strictObject({ module: z.string().min(1), overlay: AbsPath })).max(32),
  /** The instance's own writable data disk (qcow2; serial `kaos-data`); omitted: none. */
  dataDisk: AbsPath.optional(),
  /**
   * NICs in index order. A NIC with `tap` opens that persistent tap by name (kattach made it
   * on the VLAN's bridge); the others use user-mode networking, restricted (no way out to the
   * host or beyond) but with their forwards.
   */
  nics: z.array(z.strictObject({
    mac: z.string().regex(/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/),
    forwards: z.array(PortForward).max(64).default([]),
    tap: z.strictObject({
      ifname: z.string().regex(/^[A-Za-z0-9_.-]{1,15}$/),
      /** /dev/vhost-net exists: the kernel moves the packets. */
      vhost: z.boolean(),
    }).optional(),
  })).max(8).refine(
    (nics) => nics.every((n) => !n.tap || n.forwards.length === 0),
    "a tap NIC has no forwards (its guest is reached at its own address)",
  ),
  /**
   * QEMU gets its QMP socket already listening as descriptor 3 (host/ INHERITED_FD) from its
   * parent (kattach, which made it at `paths.qmp`: host/unix_listen.ts) instead of making
   * it; false: QEMU makes its own at `paths.qmp` (bench, tests).
   */
  qmpInherited: z.boolean().default(false),
  /** Write `-pidfile` (kattach, which re-attaches by it); false leaves it out (bench, tests). */
  pidfile: z.boolean().default(true),
});
export type QemuArgvInput = z.input<typeof QemuArgvInput>;

/** Escapes a value for a QEMU `-opt key=value,...` list: commas are doubled. */
export function qemuOptValue(value: string): string {
  return value.replaceAll(",", ",,");
}

/**
 * Renders the argv (program name first) for one instance. Throws a TypeError naming the field
 * when the input is malformed; never touches the system.
 */
export function renderQemuArgv(input: QemuArgvInput): string[] {
  const parsed = QemuArgvInput.safeParse(input);
  if (!parsed.success) {
    throw new TypeError(`Invalid QEMU argv input: ${describeIssues(parsed.error.issues)}`);
  }
  const o = parsed.data;
  const mmio = o.machine === "microvm";
  const blk = mmio ? "virtio-blk-device" : "virtio-blk-pci";
  const net = mmio ? "virtio-net-device" : "virtio-net-pci";
  const v = qemuOptValue;
  const tcgMicrovm = mmio && o.accel === "tcg";
  const tsc = tcgMicrovm && o.hostTscKhz ? `tsc_early_khz=${o.hostTscKhz}` : "";
  const append = [
    BASE_KERNEL_CMDLINE,
    tsc,
    tcgMicrovm ? TCG_MICROVM_TSC : "",
    o.kernelCmdline.trim(),
  ].filter((s) => s !== "").join(" ");
  const argv = [
    QEMU_BINARY,
    "-name",
    `${o.instance},process=kaos-${o.instance}`,
    "-accel",
    o.accel,
    "-M",
    o.machine,
    ...(mmio && o.qboot ? ["-bios", o.qboot] : []),
    "-cpu",
    o.accel === "kvm" ? "host" : TCG_CPU,
    "-m",
    String(o.memoryMiB),
    "-smp",
    String(o.cpus),
    "-nodefaults",
    "-no-user-config",
    "-display",
    "none",
    "-no-reboot",
    "-sandbox",
    QEMU_SANDBOX,
    "-chardev",
    `socket,id=ser0,path=${v(o.paths.console)},server=on,wait=off,logfile=${
      v(o.paths.serialLog)
    },logappend=on`,
    "-serial",
    "chardev:ser0",
    ...(o.qmpInherited
      ? [
        "-chardev",
        `socket,id=qmp,fd=${INHERITED_FD},server=on,wait=off`,
        "-mon",
        "chardev=qmp,mode=control",
      ]
      : ["-qmp", `unix:${v(o.paths.qmp)},server=on,wait=off`]),
    "-kernel",
    o.kernel,
    "-initrd",
    o.initrd,
    "-append",
    append,
    "-object",
    "rng-builtin,id=rng0",
    "-device",
    `${mmio ? "virtio-rng-device" : "virtio-rng-pci"},rng=rng0`,
    "-drive",
    `if=none,id=cfg,file=${v(o.paths.configDisk)},format=raw,readonly=on`,
    "-device",
    `${blk},drive=cfg,serial=${CONFIG_DISK_SERIAL}`,
  ];
  o.disks.forEach((d, i) => {
    argv.push("-drive", `if=none,id=mod${i},file=${v(d.overlay)},format=qcow2,readonly=on`);
    argv.push("-device", `${blk},drive=mod${i},serial=${moduleDiskSerial(d.module)}`);
  });
  if (o.dataDisk !== undefined) {
    argv.push("-drive", `if=none,id=data,file=${v(o.dataDisk)},format=qcow2`);
    argv.push("-device", `${blk},drive=data,serial=${DATA_DISK_SERIAL}`);
  }
  if (o.paths.agent !== undefined) argv.push(...agentArgs(o.paths.agent, mmio));
  o.nics.forEach((n, i) => {
    if (n.tap) {
      const vhost = n.tap.vhost ? ",vhost=on" : "";
      argv.push(
        "-netdev",
        `tap,id=net${i},ifname=${n.tap.ifname},script=no,downscript=no${vhost}`,
      );
    } else {
      const fwd = n.forwards.map((f) => `,hostfwd=tcp:127.0.0.1:${f.hostPort}-:${f.guestPort}`);
      argv.push("-netdev", `user,id=net${i},restrict=on${fwd.join("")}`);
    }
    argv.push("-device", `${net},netdev=net${i},mac=${n.mac}`);
  });
  if (o.pidfile) argv.push("-pidfile", o.paths.pidfile);
  return argv;
}

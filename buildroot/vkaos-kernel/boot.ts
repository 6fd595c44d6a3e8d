/**
 * Boots a kernel under QEMU (TCG) with its serial console on stdout and watches for a marker
 * line: used by the kernel tests and bench/vkaos_boot.ts. The argv is rendered by a pure function.
 */

/** The machine and firmware combinations we boot. */
export type BootKind =
  /** `-M microvm -bios qboot.rom`, virtio-mmio devices, the bzImage. */
  | "microvm"
  /** `-M microvm` booting the vmlinux ELF through its PVH entry point (no decompressor). */
  | "microvm-pvh"
  /** `-M q35` (SeaBIOS), virtio-pci devices. */
  | "q35"
  /** QEMU's default `pc` machine (SeaBIOS), virtio-pci devices. */
  | "pc";

/** What to boot. */
export interface BootSpec {
  kind: BootKind;
  /** A bzImage, or for microvm-pvh an uncompressed vmlinux. */
  kernel: string;
  initrd: string;
  /** Extra kernel command-line words after `console=ttyS0 panic=-1`. */
  append?: string;
  /** Raw disk images, attached as virtio-blk (mmio on microvm, pci elsewhere) with a serial. */
  disks?: { path: string; serial: string }[];
  /** Number of virtio-net NICs on user-mode networking with no host forwards. */
  nics?: number;
  /** fw_cfg entries (`opt/...` names) with string values, readable in the guest's sysfs. */
  fwCfg?: Record<string, string>;
  /**
   * The host's TSC rate in kHz, passed as `tsc_early_khz=`. Under TCG the guest's TSC runs at the
   * host's rate; microvm has no HPET or PM timer, so when the guest's PIT calibration fails (often,
   * on a loaded host) Linux hangs with a frozen clock. Passing the rate skips the calibration.
   */
  tscKhz?: number;
  /** A unix socket path for QMP. */
  qmpSocket?: string;
  memMb?: number;
}

/** qboot, shipped by Debian's qemu-system-x86 (small firmware that only boots Linux, fast). */
export const QBOOT = "/usr/share/qemu/qboot.rom";

/** Renders the qemu-system-x86_64 argv (without the program name) for a boot. */
export function renderBootArgv(spec: BootSpec): string[] {
  const microvm = spec.kind === "microvm" || spec.kind === "microvm-pvh";
  const argv: string[] = [];
  if (spec.kind === "microvm") argv.push("-M", "microvm", "-bios", QBOOT);
  else if (spec.kind === "microvm-pvh") argv.push("-M", "microvm");
  else argv.push("-M", spec.kind);
  argv.push(
    "-accel",
    "tcg",
    "-m",
    String(spec.memMb ?? 256),
    "-nodefaults",
    "-no-user-config",
    "-nographic",
    "-serial",
    "stdio",
    "-no-reboot",
    "-kernel",
    spec.kernel,
    "-initrd",
    spec.initrd,
    "-append",
    [
      "console=ttyS0",
      "panic=-1",
      spec.tscKhz ? `tsc_early_khz=${spec.tscKhz}` : "",
      spec.append ?? "",
    ].filter((w) => w !== "").join(" "),
  );
  const blk = microvm ? "virtio-blk-device" : "virtio-blk-pci";
  const net = microvm ? "virtio-net-device" : "virtio-net-pci";
  (spec.disks ?? []).forEach((disk, i) => {
    argv.push("-drive", `if=none,id=disk${i},file=${disk.path},format=raw`);
    argv.push("-device", `${blk},drive=disk${i},serial=${disk.serial}`);
  });
  for (let i = 0; i < (spec.nics ?? 0); i++) {
    argv.push("-netdev", `user,id=net${i}`);
    argv.push("-device", `${net},netdev=net${i}`);
  }
  for (const [name, value] of Object.entries(spec.fwCfg ?? {})) {
    argv.push("-fw_cfg", `name=${name},string=${value}`);
  }
  if (spec.qmpSocket) argv.push("-qmp", `unix:${spec.qmpSocket},server=on,wait=off`);
  return argv;
}

/** The host TSC rate: one definition, in host/ (kattach passes it to microvm guests too). */
export { hostTscKhz, parseTscKhz } from "../../host/tsc.ts";

/** The outcome of one boot. */
export interface BootResult {
  /** Everything QEMU printed (serial console and QEMU's own stderr). */
  output: string;
  /** Milliseconds from spawning QEMU until the marker line appeared, or null if it never did. */
  markerMs: number | null;
  /** Milliseconds from spawning QEMU until it exited (or was killed at the timeout). */
  totalMs: number;
  /** QEMU's exit code; null when it was killed at the timeout. */
  code: number | null;
  timedOut: boolean;
}

/**
 * Spawns QEMU, records when `marker` first appears on the console, runs `onMarker` then, and
 * waits for QEMU to exit (the guest powering off) or kills it after `timeoutMs`.
 */
export async function bootToMarker(
  spec: BootSpec,
  options: { marker: string; timeoutMs?: number; onMarker?: () => Promise<void> | void },
): Promise<BootResult> {
  const started = performance.now();
  const child = new Deno.Command("qemu-system-x86_64", {
    args: renderBootArgv(spec),
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let output = "";
  let markerMs: number | null = null;
  let markerTask: Promise<void> = Promise.resolve();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    try {
      child.kill("SIGKILL");
    } catch { /* already gone */ }
  }, options.timeoutMs ?? 60_000);

  async function pump(stream: ReadableStream<Uint8Array>, watch: boolean): Promise<void> {
    const decoder = new TextDecoder();
    for await (const chunk of stream) {
      output += decoder.decode(chunk, { stream: true });
      if (watch && markerMs === null && output.includes(options.marker)) {
        markerMs = performance.now() - started;
        if (options.onMarker) markerTask = Promise.resolve(options.onMarker());
      }
    }
  }
  const [status] = await Promise.all([
    child.status,
    pump(child.stdout, true),
    pump(child.stderr, false),
  ]);
  const totalMs = performance.now() - started;
  clearTimeout(timer);
  await markerTask;
  return { output, markerMs, totalMs, code: timedOut ? null : status.code, timedOut };
}

/** Reads QMP messages until a greeting, return or error (events are skipped). */
async function qmpReply(
  reader: ReadableStreamDefaultReader<Uint8Array>,
  state: { buf: string; dec: TextDecoder },
): Promise<Record<string, unknown>> {
  while (true) {
    const nl = state.buf.indexOf("\n");
    if (nl >= 0) {
      const line = state.buf.slice(0, nl);
      state.buf = state.buf.slice(nl + 1);
      const msg = JSON.parse(line) as Record<string, unknown>;
      if ("return" in msg || "error" in msg || "QMP" in msg) return msg;
      continue;
    }
    const { value, done } = await reader.read();
    if (done) throw new Error("QMP socket closed");
    state.buf += state.dec.decode(value, { stream: true });
  }
}

/** Sends `system_powerdown` (the ACPI power button) over a QMP unix socket. */
export async function qmpSystemPowerdown(socket: string): Promise<void> {
  const conn = await Deno.connect({ transport: "unix", path: socket });
  const reader = conn.readable.getReader();
  const state = { buf: "", dec: new TextDecoder() };
  const enc = new TextEncoder();
  try {
    await qmpReply(reader, state); // greeting
    await conn.write(enc.encode('{"execute":"qmp_capabilities"}\n'));
    await qmpReply(reader, state);
    await conn.write(enc.encode('{"execute":"system_powerdown"}\n'));
    const res = await qmpReply(reader, state);
    if ("error" in res) throw new Error(`system_powerdown failed: ${JSON.stringify(res.error)}`);
  } finally {
    reader.releaseLock();
    conn.close();
  }
}

/**
 * What the data disk's journal and check cost a vKaOS boot, under QEMU TCG: this checkout's vKaOS
 * (ext4 with a journal, `e2fsck -p` before the mount, static e2fsprogs in the initramfs) against
 * the baseline's (ext2 by busybox, mounted unchecked), same kernel, measured in the same run,
 * rounds interleaved. Time from spawning QEMU to "KAOS-GUEST: ready" (the data disk is mounted
 * before it) in three cases: no data disk (the larger initramfs alone), a blank disk (format),
 * and that disk again after QEMU was SIGKILLed with it mounted (journal replay and check; the
 * baseline mounts it as it is). Prints figures only (no assertions on time).
 *
 *   scripts/deno run -A bench/data_disk.ts [--rounds N (3)] [--baseline REF (40a6251)]
 *
 * The baseline's initramfs is built from `git archive REF buildroot/vkaos` (REF: main before the
 * data-disk work); the kernel is this checkout's vKaOS fixture's (fixtures/build-modules first).
 */
import { parseCliOrExit } from "../lib/cli_args.ts";
import { readUstar } from "../lib/ustar.ts";
import { type GuestConfig, renderConfigDisk, renderQcow2 } from "../vmimage/mod.ts";

const ROOT = new URL("..", import.meta.url).pathname;
const READY = "KAOS-GUEST: ready";

async function sh(argv: string[], cwd = ROOT): Promise<string> {
  const out = await new Deno.Command(argv[0], { args: argv.slice(1), cwd, stderr: "piped" })
    .output();
  if (!out.success) {
    throw new Error(`${argv.join(" ")}: exit ${out.code}\n${new TextDecoder().decode(out.stderr)}`);
  }
  return new TextDecoder().decode(out.stdout);
}

/** Boots until the serial console shows READY (or fails); returns ms and the console text. */
async function boot(
  o: { kernel: string; initrd: string; config: string; disk?: string },
): Promise<{ ms: number; serial: string; child: Deno.ChildProcess }> {
  const argv = [
    ...["-accel", "tcg", "-M", "q35", "-m", "256", "-smp", "1", "-nodefaults"],
    ...["-no-user-config", "-display", "none", "-serial", "stdio", "-no-reboot"],
    ...["-kernel", o.kernel, "-initrd", o.initrd, "-append", "console=ttyS0 panic=-1 quiet"],
    ...["-drive", `if=none,id=cfg,file=${o.config},format=raw,readonly=on`],
    ...["-device", "virtio-blk-pci,drive=cfg,serial=kaos-config"],
    ...(o.disk
      ? [
        ...["-drive", `if=none,id=data,file=${o.disk},format=qcow2`],
        ...["-device", "virtio-blk-pci,drive=data,serial=kaos-data"],
      ]
      : []),
  ];
  const t0 = performance.now();
  const child = new Deno.Command("qemu-system-x86_64", {
    args: argv,
    stdin: "null",
    stdout: "piped",
    stderr: "null",
  }).spawn();
  let serial = "";
  const dec = new TextDecoder();
  const reader = child.stdout.getReader();
  const deadline = setTimeout(() => child.kill("SIGKILL"), 180_000);
  try {
    while (!serial.includes(READY) && !serial.includes("KAOS-GUEST: fatal")) {
      const { value, done } = await reader.read();
      if (done) throw new Error(`QEMU ended before "${READY}" (or 180 s passed):\n${serial}`);
      serial += dec.decode(value, { stream: true });
    }
  } finally {
    clearTimeout(deadline);
    reader.releaseLock();
  }
  if (!serial.includes(READY)) throw new Error(`the guest did not start:\n${serial}`);
  return { ms: performance.now() - t0, serial, child };
}

/** SIGKILLs QEMU (a power cut) and waits for it. */
async function kill(child: Deno.ChildProcess): Promise<void> {
  try {
    child.kill("SIGKILL");
  } catch { /* gone */ }
  await child.stdout.cancel().catch(() => {});
  await child.status;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

async function main(): Promise<void> {
  const usage = "usage: bench/data_disk.ts [--rounds N (3)] [--baseline GIT_REF (40a6251)]";
  const cli = parseCliOrExit(Deno.args, {
    usage,
    options: { rounds: { type: "string" }, baseline: { type: "string" } },
  });
  const rounds = Number(cli.values.rounds ?? "3");
  if (!Number.isInteger(rounds) || rounds < 1) {
    console.error(`Error: --rounds takes a positive whole number\n${usage}`);
    Deno.exit(2);
  }
  const ref = cli.values.baseline ?? "40a6251";
  await sh([`${ROOT}fixtures/build-modules`]);
  const dir = await Deno.makeTempDir({ prefix: "kaos-bench-datadisk-" });
  try {
    const parts = readUstar(await Deno.readFile(`${ROOT}fixtures/out/vkaos/vkaos.aqi`), {
      label: "vkaos.aqi",
    });
    for (const p of parts) await Deno.writeFile(`${dir}/${p.path}`, p.data);
    const kernel = `${dir}/kernel`;
    const tar = `${dir}/base.tar`;
    await sh(["git", "archive", "-o", tar, ref, "buildroot/vkaos"]);
    await Deno.mkdir(`${dir}/base`);
    await sh(["tar", "-xf", tar, "-C", `${dir}/base`]);
    await sh([`${dir}/base/buildroot/vkaos/build-initramfs`, `${dir}/base.initrd`]);
    const initrds = { new: `${dir}/initrd`, base: `${dir}/base.initrd` };
    const size = async (p: string) => (await Deno.stat(p)).size;
    const cfg = (dataMount?: string): GuestConfig => ({
      instance: "bench-1",
      vmimage: "bench",
      nics: [],
      modules: [],
      ...(dataMount ? { dataMount } : {}),
    });
    await Deno.writeFile(`${dir}/plain.cfg`, renderConfigDisk(cfg()));
    await Deno.writeFile(`${dir}/data.cfg`, renderConfigDisk(cfg("/data")));

    const cases = ["no disk", "blank disk", "after a power cut"] as const;
    const ms: Record<string, number[]> = {};
    for (let r = 0; r < rounds; r++) {
      for (const [which, initrd] of Object.entries(initrds)) {
        const plain = await boot({ kernel, initrd, config: `${dir}/plain.cfg` });
        await kill(plain.child);
        const disk = `${dir}/${which}-${r}.qcow2`;
        await Deno.writeFile(disk, renderQcow2({ sizeBytes: 256 * 2 ** 20 }));
        const blank = await boot({ kernel, initrd, config: `${dir}/data.cfg`, disk });
        await kill(blank.child);
        const again = await boot({ kernel, initrd, config: `${dir}/data.cfg`, disk });
        await kill(again.child);
        if (which === "new" && !again.serial.includes("recovering journal")) {
          throw new Error(`no journal replay after the power cut:\n${again.serial}`);
        }
        [plain.ms, blank.ms, again.ms].forEach((v, i) => {
          (ms[`${which} ${cases[i]}`] ??= []).push(v);
        });
        await Deno.remove(disk);
      }
    }
    const load = (await Deno.readTextFile("/proc/loadavg")).split(" ").slice(0, 3).join(" ");
    console.log(
      `initramfs: ${await size(initrds.new)} bytes against ${await size(
        initrds.base,
      )} (baseline ${ref})`,
    );
    for (const c of cases) {
      const n = median(ms[`new ${c}`]);
      const b = median(ms[`base ${c}`]);
      console.log(
        `${c.padEnd(18)} boot to ready ${(n / 1000).toFixed(2)} s against ${
          (b / 1000).toFixed(2)
        } s: ${(n / b).toFixed(2)}× (${rounds} rounds, medians; load ${load})`,
      );
    }
    // The goal: the journal and the check cost the boot that mounts a disk after a power cut
    // at most a quarter more than the baseline's unchecked mount.
    const ratio = median(ms["new after a power cut"]) / median(ms["base after a power cut"]);
    console.log(
      `goal: data-disk boot after a power cut, journal replay + e2fsck -p against ext2 unchecked ${
        ratio.toFixed(2)
      }× (≤ 1.25) ${ratio <= 1.25 ? "met" : "not met"}`,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

if (import.meta.main) await main();

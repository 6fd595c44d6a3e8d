/**
 * Boot-time benchmark of the vKaOS kernel against Debian's kernel, under QEMU TCG: time from
 * spawning QEMU to a marker line printed by a busybox /init, and to QEMU's exit after power-off.
 * Prints figures only (no assertions on time).
 *
 *   scripts/deno run -A bench/vkaos_boot.ts [runs=5]
 *
 * Builds the kernel first if needed (scripts/build-vkaos-kernel, cached).
 */
import {
  type BootSpec,
  bootToMarker,
  buildBusyboxInitramfs,
  ensureKernel,
  hostTscKhz,
} from "../buildroot/vkaos-kernel/mod.ts";
import { parseCliOrExit } from "../lib/cli_args.ts";
import { pvhElfFromBzImage } from "../vmimage/mod.ts";

const MARKER = "VKAOS-BENCH-MARKER";

/** The newest /boot/vmlinuz-* (Debian's linux-image-amd64), or null. */
async function debianKernel(): Promise<string | null> {
  const names: string[] = [];
  for await (const e of Deno.readDir("/boot")) {
    if (e.name.startsWith("vmlinuz-")) names.push(e.name);
  }
  names.sort();
  return names.length ? `/boot/${names[names.length - 1]}` : null;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

function fmt(ms: number): string {
  return `${(ms / 1000).toFixed(2)} s`;
}

/** Runs one configuration `runs` times; returns the median time to the marker and to exit. */
async function measure(
  label: string,
  spec: BootSpec,
  runs: number,
): Promise<{ label: string; marker: number; exit: number }> {
  const markers: number[] = [];
  const exits: number[] = [];
  for (let i = 0; i < runs; i++) {
    const res = await bootToMarker(spec, { marker: MARKER, timeoutMs: 120_000 });
    if (res.markerMs === null || res.timedOut) {
      console.log(`${label}: run ${i + 1} never reached the marker:\n${res.output.slice(-1500)}`);
      continue;
    }
    markers.push(res.markerMs);
    exits.push(res.totalMs);
  }
  const row = { label, marker: median(markers), exit: median(exits) };
  console.log(
    `${label.padEnd(44)} marker ${fmt(row.marker)} (min ${fmt(Math.min(...markers))}, max ${
      fmt(Math.max(...markers))
    })  exit ${fmt(row.exit)}  [${markers.length} runs]`,
  );
  return row;
}

async function main(): Promise<void> {
  const usage = "usage: bench/vkaos_boot.ts [RUNS (default 5)]";
  const cli = parseCliOrExit(Deno.args, { usage, options: {}, positionals: true });
  const runs = Number(cli.positionals[0] ?? "5");
  if (!Number.isInteger(runs) || runs < 1 || cli.positionals.length > 1) {
    console.error(`Error: RUNS is a positive whole number\n${usage}`);
    Deno.exit(2);
  }
  const paths = await ensureKernel({ quiet: true });
  const dir = await Deno.makeTempDir({ prefix: "vkaos-bench-" });
  try {
    const initrd = await buildBusyboxInitramfs(dir, {
      init: `#!/bin/sh\necho ${MARKER}\npoweroff -f\n`,
    });
    const bz = (await Deno.stat(paths.bzImage)).size;
    // microvm has no HPET/PM timer: without the host TSC rate a loaded host hangs some boots.
    const tscKhz = await hostTscKhz();
    console.log(
      `vKaOS kernel ${paths.bzImage}: ${
        (bz / 1e6).toFixed(2)
      } MB; ${runs} runs each, QEMU TCG, medians; microvm gets tsc_early_khz=${tscKhz}`,
    );
    const ours = await measure(
      "vKaOS bzImage, -M microvm -bios qboot.rom",
      { kind: "microvm", kernel: paths.bzImage, initrd, tscKhz },
      runs,
    );
    await measure(
      "vKaOS vmlinux, -M microvm (PVH entry)",
      { kind: "microvm-pvh", kernel: paths.vmlinux, initrd, tscKhz },
      runs,
    );
    // What kattach boots on microvm: the ELF inflated from the bzImage, with qboot.
    const elf = pvhElfFromBzImage(await Deno.readFile(paths.bzImage));
    if (elf) {
      await Deno.writeFile(`${dir}/kernel.pvh`, elf);
      await measure(
        "vKaOS ELF from the bzImage, microvm + qboot",
        { kind: "microvm", kernel: `${dir}/kernel.pvh`, initrd, tscKhz },
        runs,
      );
    }
    await measure(
      "vKaOS bzImage, -M q35 (SeaBIOS)",
      { kind: "q35", kernel: paths.bzImage, initrd },
      runs,
    );
    const debian = await debianKernel();
    if (!debian) {
      console.log("Debian kernel: none in /boot (apt-get install linux-image-amd64); no ratio");
      return;
    }
    const theirs = await measure(
      `Debian ${debian.slice(6)}, -M pc`,
      { kind: "pc", kernel: debian, initrd },
      runs,
    );
    console.log(
      `ratio Debian/pc : vKaOS/microvm+qboot = ${
        (theirs.marker / ours.marker).toFixed(2)
      }x to the marker, ${(theirs.exit / ours.exit).toFixed(2)}x to exit`,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

if (import.meta.main) await main();

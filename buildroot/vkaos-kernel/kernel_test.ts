/**
 * Tests of the vKaOS kernel. The boot tests are real: they build the kernel with
 * scripts/build-vkaos-kernel when it is missing (cached by config hash, 3 to 6 minutes the first
 * time), then boot it under QEMU TCG with a busybox-static initramfs and read the serial console.
 */
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import {
  type BootSpec,
  bootToMarker,
  buildBusyboxInitramfs,
  buildExt4Image,
  ensureKernel,
  hostTscKhz,
  type KernelPaths,
  missingOptions,
  parseKernelConfig,
  parseTscKhz,
  QBOOT,
  qmpSystemPowerdown,
  renderBootArgv,
  REPO_ROOT,
} from "./mod.ts";
import { pvhElfFromBzImage } from "../../vmimage/mod.ts";

const FRAGMENT = `${REPO_ROOT}/buildroot/vkaos-kernel/vkaos.config`;
const BOOT_TIMEOUT_MS = 180_000;
/** Passed as tsc_early_khz= on microvm, which has no HPET/PM timer to calibrate the TSC against. */
const TSC_KHZ = await hostTscKhz();

/** Installs what the boot tests need when it is missing (CI starts from a fresh machine). */
async function ensureTools(): Promise<void> {
  const wanted: [string, string][] = [
    ["/usr/bin/qemu-system-x86_64", "qemu-system-x86"],
    [QBOOT, "qemu-system-x86"],
    ["/bin/busybox", "busybox-static"],
    ["/usr/bin/cpio", "cpio"],
    ["/usr/sbin/mkfs.ext4", "e2fsprogs"],
    ["/usr/bin/mksquashfs", "squashfs-tools"],
  ];
  const missing = new Set<string>();
  for (const [path, pkg] of wanted) {
    if (!await Deno.stat(path).then(() => true, () => false)) missing.add(pkg);
  }
  if (missing.size === 0) return;
  const out = await new Deno.Command("apt-get", {
    args: ["install", "-y", "-qq", ...missing],
    env: { DEBIAN_FRONTEND: "noninteractive" },
    stdout: "inherit",
    stderr: "inherit",
  }).output();
  assert(out.success, `apt-get install ${[...missing].join(" ")} failed`);
}

let kernelPromise: Promise<KernelPaths> | undefined;
/** Builds the kernel once per test run (a no-op when it is cached). */
function kernel(): Promise<KernelPaths> {
  kernelPromise ??= (async () => {
    await ensureTools();
    return await ensureKernel();
  })();
  return kernelPromise;
}

async function withTempDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await Deno.makeTempDir({ prefix: "vkaos-kernel-test-" });
  try {
    return await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const MOUNTS = `mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
`;

/** Fails with the console output when the boot did not reach the marker or did not power off. */
function assertBooted(res: Awaited<ReturnType<typeof bootToMarker>>, marker: string): void {
  const tail = res.output.slice(-4000);
  assert(!res.output.includes("Kernel panic"), `kernel panicked:\n${tail}`);
  assert(res.markerMs !== null, `marker ${marker} never appeared on the console:\n${tail}`);
  assert(!res.timedOut, `guest did not power off before the timeout:\n${tail}`);
  assertEquals(res.code, 0, `QEMU exited with ${res.code}:\n${tail}`);
}

// --- Unit tests of the pure parts ---------------------------------------------------------------

Deno.test("vkaos-kernel unit: parseKernelConfig reads set and unset options", () => {
  const parsed = parseKernelConfig(
    '# comment\nCONFIG_A=y\n# CONFIG_B is not set\nCONFIG_C=64\nCONFIG_D="x y"\n',
  );
  assertEquals([...parsed], [["CONFIG_A", "y"], ["CONFIG_B", "n"], ["CONFIG_C", "64"], [
    "CONFIG_D",
    '"x y"',
  ]]);
});

Deno.test("vkaos-kernel unit: missingOptions names dropped and wrongly enabled options", () => {
  const fragment = parseKernelConfig("CONFIG_A=y\n# CONFIG_B is not set\nCONFIG_C=y\n");
  const config = parseKernelConfig("CONFIG_A=y\nCONFIG_B=y\n");
  assertEquals(missingOptions(fragment, config), [
    { name: "CONFIG_B", want: "n", got: "y" },
    { name: "CONFIG_C", want: "y", got: "n" },
  ]);
});

Deno.test("vkaos-kernel unit: microvm argv uses qboot and virtio-mmio devices, q35 virtio-pci", () => {
  const base: BootSpec = {
    kind: "microvm",
    kernel: "/k",
    initrd: "/i",
    disks: [{ path: "/d.img", serial: "data" }],
    nics: 1,
  };
  const microvm = renderBootArgv(base).join(" ");
  assert(microvm.startsWith(`-M microvm -bios ${QBOOT} -accel tcg`), microvm);
  assert(microvm.includes("-device virtio-blk-device,drive=disk0,serial=data"), microvm);
  assert(microvm.includes("-device virtio-net-device,netdev=net0"), microvm);
  const q35 = renderBootArgv({ ...base, kind: "q35" }).join(" ");
  assert(q35.startsWith("-M q35 -accel tcg"), q35);
  assert(q35.includes("-device virtio-blk-pci,drive=disk0,serial=data"), q35);
  assert(q35.includes("-device virtio-net-pci,netdev=net0"), q35);
  const pvh = renderBootArgv({ ...base, kind: "microvm-pvh" }).join(" ");
  assert(pvh.startsWith("-M microvm -accel tcg"), pvh);
});

Deno.test("vkaos-kernel unit: parseTscKhz prefers the kernel log, else cpuinfo with constant_tsc", () => {
  const cpuinfo = "cpu MHz\t\t: 2299.998\nflags\t\t: fpu tsc constant_tsc nonstop_tsc\n";
  assertEquals(parseTscKhz(cpuinfo), 2299998);
  assertEquals(parseTscKhz(cpuinfo, "[0.00] tsc: Detected 2400.000 MHz processor\n"), 2400000);
  assertEquals(
    parseTscKhz(
      cpuinfo,
      "tsc: Detected 2400.000 MHz processor\ntsc: Refined TSC clocksource calibration: 2399.990 MHz",
    ),
    2399990,
  );
  assertEquals(parseTscKhz("cpu MHz : 800.0\nflags : fpu tsc\n"), undefined);
  const argv = renderBootArgv({ kind: "microvm", kernel: "/k", initrd: "/i", tscKhz: 2299998 });
  assertEquals(argv[argv.indexOf("-append") + 1], "console=ttyS0 panic=-1 tsc_early_khz=2299998");
});

// --- The built kernel ---------------------------------------------------------------------------

Deno.test("vkaos-kernel build: the final .config holds every option of vkaos.config", async () => {
  const paths = await kernel();
  const fragment = parseKernelConfig(await Deno.readTextFile(FRAGMENT));
  const config = parseKernelConfig(await Deno.readTextFile(paths.config));
  assert(fragment.size > 50, "the fragment looks empty");
  assertEquals(missingOptions(fragment, config), []);
  assertEquals(config.get("CONFIG_MODULES") ?? "n", "n");
  const size = (await Deno.stat(paths.bzImage)).size;
  assert(size > 1_000_000 && size < 8_000_000, `bzImage is ${size} bytes`);
});

Deno.test("vkaos-kernel build: a second run of the script is cached and prints the kernel path", async () => {
  const paths = await kernel();
  const before = (await Deno.stat(paths.bzImage)).mtime?.getTime();
  const out = await new Deno.Command(`${REPO_ROOT}/scripts/build-vkaos-kernel`, {
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert(out.success, new TextDecoder().decode(out.stderr));
  const stdout = new TextDecoder().decode(out.stdout);
  assert(stdout.includes(paths.bzImage), stdout);
  assert(new TextDecoder().decode(out.stderr).includes("nothing to build"));
  assertEquals((await Deno.stat(paths.bzImage)).mtime?.getTime(), before);
});

// --- Real boots under QEMU TCG ------------------------------------------------------------------

Deno.test("vkaos-kernel boot: microvm + qboot runs a busybox /init that prints a marker and powers off", async () => {
  const paths = await kernel();
  await withTempDir(async (dir) => {
    const initrd = await buildBusyboxInitramfs(dir, {
      init: `#!/bin/sh\n${MOUNTS}echo "VKAOS-BOOT-OK $(cat /proc/sys/kernel/osrelease)"\n` +
        `echo "FWCFG $(cat /sys/firmware/qemu_fw_cfg/by_name/opt/kaos/probe/raw)"\npoweroff -f\n`,
    });
    const res = await bootToMarker(
      {
        kind: "microvm",
        kernel: paths.bzImage,
        initrd,
        tscKhz: TSC_KHZ,
        fwCfg: { "opt/kaos/probe": "fw-cfg-works" },
      },
      { marker: "VKAOS-BOOT-OK", timeoutMs: BOOT_TIMEOUT_MS },
    );
    assertBooted(res, "VKAOS-BOOT-OK");
    assert(/VKAOS-BOOT-OK 6\.1\./.test(res.output), res.output.slice(-2000));
    assert(res.output.includes("FWCFG fw-cfg-works"), `fw_cfg sysfs:\n${res.output.slice(-2000)}`);
    assert(res.output.includes("reboot: Power down"), "ACPI power-off did not happen");
  });
});

/**
 * An /init that mounts every virtio disk by serial, reads hello.txt, writes through an overlayfs
 * over the read-only squashfs (upper layer on tmpfs), and lists the NICs.
 */
const DISKS_INIT = `#!/bin/sh
${MOUNTS}for b in /sys/block/vd*; do
  s=$(cat $b/serial)
  case "$s" in ext4) t=ext4 ;; *) t=squashfs ;; esac
  mkdir -p /mnt/$s
  if mount -t $t -o ro /dev/\${b##*/} /mnt/$s; then echo "READ $s: $(cat /mnt/$s/hello.txt)"; else echo "MOUNT-FAILED $s"; fi
done
mkdir -p /run /ov && mount -t tmpfs tmpfs /run && mkdir -p /run/up /run/work
if mount -t overlay -o lowerdir=/mnt/sqgzip,upperdir=/run/up,workdir=/run/work overlay /ov &&
  echo written >/ov/new.txt; then
  echo "OVERLAY: $(cat /ov/hello.txt) + $(cat /ov/new.txt), upper $(cat /run/up/new.txt)"
else
  echo OVERLAY-FAILED
fi
echo "NET: $(ls /sys/class/net | tr '\\n' ' ')"
echo VKAOS-DISKS-DONE
poweroff -f
`;

async function makeDisks(dir: string): Promise<{ path: string; serial: string }[]> {
  const ext4 = await buildExt4Image(`${dir}/ext4.img`, {
    files: { "hello.txt": "hello from ext4" },
  });
  const disks = [{ path: ext4, serial: "ext4" }];
  await Deno.mkdir(`${dir}/sq`);
  for (const comp of ["gzip", "xz", "zstd"]) {
    await Deno.writeTextFile(`${dir}/sq/hello.txt`, `hello from squashfs ${comp}`);
    const img = `${dir}/sq-${comp}.img`;
    const out = await new Deno.Command("mksquashfs", {
      args: [`${dir}/sq`, img, "-comp", comp, "-noappend", "-quiet", "-all-root"],
      stdout: "null",
      stderr: "piped",
    }).output();
    assert(out.success, new TextDecoder().decode(out.stderr));
    disks.push({ path: img, serial: `sq${comp}` });
  }
  return disks;
}

function assertDisksAndNet(output: string): void {
  const tail = output.slice(-3000);
  assert(output.includes("READ ext4: hello from ext4"), `ext4 disk:\n${tail}`);
  for (const comp of ["gzip", "xz", "zstd"]) {
    assert(
      output.includes(`READ sq${comp}: hello from squashfs ${comp}`),
      `squashfs ${comp}:\n${tail}`,
    );
  }
  assert(/NET: .*\beth0\b/.test(output), `no eth0 in /sys/class/net:\n${tail}`);
  assert(
    output.includes("OVERLAY: hello from squashfs gzip + written, upper written"),
    `overlayfs over the squashfs:\n${tail}`,
  );
}

Deno.test("vkaos-kernel boot: microvm virtio-blk-device disks (ext4, squashfs gzip/xz/zstd) mount and read, overlayfs writes over the squashfs; virtio-net-device is eth0", async () => {
  const paths = await kernel();
  await withTempDir(async (dir) => {
    const initrd = await buildBusyboxInitramfs(dir, { init: DISKS_INIT });
    const res = await bootToMarker(
      {
        kind: "microvm",
        kernel: paths.bzImage,
        initrd,
        tscKhz: TSC_KHZ,
        disks: await makeDisks(dir),
        nics: 1,
      },
      { marker: "VKAOS-DISKS-DONE", timeoutMs: BOOT_TIMEOUT_MS },
    );
    assertBooted(res, "VKAOS-DISKS-DONE");
    assertDisksAndNet(res.output);
  });
});

Deno.test("vkaos-kernel boot: q35 with virtio-blk-pci and virtio-net-pci mounts ext4 and squashfs and sees eth0", async () => {
  const paths = await kernel();
  await withTempDir(async (dir) => {
    const initrd = await buildBusyboxInitramfs(dir, { init: DISKS_INIT });
    const res = await bootToMarker(
      { kind: "q35", kernel: paths.bzImage, initrd, disks: await makeDisks(dir), nics: 1 },
      { marker: "VKAOS-DISKS-DONE", timeoutMs: BOOT_TIMEOUT_MS },
    );
    assertBooted(res, "VKAOS-DISKS-DONE");
    assertDisksAndNet(res.output);
  });
});

Deno.test("vkaos-kernel boot: microvm boots the vmlinux ELF, and the ELF inflated from the bzImage (kattach's way), through the PVH entry point", async () => {
  const paths = await kernel();
  await withTempDir(async (dir) => {
    const initrd = await buildBusyboxInitramfs(dir, {
      init: `#!/bin/sh\n${MOUNTS}echo VKAOS-PVH-OK\npoweroff -f\n`,
    });
    const res = await bootToMarker(
      { kind: "microvm-pvh", kernel: paths.vmlinux, initrd, tscKhz: TSC_KHZ },
      { marker: "VKAOS-PVH-OK", timeoutMs: BOOT_TIMEOUT_MS },
    );
    assertBooted(res, "VKAOS-PVH-OK");
    const elf = pvhElfFromBzImage(await Deno.readFile(paths.bzImage));
    assert(elf !== null, "the bzImage carries no gzip'd ELF with the PVH note");
    await Deno.writeFile(`${dir}/kernel.pvh`, elf);
    const inflated = await bootToMarker(
      { kind: "microvm", kernel: `${dir}/kernel.pvh`, initrd, tscKhz: TSC_KHZ },
      { marker: "VKAOS-PVH-OK", timeoutMs: BOOT_TIMEOUT_MS },
    );
    assertBooted(inflated, "VKAOS-PVH-OK");
  });
});

/** An /init that powers off only when busybox acpid sees the ACPI power button. */
const ACPI_INIT = `#!/bin/sh
${MOUNTS}acpid -c /etc/acpi -l /tmp/acpid.log
echo VKAOS-WAITING-FOR-POWER-BUTTON
while :; do sleep 60; done
`;
const ACPI_FILES = {
  "etc/acpi/PWRF/00000080": "#!/bin/sh\necho VKAOS-POWER-BUTTON >/dev/console\npoweroff -f\n",
};

for (const kind of ["microvm", "q35"] as const) {
  Deno.test(`vkaos-kernel boot: ${kind} powers off on QMP system_powerdown (ACPI power button)`, async () => {
    const paths = await kernel();
    await withTempDir(async (dir) => {
      const initrd = await buildBusyboxInitramfs(dir, { init: ACPI_INIT, files: ACPI_FILES });
      const qmpSocket = `${dir}/qmp.sock`;
      const res = await bootToMarker(
        { kind, kernel: paths.bzImage, initrd, qmpSocket, tscKhz: TSC_KHZ },
        {
          marker: "VKAOS-WAITING-FOR-POWER-BUTTON",
          timeoutMs: BOOT_TIMEOUT_MS,
          // acpid opens /dev/input/event* a moment after it forks: press the button every 2 s
          // until QEMU is gone (its QMP socket then refuses the connection).
          onMarker: async () => {
            for (let press = 0; press < 30; press++) {
              await new Promise((r) => setTimeout(r, 2000));
              try {
                await qmpSystemPowerdown(qmpSocket);
              } catch {
                return;
              }
            }
          },
        },
      );
      assertBooted(res, "VKAOS-WAITING-FOR-POWER-BUTTON");
      assert(
        res.output.includes("VKAOS-POWER-BUTTON"),
        `acpid did not act:\n${res.output.slice(-3000)}`,
      );
    });
  });
}

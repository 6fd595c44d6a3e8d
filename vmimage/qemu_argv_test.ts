import { deepStrictEqual as assertEquals, throws } from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { type QemuArgvInput, qemuOptValue, renderQemuArgv } from "./qemu_argv.ts";

/** Set UPDATE_GOLDEN=1 to rewrite the golden files from the current renderer. */
const UPDATE = Deno.env.get("UPDATE_GOLDEN") === "1";
const GOLDEN = fileURLToPath(new URL("../fixtures/golden/qemu_argv/", import.meta.url));

const dir = "/var/lib/kaos/instances/web-1";
const web1: QemuArgvInput = {
  instance: "web-1",
  machine: "q35",
  accel: "tcg",
  memoryMiB: 256,
  cpus: 1,
  kernel: "/var/lib/kaos/cache/vkaos/abc/kernel",
  initrd: "/var/lib/kaos/cache/vkaos/abc/initrd",
  // q35 ignores both: SeaBIOS, and HPET + PM timer calibrate the TSC.
  qboot: "/usr/share/qemu/qboot.rom",
  hostTscKhz: 2299998,
  paths: {
    qmp: `${dir}/qmp.sock`,
    console: `${dir}/console.sock`,
    serialLog: `${dir}/serial.log`,
    pidfile: `${dir}/qemu.pid`,
    configDisk: `${dir}/config.raw`,
  },
  disks: [{ module: "web", overlay: `${dir}/web.qcow2` }],
  nics: [{
    mac: "0a:4b:53:00:00:01",
    forwards: [{ hostPort: 40001, guestPort: 80, module: "web" }],
  }],
};

const cases: Record<string, QemuArgvInput> = {
  "web-1-q35-tcg": web1,
  // The default machine: qboot, virtio-mmio, tsc_early_khz before the module's own words.
  "web-1-microvm-tcg": { ...web1, machine: "microvm", kernelCmdline: "loglevel=4" },
  // microvm without qboot installed: QEMU's default firmware.
  "web-1-microvm-tcg-noqboot": { ...web1, machine: "microvm", qboot: undefined },
  // The guest agent's virtio-serial port (docs/guest.md), on microvm and on q35.
  "web-1-microvm-agent": {
    ...web1,
    machine: "microvm",
    paths: { ...web1.paths, agent: `${dir}/agent.sock` },
  },
  "web-1-q35-agent": { ...web1, paths: { ...web1.paths, agent: `${dir}/agent.sock` } },
  // As kattach renders it: QEMU gets its QMP socket listening as fd 3 (supervisor.ts spawnQemu).
  "web-1-microvm-qmp-fd": {
    ...web1,
    machine: "microvm",
    paths: { ...web1.paths, agent: `${dir}/agent.sock` },
    qmpInherited: true,
  },
  "pair-2-microvm-kvm": {
    ...web1,
    instance: "pair-2",
    machine: "microvm",
    accel: "kvm", // kvmclock: no tsc_early_khz
    memoryMiB: 512,
    cpus: 2,
    kernelCmdline: " loglevel=4 ",
    paths: { ...web1.paths, qmp: "/state,with,commas/qmp.sock" },
    disks: [
      { module: "hello", overlay: `${dir}/hello.qcow2` },
      { module: "a-module-with-a-long-name", overlay: `${dir}/long.qcow2` },
    ],
    nics: [
      {
        mac: "0a:4b:53:00:00:02",
        forwards: [
          { hostPort: 40002, guestPort: 80, module: "web" },
          { hostPort: 40003, guestPort: 8080, module: "hello" },
        ],
      },
      { mac: "0a:4b:53:00:00:03" },
    ],
    pidfile: false,
  },
  // Bridged: NIC 0 opens its tap with vhost, NIC 1 (no VLAN) stays user-mode with a forward.
  "web-3-microvm-kvm-tap": {
    ...web1,
    instance: "web-3",
    machine: "microvm",
    accel: "kvm",
    nics: [
      { mac: "0a:4b:53:00:00:05", tap: { ifname: "kt0a4b53000005", vhost: true } },
      { mac: "0a:4b:53:00:00:06", forwards: [{ hostPort: 40005, guestPort: 80, module: "web" }] },
      { mac: "0a:4b:53:00:00:07", tap: { ifname: "kt0a4b53000007", vhost: false } },
    ],
  },
};

for (const [name, input] of Object.entries(cases)) {
  Deno.test(`renderQemuArgv matches golden ${name}`, async () => {
    const text = renderQemuArgv(input).join("\n") + "\n";
    const path = `${GOLDEN}${name}.argv`;
    if (UPDATE) await Deno.writeTextFile(path, text);
    assertEquals(text, await Deno.readTextFile(path));
  });
}

Deno.test("renderQemuArgv is pure and refuses relative paths and bad MACs", () => {
  assertEquals(renderQemuArgv(web1), renderQemuArgv(structuredClone(web1)));
  throws(() => renderQemuArgv({ ...web1, kernel: "kernel" }), /kernel: paths must be absolute/);
  throws(
    () => renderQemuArgv({ ...web1, nics: [{ mac: "52-54-00-00-00-01" }] }),
    /nics\.0\.mac/,
  );
  throws(
    () =>
      renderQemuArgv({
        ...web1,
        nics: [{
          mac: "0a:4b:53:00:00:01",
          tap: { ifname: "kt0a4b53000001", vhost: false },
          forwards: [{ hostPort: 40001, guestPort: 80, module: "web" }],
        }],
      }),
    /a tap NIC has no forwards/,
  );
  throws(
    () =>
      renderQemuArgv({
        ...web1,
        nics: [{ mac: "0a:4b:53:00:00:01", tap: { ifname: "kt0,script=x", vhost: false } }],
      }),
    /ifname/,
  );
});

Deno.test("qemuOptValue doubles commas", () => {
  assertEquals(qemuOptValue("/a,b,,c"), "/a,,b,,,,c");
});

Deno.test("renderQemuArgv: the data disk is a writable qcow2 with serial kaos-data", () => {
  const argv = renderQemuArgv({ ...web1, dataDisk: `${dir}/data.qcow2` });
  const drive = argv.indexOf(`if=none,id=data,file=${dir}/data.qcow2,format=qcow2`);
  assertEquals(argv[drive - 1], "-drive");
  assertEquals(argv[drive + 1], "-device");
  assertEquals(/,drive=data,serial=kaos-data$/.test(argv[drive + 2]), true);
  assertEquals(renderQemuArgv(web1).some((a) => a.includes("kaos-data")), false);
});

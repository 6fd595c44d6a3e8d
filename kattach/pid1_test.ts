import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { FRONT_END_V8_FLAGS_OPTION, KATTACH_V8_FLAGS_OPTION, V8_FLAGS_OPTION } from "../lib/mod.ts";
import { KATTACH_MALLOC_ENV } from "../lib/idle_memory.ts";
import {
  APPLIANCE_CONSOLE_ARGV,
  APPLIANCE_SELF_ARGV,
  APPLIANCE_SSHD_ARGV,
  menuTerminals,
  modulesFor,
  parseCmdline,
  splitModules,
} from "./pid1.ts";

Deno.test("parseCmdline: kaos.* parameters only", () => {
  assertEquals(
    parseCmdline(
      "console=ttyS0 kaos.ip=10.0.2.15/24 quiet kaos.gw=10.0.2.2 kaos.selftest=signals\n",
    ),
    { ip: "10.0.2.15/24", gw: "10.0.2.2", selftest: "signals" },
  );
  assertEquals(parseCmdline("console=ttyS0 kaos.unknown=1 kaos.ip="), {});
});

Deno.test("modulesFor: KVM modules only where the CPU has vmx or svm", () => {
  const list = "virtio_pci\next4\n\nkvm\nkvm_intel\nkvm_amd\nvhost_net\n";
  assertEquals(modulesFor(list, "flags\t: fpu sse2\n"), ["virtio_pci", "ext4"]);
  assertEquals(modulesFor(list, "flags\t: fpu vmx\n"), [
    "virtio_pci",
    "ext4",
    "kvm",
    "kvm_intel",
    "vhost_net",
  ]);
  assertEquals(modulesFor(list, "flags : svm\n"), [
    "virtio_pci",
    "ext4",
    "kvm",
    "kvm_amd",
    "vhost_net",
  ]);
});

Deno.test("splitModules: what the pre-phases wait for (a stick behind xHCI, eth0) apart from the rest, order kept", () => {
  assertEquals(
    splitModules([
      ..."virtio_pci bridge ext4 nf_tables usb_storage ehci_pci ahci kvm af_packet".split(" "),
    ]),
    {
      early: ["virtio_pci", "ext4", "usb_storage", "af_packet"],
      later: ["bridge", "nf_tables", "ehci_pci", "ahci", "kvm"],
    },
  );
  assertEquals(splitModules([]), { early: [], later: [] });
});

Deno.test("catchStrayErrors: an uncaught error and an unhandled rejection are logged bugs; the process lives on", async () => {
  // What a hosted kattach (main.ts) and PID 1 install; run in a process of its own.
  const pid1 = new URL("./pid1.ts", import.meta.url).href;
  const script = `
    import { catchStrayErrors } from "${pid1}";
    catchStrayErrors((line) => console.log(line));
    Promise.reject(new Error("nobody catches this rejection"));
    setTimeout(() => { throw new Error("nobody catches this throw"); }, 10);
    setTimeout(() => console.log("still alive"), 200);
  `;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["eval", script],
    cwd: new URL("..", import.meta.url).pathname,
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(60_000),
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  assertEquals(out.code, 0, new TextDecoder().decode(out.stderr));
  assertEquals(
    /bug \(unhandled rejection, kept running\): Error: nobody catches this rejection/.test(text),
    true,
    text,
  );
  assertEquals(
    /bug \(uncaught error, kept running\): Error: nobody catches this throw/.test(text),
    true,
    text,
  );
  assertEquals(text.trimEnd().endsWith("still alive"), true, text);
});

Deno.test("the console menus run on tty1, and on ttyS0 too with kaos.console=serial", () => {
  assertEquals(menuTerminals("console=tty0 console=ttyS0,115200 panic=10"), ["tty1"]);
  assertEquals(
    menuTerminals("console=tty0 console=ttyS0,115200 kaos.console=serial"),
    ["tty1", "ttyS0"],
  );
  assertEquals(menuTerminals("quiet kaos.console=serialx"), ["tty1"]);
});

Deno.test("the appliance runs kattach and its services with lib/v8_flags.ts' V8 flags", async () => {
  assertEquals(KATTACH_V8_FLAGS_OPTION, `${V8_FLAGS_OPTION},--max-opt=2`);
  const launcher = await Deno.readTextFile(
    new URL("../buildroot/appliance/kattach_launcher.c", import.meta.url),
  );
  const argv = launcher.match(/char \*const args\[\] = \{([^}]*)\}/)?.[1] ?? "";
  const words = [...argv.matchAll(/"([^"]*)"/g)].map((m) => m[1]);
  assertEquals(words.slice(0, 7), [
    "/bin/deno",
    "run",
    "-A",
    "--cached-only",
    "--no-config",
    KATTACH_V8_FLAGS_OPTION,
    "/kaos/kaos.js",
  ]);
  // kattach's malloc setting, which glibc reads at the start: from the launcher's environment.
  const env = launcher.match(/char \*const env\[\] = \{([^}]*)\}/)?.[1] ?? "";
  for (const [name, value] of Object.entries(KATTACH_MALLOC_ENV)) {
    assertEquals(env.includes(`"${name}=${value}"`), true, `${name}=${value} in the launcher`);
  }
  assertEquals(APPLIANCE_SELF_ARGV.filter((a) => a.startsWith("--v8-flags=")), [
    KATTACH_V8_FLAGS_OPTION,
  ]);
  // The front-ends (sshd, console) run with theirs: the launcher's and no TurboFan.
  assertEquals(APPLIANCE_SSHD_ARGV.filter((a) => a.startsWith("--v8-flags=")), [
    FRONT_END_V8_FLAGS_OPTION,
  ]);
  assertEquals(APPLIANCE_CONSOLE_ARGV.filter((a) => a.startsWith("--v8-flags=")), [
    FRONT_END_V8_FLAGS_OPTION,
  ]);
  assertEquals(FRONT_END_V8_FLAGS_OPTION.startsWith(`${V8_FLAGS_OPTION},`), true);
  // The image build warms the code cache under the same flags (V8 refuses it under others):
  // kaos.js and its chunks under kattach's, then the front-ends' bundles and chunks under theirs.
  const build = await Deno.readTextFile(new URL("../buildroot/appliance/build", import.meta.url));
  assertEquals([...build.matchAll(/--v8-flags=\S+/g)].map((m) => m[0]), [
    KATTACH_V8_FLAGS_OPTION,
    FRONT_END_V8_FLAGS_OPTION,
  ]);
  // And `deno task kaos` (hosted, by hand).
  const tasks = JSON.parse(await Deno.readTextFile(new URL("../deno.json", import.meta.url))).tasks;
  assertEquals(tasks.kaos.split(" ").filter((a: string) => a.startsWith("--v8-flags=")), [
    KATTACH_V8_FLAGS_OPTION,
  ]);
});

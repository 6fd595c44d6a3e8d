import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { modulesFor, parseCmdline } from "./pid1.ts";

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

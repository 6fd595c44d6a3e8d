import { deepStrictEqual as assertEquals, match as assertMatch } from "node:assert/strict";
import { decideAccel } from "./accel.ts";

Deno.test("decideAccel: no vmx/svm flag means TCG with a clear reason", () => {
  const a = decideAccel({ cpuinfo: "flags\t: fpu sse2 hypervisor\n", kvmOpenable: true });
  assertEquals(a.kind, "tcg");
  assertMatch(a.reason, /no vmx\/svm flag/);
});

Deno.test("decideAccel: vmx flag but no /dev/kvm means TCG", () => {
  const a = decideAccel({ cpuinfo: "flags\t: fpu vmx sse2\n", kvmOpenable: "missing" });
  assertEquals(a.kind, "tcg");
  assertMatch(a.reason, /\/dev\/kvm is missing/);
});

Deno.test("decideAccel: svm flag and an openable /dev/kvm means KVM", () => {
  assertEquals(decideAccel({ cpuinfo: "flags : svm lm\n", kvmOpenable: true }).kind, "kvm");
});

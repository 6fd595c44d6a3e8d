import assert from "node:assert/strict";
import { parseProcCpuMs, processCpuMs } from "./proc_cpu.ts";

Deno.test("proc cpu: utime + stime of a stat line, whatever the comm holds", () => {
  const line = "4242 (qemu (x) 1) S 1 4242 4242 0 -1 4194624 9 0 0 0 1234 56 0 0 20 0 3 0 99 0 0";
  assert.equal(parseProcCpuMs(line), (1234 + 56) * 10);
  assert.throws(() => parseProcCpuMs("4242 (qemu) S 1"), /not a \/proc\/<pid>\/stat line/);
  assert.throws(() => parseProcCpuMs("garbage"), /not a \/proc\/<pid>\/stat line/);
});

Deno.test("proc cpu: this process's CPU time grows while it computes; a gone pid is undefined", () => {
  const before = processCpuMs(Deno.pid);
  assert.ok(before !== undefined && before >= 0);
  const until = performance.now() + 150;
  let spin = 0;
  while (performance.now() < until) spin++;
  const after = processCpuMs(Deno.pid)!;
  assert.ok(after > before, `${before} -> ${after} ms after ${spin} spins`);
  const dir = Deno.makeTempDirSync({ prefix: "kaos_proc_cpu_test_" });
  try {
    assert.equal(processCpuMs(1, dir), undefined);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

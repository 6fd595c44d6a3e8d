/**
 * kattach's IPC service survives running out of descriptors: accept errors are logged and
 * retried with backoff, and once descriptors are free again clients are answered.
 * A real hosted kattach; its descriptor limit lowered with prlimit(1).
 */
import assert from "node:assert/strict";
import { TestKattach } from "./_harness.ts";
import { run, waitFor } from "./_util.ts";

Deno.test("ipc: accept errors (too many open files) are logged and retried; kattach answers after", async () => {
  const k = await TestKattach.start();
  const conns: Deno.UnixConn[] = [];
  try {
    const open = (await Array.fromAsync(Deno.readDir(`/proc/${k.pid}/fd`))).length;
    const limit = open + 8;
    const set = await run(["prlimit", "--pid", String(k.pid), `--nofile=${limit}:${limit}`], {
      timeoutMs: 10_000,
    });
    assert.equal(set.code, 0, set.stderr);
    for (let i = 0; i < 30; i++) {
      conns.push(await Deno.connect({ transport: "unix", path: `${k.stateDir}/run/kattach.sock` }));
    }
    await waitFor(
      () => /ipc: accept failed \(retrying in \d+ ms\)/.test(k.log),
      () => `an accept failure in the kattach log:\n${k.log}`,
      { timeoutMs: 20_000 },
    );
    for (const c of conns.splice(0)) c.close();
    // Descriptors are free again: the service answers (the limit stays low).
    await waitFor(
      async () => (await k.aq("system", "status")).code === 0,
      () => `kattach answering again:\n${k.log}`,
      { timeoutMs: 30_000, intervalMs: 500 },
    );
    assert.doesNotMatch(k.log, /bug/i);
  } finally {
    for (const c of conns) c.close();
    await k.dispose();
  }
});

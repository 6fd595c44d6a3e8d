/**
 * The idle-time memory reducer in a real hosted kattach (lib/idle_memory.ts): it runs with
 * `gc` exposed (the V8 flags of lib/v8_flags.ts, as the appliance runs it), once after the start
 * and once after a burst of IPC requests, and that run's full GC and malloc_trim leave less JS
 * heap in use than before it. Seen through kattach's memory log (KAOS_MEMORY_LOG); no timing is
 * asserted (what it saves over time is a figure: bench/scale.ts, bench/memory.ts).
 */
import assert from "node:assert/strict";
import { IpcClient } from "../ipc/mod.ts";
import type { IdleRun } from "../lib/idle_memory.ts";
import { TestKattach } from "./_harness.ts";
import { waitFor } from "./_util.ts";

type MemoryLog = Deno.MemoryUsage & { idle: { runs: number; last?: IdleRun } };

Deno.test("kattach's idle-time reducer runs a full GC and malloc_trim after a burst", async () => {
  const logDir = await Deno.makeTempDir({ prefix: "kaos-idle-mem-" });
  const k = await TestKattach.start(undefined, { env: { KAOS_MEMORY_LOG: logDir } });
  try {
    const path = `${logDir}/kattach-${k.pid}.json`;
    let log: MemoryLog | undefined;
    const read = async () => {
      log = JSON.parse(await Deno.readTextFile(path).catch(() => "null")) ?? undefined;
      return log;
    };
    const runs = async () => (await read())?.idle.runs ?? 0;
    // Once after the start (store opened, integrity checked, reconciled).
    await waitFor(async () => await runs() >= 1, () => `a first run in ${JSON.stringify(log)}`);
    const before = log!.idle.runs;

    // A burst of requests, one after another on one connection: 60 VLANs added and listed.
    const c = await IpcClient.connect(`${k.stateDir}/run`);
    try {
      for (let id = 100; id < 160; id++) {
        await c.call("vlan.add", { id, name: `b${id}`, cidr: `10.3.${id}.0/24` });
        assert.equal((await c.call("vlan.list", {})).length, id - 99);
      }
    } finally {
      c.close();
    }
    await waitFor(
      async () => await runs() > before,
      () => `a run after the burst (runs ${before} before it): ${JSON.stringify(log)}`,
    );
    const last = log!.idle.last!;
    assert.equal(last.gc, true, `gc() is exposed in kattach: ${JSON.stringify(last)}`);
    assert.equal(last.trimmed, true, `malloc_trim was called: ${JSON.stringify(last)}`);
    assert.ok(
      last.heapUsedAfter < last.heapUsedBefore,
      `the full GC freed some of the burst's garbage: ${JSON.stringify(last)}`,
    );
  } finally {
    await k.dispose();
    await Deno.remove(logDir, { recursive: true }).catch(() => {});
  }
});

/** Reply validation of the typed commands, with a fake executor (pure logic). */
import { assertEquals, assertRejects } from "./_assert.ts";
import {
  queryBlockstats,
  queryCpusFast,
  queryMemorySizeSummary,
  queryStatus,
  quit,
} from "./commands.ts";
import type { QmpExecutor } from "./commands.ts";
import { QmpProtocolError } from "./errors.ts";

function replying(reply: unknown, calls: unknown[][] = []): QmpExecutor {
  return {
    execute: (command, args, options) => {
      calls.push([command, args, options]);
      return Promise.resolve(reply);
    },
  };
}

Deno.test("typed commands validate replies and rename QEMU's members", async () => {
  assertEquals(
    await queryStatus(replying({ status: "paused", singlestep: false, running: false })),
    { status: "paused", running: false },
  );
  assertEquals(
    await queryCpusFast(replying([{
      "cpu-index": 0,
      "qom-path": "/machine/unattached/device[0]",
      "thread-id": 1234,
      target: "x86_64",
      props: { "core-id": 0 },
    }])),
    [{ cpuIndex: 0, qomPath: "/machine/unattached/device[0]", threadId: 1234, target: "x86_64" }],
  );
  assertEquals(
    await queryMemorySizeSummary(replying({ "base-memory": 1024 })),
    { baseMemory: 1024, pluggedMemory: 0 },
  );
  const zeroStats = {
    rd_bytes: 1,
    wr_bytes: 2,
    rd_operations: 3,
    wr_operations: 4,
    flush_operations: 5,
    rd_total_time_ns: 6,
    wr_total_time_ns: 7,
    flush_total_time_ns: 8,
  };
  assertEquals(await queryBlockstats(replying([{ device: "d0", stats: zeroStats }])), [{
    device: "d0",
    nodeName: "",
    qdev: "",
    stats: {
      rdBytes: 1,
      wrBytes: 2,
      rdOperations: 3,
      wrOperations: 4,
      flushOperations: 5,
      rdTotalTimeNs: 6,
      wrTotalTimeNs: 7,
      flushTotalTimeNs: 8,
    },
  }]);
});

Deno.test("a reply of the wrong shape is a QmpProtocolError naming the command", async () => {
  const err = await assertRejects(
    () => queryStatus(replying({ status: "levitating", running: "yes" })),
    QmpProtocolError,
    "Unexpected reply to query-status",
  );
  assertEquals(err.message.includes("running"), true);
});

Deno.test("quit closes the monitor even when the command fails", async () => {
  let closed = 0;
  const monitor = {
    execute: () => Promise.reject(new Error("boom")),
    close: () => {
      closed++;
      return Promise.resolve();
    },
  };
  await assertRejects(() => quit(monitor), Error, "boom");
  assertEquals(closed, 1);
});

import assert from "node:assert/strict";
import { formatMs, ReadinessDeadline, WALL_CEILING_FACTOR } from "./readiness_deadline.ts";

/** A fake wall clock and CPU reader, moved by hand. */
function clocks(cpu: number | null = 5_000) {
  const c = { wall: 1_000_000, cpu: cpu ?? undefined as number | undefined };
  return { c, now: () => c.wall, cpuMs: () => c.cpu };
}

Deno.test("readiness deadline: a guest's CPU time counts, not the wall time it waited", () => {
  const { c, ...fake } = clocks();
  const d = new ReadinessDeadline(120_000, fake);
  // Starved: 14 min of wall time, 60 s of CPU time. Not expired.
  c.wall += 840_000;
  c.cpu! += 60_000;
  assert.deepEqual(d.status(), { expired: false, left: 60_000 });
  // Its share came: 120 s of CPU time used after 15 min.
  c.wall += 60_000;
  c.cpu! += 60_000;
  assert.deepEqual(d.status(), {
    expired: true,
    reason: "not ready after 120 s of its CPU time (15 min)",
  });
});

Deno.test("readiness deadline: a guest that uses no CPU fails at the wall-time ceiling", () => {
  const { c, ...fake } = clocks();
  const d = new ReadinessDeadline(120_000, fake);
  assert.equal(d.ceilingMs, 120_000 * WALL_CEILING_FACTOR);
  c.wall += 1_199_999;
  c.cpu! += 3_000;
  assert.deepEqual(d.status(), { expired: false, left: 1 });
  c.wall += 1;
  assert.deepEqual(d.status(), {
    expired: true,
    reason:
      "not ready after 20 min, in which it used 3 s of CPU time (the deadline is 120 s of CPU time or 20 min)",
  });
});

Deno.test("readiness deadline: CPU time counts at most as fast as wall time", () => {
  // Four busy vCPUs: 4 s of CPU time a second. It fails no sooner than a wall-time deadline did.
  const { c, ...fake } = clocks();
  const d = new ReadinessDeadline(10_000, fake);
  for (let i = 0; i < 9; i++) {
    c.wall += 1_000;
    c.cpu! += 4_000;
    assert.equal(d.status().expired, false, `after ${i + 1} s`);
  }
  // Then starved for a while: its earlier surplus is not carried over.
  c.wall += 5_000;
  c.cpu! += 500;
  assert.deepEqual(d.status(), { expired: false, left: 500 });
  c.wall += 500;
  c.cpu! += 2_000;
  assert.deepEqual(d.status(), {
    expired: true,
    reason: "not ready after 10 s of its CPU time (15 s)",
  });
});

Deno.test("readiness deadline: without a CPU figure the deadline is wall time", () => {
  // No reader at the start (no pid): wall time from the start on.
  const none = clocks(null);
  const d = new ReadinessDeadline(1_000, none);
  none.c.wall += 999;
  assert.deepEqual(d.status(), { expired: false, left: 1 });
  none.c.wall += 400;
  assert.deepEqual(d.status(), { expired: true, reason: "not ready after 1.4 s" });
  // The reader stops answering midway (QEMU gone): wall time as well.
  const gone = clocks();
  const e = new ReadinessDeadline(2_000, gone);
  gone.c.wall += 2_500;
  assert.equal(e.status().expired, false);
  gone.c.cpu = undefined;
  assert.deepEqual(e.status(), { expired: true, reason: "not ready after 2.5 s" });
});

Deno.test("readiness deadline: durations read as people say them", () => {
  assert.deepEqual(
    [800, 1_000, 1_400, 120_000, 299_000, 648_000, 900_000, 5_400_000, 10_800_000].map(formatMs),
    ["800 ms", "1 s", "1.4 s", "120 s", "299 s", "10.8 min", "15 min", "90 min", "3 h"],
  );
});

Deno.test("readiness deadline: the CPU time is read at most once a second before the deadline's wall time", () => {
  let reads = 0;
  const c = { wall: 0, cpu: 0 };
  const d = new ReadinessDeadline(10_000, {
    now: () => c.wall,
    cpuMs: () => (reads++, c.cpu),
  });
  // Probes every 50 ms for 5 s, the guest busy: five readings besides the first, not a hundred.
  for (let i = 0; i < 100; i++) {
    c.wall += 50;
    c.cpu += 50;
    assert.equal(d.status().expired, false);
  }
  assert.equal(reads, 1 + 5);
  // Past the deadline's wall time, every look reads it.
  c.wall += 6_000;
  c.cpu += 100;
  d.status();
  d.status();
  assert.equal(reads, 1 + 5 + 2);
});

Deno.test("ReadinessDeadline: `since` counts from the guest's start without a reading at the wait's start", () => {
  let now = 10_000;
  let cpu = 300;
  let reads = 0;
  const d = new ReadinessDeadline(1000, {
    now: () => now,
    cpuMs: () => (reads++, cpu),
    since: { wall: 9_500, cpu: 0 },
  });
  assert.equal(reads, 0);
  // 500 ms after the start: not read yet (at most once a second), at least 500 ms left.
  assert.deepEqual(d.status(), { expired: false, left: 500 });
  assert.equal(reads, 0);
  // 1.2 s after the start the CPU time is read: 900 ms of 1000 used.
  now = 10_700;
  cpu = 900;
  assert.deepEqual(d.status(), { expired: false, left: 100 });
  assert.equal(reads, 1);
  now = 11_800;
  cpu = 1_100;
  const s = d.status();
  assert.equal(s.expired, true);
});

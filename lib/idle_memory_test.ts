/**
 * The idle-time memory reducer: its scheduling on a fake clock (pure), and its effects in this
 * process (malloc_trim through FFI on this glibc machine; the test process has no `gc`). That it
 * runs in kattach and frees memory there: tests/idle_memory_test.ts; what it saves: bench/.
 */
import assert from "node:assert/strict";
import {
  type IdleClock,
  IdleScheduler,
  limitMallocArenas,
  onIdleMemory,
  reduceMemoryNow,
  trimMalloc,
  trimMallocSoon,
} from "./idle_memory.ts";

/** A clock whose time moves only when the test says so; timers fire in time order. */
class FakeClock implements IdleClock {
  t = 0;
  timers: { at: number; fn: () => void }[] = [];
  now = () => this.t;
  setTimer = (fn: () => void, ms: number) => void this.timers.push({ at: this.t + ms, fn });
  advance(ms: number): void {
    const end = this.t + ms;
    for (;;) {
      this.timers.sort((a, b) => a.at - b.at);
      const next = this.timers[0];
      if (!next || next.at > end) break;
      this.timers.shift();
      this.t = next.at;
      next.fn();
    }
    this.t = end;
  }
}

function scheduler(quietMs = 1000) {
  const clock = new FakeClock();
  const ran: number[] = [];
  const s = new IdleScheduler(() => ran.push(clock.t), { quietMs, clock });
  return { clock, ran, s };
}

Deno.test("IdleScheduler: runs once, quietMs after the last work of a burst ended", () => {
  const { clock, ran, s } = scheduler(1000);
  for (let i = 0; i < 100; i++) { // 100 requests, 10 ms each, back to back
    s.begin();
    clock.advance(10);
    s.end();
  }
  assert.equal(clock.timers.length, 1); // one timer for the burst, not a hundred
  clock.advance(999);
  assert.deepEqual(ran, []); // 999 ms after the last end: not yet
  clock.advance(1);
  assert.deepEqual(ran, [2000]);
  clock.advance(60_000);
  assert.deepEqual(ran, [2000]); // nothing new: no second run, no timer left
  assert.equal(clock.timers.length, 0);
});

Deno.test("IdleScheduler: never while work runs; a long request defers it past its end", () => {
  const { clock, ran, s } = scheduler(1000);
  s.touch(); // e.g. the start
  clock.advance(500);
  s.begin(); // a deploy that takes 5 s
  clock.advance(5000);
  assert.deepEqual(ran, []); // the timer came during the request: no run
  assert.equal(clock.timers.length, 0);
  s.end();
  clock.advance(1000);
  assert.deepEqual(ran, [6500]);
});

Deno.test("IdleScheduler: overlapping requests; runs after the last of them ends", () => {
  const { clock, ran, s } = scheduler(1000);
  s.begin();
  s.begin();
  clock.advance(100);
  s.end();
  assert.equal(s.running, 1);
  clock.advance(3000);
  assert.deepEqual(ran, []);
  s.end();
  assert.equal(s.running, 0);
  clock.advance(1000);
  assert.deepEqual(ran, [4100]);
  s.end(); // an unmatched end does not go below zero
  assert.equal(s.running, 0);
});

Deno.test("IdleScheduler: a new burst after a run gets its own run", () => {
  const { clock, ran, s } = scheduler(200);
  s.touch();
  clock.advance(200);
  s.begin();
  clock.advance(50);
  s.end();
  clock.advance(150); // work came 150 ms before: the timer waits the other 50
  assert.deepEqual(ran, [200]);
  clock.advance(50);
  assert.deepEqual(ran, [200, 450]);
});

Deno.test("IdleScheduler: a quiet time that is not positive is refused", () => {
  const clock = new FakeClock();
  for (const quietMs of [0, -1, NaN]) {
    assert.throws(() => new IdleScheduler(() => {}, { quietMs, clock }), RangeError);
  }
});

Deno.test("trimMalloc and reduceMemoryNow: glibc's malloc_trim is called; no gc exposed here", async () => {
  assert.equal(trimMalloc(), true);
  assert.equal(trimMalloc(), true); // the library stays open
  const run = reduceMemoryNow();
  assert.equal(run.trimmed, true);
  assert.equal(run.gc, false); // `deno test` runs without --expose-gc
  assert.ok(run.rssBefore > 0 && run.rssAfter > 0 && run.heapUsedAfter > 0);
  for (let i = 0; i < 50; i++) trimMallocSoon(20); // one timer for the burst, not fifty
  await new Promise((r) => setTimeout(r, 60)); // it has run: no timer is left behind
});

Deno.test("reduceMemoryNow: runs its hooks first, past one that throws; a removed one no more", () => {
  const ran: string[] = [];
  const offA = onIdleMemory(() => ran.push("a"));
  const offBad = onIdleMemory(() => {
    throw new Error("the store is closed");
  });
  const offB = onIdleMemory(() => ran.push("b"));
  try {
    assert.equal(reduceMemoryNow().trimmed, true);
    assert.deepEqual(ran, ["a", "b"]);
    offA();
    reduceMemoryNow();
    assert.deepEqual(ran, ["a", "b", "b"]);
  } finally {
    offA();
    offBad();
    offB();
  }
});

Deno.test("limitMallocArenas: glibc's mallopt(M_ARENA_MAX) accepts a cap; a bad cap is refused", () => {
  assert.equal(limitMallocArenas(16), true); // glibc's own cap on 2 cores (8 per core)
  assert.throws(() => limitMallocArenas(0), RangeError);
  assert.throws(() => limitMallocArenas(1.5), RangeError);
});

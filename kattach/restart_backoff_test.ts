import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { RestartBackoff } from "./restart_backoff.ts";

Deno.test("restart backoff: 1 s doubling to 30 s while the guest keeps failing; reset after a stable minute", () => {
  let now = 1_000_000; // a fake clock
  const b = new RestartBackoff(undefined, () => now);
  const delays: number[] = [];
  for (let i = 0; i < 8; i++) {
    const started = now;
    now += 5_000; // up 5 s, then it ends
    const d = b.next("web-1", started);
    delays.push(d);
    now += d;
  }
  assertEquals(delays, [1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]);
  // Up for just under a minute: the backoff goes on growing (capped).
  let started = now;
  now += 59_999;
  assertEquals(b.next("web-1", started), 30000);
  // A stable minute: back to 1 s, then growing again.
  started = now;
  now += 60_000;
  assertEquals(b.next("web-1", started), 1000);
  assertEquals(b.next("web-1", now), 2000);
  // Per instance; forget() starts over.
  assertEquals(b.next("web-2", now), 1000);
  b.forget("web-1");
  assertEquals(b.next("web-1", now), 1000);
  // An unknown start (kattach was down) never resets.
  assertEquals(b.next("web-1", null), 2000);
});

import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { AuthThrottle } from "./ssh_server.ts";

Deno.test("AuthThrottle: the delay doubles per failure from one address, capped", () => {
  let now = 0;
  const t = new AuthThrottle({ baseMs: 100, maxMs: 1000, forgetMs: 60_000, now: () => now });
  assertEquals([1, 2, 3, 4, 5, 6].map(() => t.fail("10.0.0.1")), [100, 200, 400, 800, 1000, 1000]);
  assertEquals(t.fail("10.0.0.2"), 100); // another address starts afresh
  assertEquals(t.failures("10.0.0.1"), 6);
  now += 59_000;
  assertEquals(t.fail("10.0.0.1"), 1000); // still remembered
  now += 61_000;
  assertEquals(t.failures("10.0.0.1"), 0); // forgotten after a quiet minute
  assertEquals(t.fail("10.0.0.1"), 100);
});

Deno.test("AuthThrottle: a successful login forgets the failures", () => {
  const t = new AuthThrottle({ baseMs: 10, maxMs: 1000 });
  t.fail("a");
  t.fail("a");
  t.succeed("a");
  assertEquals(t.failures("a"), 0);
  assertEquals(t.fail("a"), 10);
});

Deno.test("AuthThrottle: memory is bounded by evicting the oldest address", () => {
  const t = new AuthThrottle({ baseMs: 10, maxEntries: 3 });
  for (const a of ["a", "b", "c", "d"]) t.fail(a);
  assertEquals(["a", "b", "c", "d"].map((a) => t.failures(a)), [0, 1, 1, 1]);
});

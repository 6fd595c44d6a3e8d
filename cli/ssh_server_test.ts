import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { AuthThrottle, rsaKeyBits, Semaphore } from "./ssh_server.ts";

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

Deno.test("AuthThrottle.begin: an attempt counts at once; its delay is what earlier ones earned", () => {
  const t = new AuthThrottle({ baseMs: 100, maxMs: 1000 });
  assertEquals([1, 2, 3, 4, 5, 6].map(() => t.begin("a")), [0, 100, 200, 400, 800, 1000]);
  assertEquals(t.failures("a"), 6); // none succeeded: all count
  t.succeed("a");
  assertEquals(t.begin("a"), 0);
});

Deno.test("Semaphore: never more than the limit at once, in order", async () => {
  const s = new Semaphore(2);
  const order: number[] = [];
  await Promise.all([0, 1, 2, 3, 4].map((i) =>
    s.run(async () => {
      await new Promise((r) => setTimeout(r, 5));
      order.push(i);
    })
  ));
  assertEquals(s.peak, 2);
  assertEquals(order.length, 5);
});

Deno.test("rsaKeyBits reads the modulus size of an SSH RSA public key blob", () => {
  const blob = (bits: number) => {
    const n = new Uint8Array(bits / 8 + 1);
    n[1] = 0x80; // top bit set: the mpint gets a leading zero
    const parts = [new TextEncoder().encode("ssh-rsa"), new Uint8Array([1, 0, 1]), n];
    const out = new Uint8Array(parts.reduce((a, p) => a + 4 + p.length, 0));
    let off = 0;
    for (const p of parts) {
      new DataView(out.buffer).setUint32(off, p.length);
      out.set(p, off + 4);
      off += 4 + p.length;
    }
    return out;
  };
  assertEquals(rsaKeyBits(blob(1024)), 1024);
  assertEquals(rsaKeyBits(blob(2048)), 2048);
  assertEquals(rsaKeyBits(new Uint8Array([0, 0, 0, 3, 1, 2, 3])), 0);
});

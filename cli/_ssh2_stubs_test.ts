import { deepStrictEqual as assertEquals, throws as assertThrows } from "node:assert/strict";
import * as nodeAssert from "node:assert";
import { constants } from "node:zlib";
import { SSH2_STUBS, SSH2_STUBS_KEY } from "./_ssh2_stubs.ts";

// What the sshd's bundle (buildroot/appliance/bundle-front-ends) answers ssh2's require() of
// SFTP, poly1305, bcrypt-pbkdf and node:zlib with (each entry throws a clear error; what ssh2
// reads at its start is there) and asn1's node:assert with (a stand-in that acts as Node's).
// tests/front_end_bundles_test.ts runs the bundle with them.

const LEFT_OUT = /is left out of this sshd \(.+; cli\/_ssh2_stubs\.ts\): a bug if reached/;

// deno-lint-ignore no-explicit-any
const stub = (id: string) => SSH2_STUBS[id] as any;

Deno.test("ssh2 stubs: registered where the bundle's require() looks", () => {
  assertEquals((globalThis as Record<symbol, unknown>)[SSH2_STUBS_KEY], SSH2_STUBS);
  assertEquals(Object.keys(SSH2_STUBS).sort(), [
    "./crypto/poly1305.js",
    "./protocol/SFTP.js",
    "bcrypt-pbkdf",
    "node:assert",
    "node:zlib",
  ]);
});

Deno.test("ssh2 stubs: SFTP throws when built", () => {
  const { SFTP } = stub("./protocol/SFTP.js");
  assertThrows(
    () => new SFTP(),
    (e: Error) => /ssh2's SFTP/.test(e.message) && LEFT_OUT.test(e.message),
  );
});

Deno.test("ssh2 stubs: poly1305 starts as ssh2's crypto.js starts it; its auth throws", async () => {
  const mod = await stub("./crypto/poly1305.js")();
  assertEquals(typeof mod._malloc(16), "number");
  const auth = mod.cwrap("poly1305_auth", null, ["number", "array"]);
  assertThrows(
    () => auth(0, [], 0, [], 0, []),
    (e: Error) => /chacha20-poly1305/.test(e.message) && LEFT_OUT.test(e.message),
  );
});

Deno.test("ssh2 stubs: bcrypt-pbkdf throws", () => {
  assertThrows(
    () => stub("bcrypt-pbkdf").pbkdf("pw", 2, new Uint8Array(16), 16, new Uint8Array(48), 48, 16),
    (e: Error) => /passphrase/.test(e.message) && LEFT_OUT.test(e.message),
  );
});

Deno.test("ssh2 stubs: zlib's constants are Node's; its handle throws when built", () => {
  const zlib = stub("node:zlib");
  for (const [name, value] of Object.entries(zlib.constants)) {
    assertEquals(value, (constants as Record<string, unknown>)[name], name);
  }
  const ZlibHandle = zlib.createInflate()._handle.constructor;
  assertThrows(
    () => new ZlibHandle(2),
    (e: Error) => /compression/.test(e.message) && LEFT_OUT.test(e.message),
  );
});

Deno.test("ssh2 stubs: node:assert's stand-in passes and throws as node:assert does for asn1", () => {
  const standIn = stub("node:assert");
  const outcome = (fn: () => void) => {
    try {
      fn();
      return "passed";
    } catch (e) {
      const err = e as Error & { code?: string };
      return `${err.name} ${err.code} ${err.message.split("\n")[0]}`;
    }
  };
  const values = [undefined, null, 0, 1, "", "x", "1", NaN, {}, true, false, 4n];
  for (const v of values) {
    for (const message of [undefined, "it failed"]) {
      const ok = outcome(() => standIn.ok(v, message));
      const real = outcome(() => nodeAssert.ok(v, message));
      // Node words its own message after the source text; the outcome and the given one match.
      assertEquals(ok === "passed", real === "passed", `ok(${String(v)})`);
      if (message || ok === "passed") assertEquals(ok, real, `ok(${String(v)}, ${message})`);
      assertEquals(outcome(() => standIn(v, message)), ok);
      for (const w of values) {
        const eq = outcome(() => standIn.equal(v, w, "differ"));
        assertEquals(
          eq,
          outcome(() => nodeAssert.equal(v, w, "differ")),
          `${String(v)} == ${String(w)}`,
        );
      }
    }
  }
});

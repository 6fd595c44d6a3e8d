/** Unit test of lib/lazy_crypto.ts. */
import { equal as assertEquals, strictEqual as assertStrictEquals } from "node:assert/strict";
import * as staticCrypto from "node:crypto";
import { nodeCrypto } from "./lazy_crypto.ts";

Deno.test("lazy_crypto: the same node:crypto a static import gives, loaded once", () => {
  const c = nodeCrypto();
  assertStrictEquals(c.createHash, staticCrypto.createHash);
  assertStrictEquals(nodeCrypto(), c);
  assertEquals(
    c.createHash("sha256").update("abc").digest("hex"),
    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
  );
});

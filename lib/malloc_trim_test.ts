/**
 * malloc_trim through FFI on this glibc machine: it is found and called, and a burst of
 * trimMallocSoon calls trims once. (What it saves is a figure: bench/scale.ts.)
 */
import assert from "node:assert/strict";
import { trimMalloc, trimMallocSoon } from "./malloc_trim.ts";

Deno.test("trimMalloc: calls glibc's malloc_trim; trimMallocSoon once for a burst", async () => {
  assert.equal(trimMalloc(), true);
  assert.equal(trimMalloc(), true); // the library stays open
  for (let i = 0; i < 50; i++) trimMallocSoon(20); // one timer for the burst, not fifty
  await new Promise((r) => setTimeout(r, 60)); // it has run: no timer is left behind
});

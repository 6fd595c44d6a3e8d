import assert from "node:assert/strict";
import { resolve } from "node:path";
import fc from "fast-check";
import { absolutePath } from "./boot.ts";

Deno.test("absolutePath: what node:path's resolve makes of one path", () => {
  const part = fc.constantFrom("a", "b c", ".", "..", "", ".x", "x..", "%20", "ä");
  fc.assert(
    fc.property(fc.boolean(), fc.array(part, { maxLength: 6 }), (rooted, parts) => {
      const path = (rooted ? "/" : "") + parts.join("/");
      assert.equal(absolutePath(path), resolve(path), JSON.stringify(path));
    }),
    { numRuns: 2000 },
  );
  assert.equal(absolutePath("/var/lib/kaos/"), "/var/lib/kaos");
  assert.equal(absolutePath("state"), `${Deno.cwd()}/state`);
});

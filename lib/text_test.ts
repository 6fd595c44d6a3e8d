import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { stripControls, stripControlsLine } from "./text.ts";

Deno.test("stripControls: escapes, bells, carriage returns, C1 and bidi overrides go", () => {
  const hostile = "ok\x1b]0;owned\x07 \x1b[2J\x1b[31mred\x1b[0m\rfake\x9b31m \u202eevil\u202c\x7f";
  assertEquals(stripControls(hostile), "ok]0;owned [2J[31mred[0mfake31m evil");
  assertEquals(stripControls("two\nlines\tand a tab"), "two\nlines\tand a tab");
  assertEquals(stripControlsLine("two\nlines\tand a tab"), "twolinesand a tab");
  assertEquals(stripControls("ünïcødé ✓ 日本"), "ünïcødé ✓ 日本");
});

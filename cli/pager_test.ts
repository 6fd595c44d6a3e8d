import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { Pager } from "./pager.ts";

function lines(n: number, from = 1): string {
  return Array.from({ length: n }, (_, i) => `line ${i + from}\n`).join("");
}

Deno.test("Pager: output within a page is written as it comes and nothing is asked", async () => {
  let out = "";
  const pager = new Pager((t) => out += t, 5);
  pager.write("line 1\nline ");
  pager.write("2\n");
  assertEquals(out, "line 1\nline 2\n");
  const asked: number[] = [];
  assertEquals(await pager.finish((s) => (asked.push(s), Promise.resolve(true))), true);
  assertEquals(asked, []);
});

Deno.test("Pager: 10,000 lines are shown a page at a time while the operator asks for more", async () => {
  let out = "";
  const pager = new Pager((t) => out += t, 40);
  const text = lines(10_000);
  pager.write(text.slice(0, 12_345)); // chunks split lines anywhere
  pager.write(text.slice(12_345));
  assertEquals(out, lines(40));
  const asked: [number, number][] = [];
  const all = await pager.finish((shown, total) => {
    asked.push([shown, total]);
    return Promise.resolve(asked.length < 3);
  });
  assertEquals(all, false);
  assertEquals(asked, [[40, 10_000], [80, 10_000], [120, 10_000]]);
  assertEquals(out, lines(120));
});

Deno.test("Pager: every held line is shown when the operator always wants more", async () => {
  let out = "";
  const pager = new Pager((t) => out += t, 3);
  pager.write(lines(7));
  assertEquals(await pager.finish(() => Promise.resolve(true)), true);
  assertEquals(out, lines(7));
});

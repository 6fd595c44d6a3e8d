import { assertEquals } from "./_assert.ts";
import { LineSplitter } from "./_line_splitter.ts";

const bytes = (s: string) => new TextEncoder().encode(s);

Deno.test("LineSplitter joins fragments and splits coalesced lines", () => {
  const s = new LineSplitter();
  assertEquals(s.push(bytes('{"a"')), { lines: [], overflowed: false });
  assertEquals(s.push(bytes(': 1}\r\n{"b": 2}\r\n\r\n{"c"')), {
    lines: ['{"a": 1}', '{"b": 2}'],
    overflowed: false,
  });
  assertEquals(s.push(bytes(": 3}\r")).lines, []);
  assertEquals(s.push(bytes("\n")).lines, ['{"c": 3}']);
  assertEquals(s.push(bytes("plain LF\n")).lines, ["plain LF"]);
});

Deno.test("LineSplitter keeps a UTF-8 character split across chunks intact", () => {
  const s = new LineSplitter();
  const all = bytes('{"desc": "gr\u00fc\u00df \u2603"}\r\n');
  const lines: string[] = [];
  for (const b of all) lines.push(...s.push(new Uint8Array([b])).lines);
  assertEquals(lines, ['{"desc": "gr\u00fc\u00df \u2603"}']);
});

Deno.test("LineSplitter drops an over-long line once and recovers at its end", () => {
  const s = new LineSplitter({ maxLineLength: 10 });
  assertEquals(s.push(bytes("x".repeat(11))), { lines: [], overflowed: true });
  assertEquals(s.push(bytes("y".repeat(20))), { lines: [], overflowed: false });
  assertEquals(s.push(bytes("zz\nok\n")), { lines: ["ok"], overflowed: false });
});

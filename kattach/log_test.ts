/** Tests of kattach's log book: the file, rotation, tail across rotated files, follow. */
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { LogBook } from "./log.ts";

const at = () => new Date("2026-01-02T03:04:05.678Z");

Deno.test("lines logged before the file opens are written first; sinks get them untimestamped", async () => {
  const dir = await Deno.makeTempDir({ prefix: "kaos-log-" });
  try {
    const seen: string[] = [];
    const book = new LogBook({ sinks: [(l) => seen.push(l)], now: at });
    book.write("early");
    book.open(`${dir}/log`);
    book.write("late\x1b[2Jline");
    book.close();
    assertEquals(seen, ["early", "late [2Jline"]);
    assertEquals(
      await Deno.readTextFile(`${dir}/log/kattach.log`),
      "2026-01-02T03:04:05Z early\n2026-01-02T03:04:05Z late [2Jline\n",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the file is rotated at its size bound, keeps N old files, and tail reads across them", async () => {
  const dir = await Deno.makeTempDir({ prefix: "kaos-log-" });
  try {
    const book = new LogBook({ maxBytes: 200, keep: 2, now: at });
    book.open(dir);
    for (let i = 0; i < 40; i++) book.write(`line ${String(i).padStart(2, "0")}`); // 29 bytes each
    const sizes = ["kattach.log", "kattach.log.1", "kattach.log.2"].map((f) =>
      Deno.statSync(`${dir}/${f}`).size
    );
    assert(sizes.every((s) => s <= 200), `sizes ${sizes}`);
    assert(
      !(() => {
        try {
          Deno.statSync(`${dir}/kattach.log.3`);
          return true;
        } catch {
          return false;
        }
      })(),
      "only 2 rotated files are kept",
    );
    const last = await book.tail(10);
    assertEquals(
      last.map((l) => l.slice(21)),
      Array.from({ length: 10 }, (_, i) => `line ${30 + i}`),
    );
    const all = await book.tail(1000);
    assertEquals(all.at(-1), "2026-01-02T03:04:05Z line 39");
    assert(all.length < 40 && all.length >= 12, `${all.length} lines kept`);
    book.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("follow delivers new lines until its signal aborts", async () => {
  const book = new LogBook({ now: at });
  const got: string[] = [];
  const stop = new AbortController();
  const following = book.follow((l) => got.push(l), stop.signal);
  book.write("one");
  book.write("two");
  stop.abort();
  await following;
  book.write("three");
  assertEquals(got, ["2026-01-02T03:04:05Z one", "2026-01-02T03:04:05Z two"]);
});

import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { lastLogLines, LogTail, rotateAppendLog, rotatedLogPath } from "./append_log.ts";

Deno.test("LogTail: reads only what was added, cuts long lines, starts over after rotation", async () => {
  const dir = await Deno.makeTempDir({ prefix: "kaos_tail_" });
  try {
    const path = `${dir}/serial.log`;
    await Deno.writeTextFile(path, "old boot\n");
    const tail = new LogTail(path, { from: 9, maxLineChars: 10 });
    assertEquals(tail.changed(), false);
    await Deno.writeTextFile(path, "one\r\ntw", { append: true });
    assertEquals(tail.changed(), true);
    assertEquals(await Array.fromAsync(tail.lines()), ["one"]);
    assertEquals(tail.changed(), false); // the partial "tw" is read, kept for its line end
    await Deno.writeTextFile(path, "o\n" + "x".repeat(50) + "\nthree\n", { append: true });
    assertEquals(await Array.fromAsync(tail.lines()), ["two", "x".repeat(10), "three"]);
    assertEquals(await Array.fromAsync(tail.lines()), []);
    assertEquals(tail.bytesRead, (await Deno.stat(path)).size - 9); // each byte read once
    assertEquals(await rotateAppendLog(path, { maxBytes: 20 }), 9 + 7 + 2 + 51 + 6);
    assertEquals((await Deno.readTextFile(rotatedLogPath(path))).length, 20);
    assertEquals(tail.changed(), true); // smaller than read: rotated
    await Deno.writeTextFile(path, "after\n", { append: true });
    assertEquals(await tail.find((l) => l.startsWith("aft")), "after");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a flooding writer: the log stays bounded and is read incrementally", async () => {
  const dir = await Deno.makeTempDir({ prefix: "kaos_flood_" });
  const path = `${dir}/serial.log`;
  const maxBytes = 256 * 1024;
  // `>>` opens the log O_APPEND, as QEMU's chardev logfile does; yes(1) writes as fast as it can.
  const writer = new Deno.Command("sh", {
    args: ["-c", `exec yes kaos-flood-line >> '${path}'`],
    stdout: "null",
    stderr: "null",
  }).spawn();
  try {
    const tail = new LogTail(path);
    let truncated = 0;
    let rotations = 0;
    let lines = 0;
    let odd = 0;
    const deadline = Date.now() + 60_000;
    while (rotations < 5) {
      assert(Date.now() < deadline, `5 rotations within 60 s (saw ${rotations})`);
      await new Promise((r) => setTimeout(r, 20));
      try {
        for await (const line of tail.lines()) {
          lines++;
          if (line !== "kaos-flood-line") odd++;
        }
      } catch (err) {
        if (!(err instanceof Deno.errors.NotFound)) throw err; // the writer has not opened it yet
      }
      const size = await rotateAppendLog(path, { maxBytes });
      if (size > 0) rotations++;
      truncated += size;
    }
    writer.kill("SIGKILL");
    await writer.status;
    for await (const line of tail.lines()) if (line !== "kaos-flood-line") odd++;
    const last = await rotateAppendLog(path, { maxBytes });
    truncated += last;
    const live = (await Deno.stat(path)).size;
    assert(live <= maxBytes, `the live log holds ${live} bytes, at most ${maxBytes}`);
    assertEquals((await Deno.stat(rotatedLogPath(path))).size, maxBytes);
    assertEquals(odd, 0); // whole lines only
    assert(lines > 0);
    // Incremental: nothing was read twice (every byte read had passed through the live log).
    assert(tail.bytesRead <= truncated + live, `${tail.bytesRead} > ${truncated + live}`);
  } finally {
    try {
      writer.kill("SIGKILL");
    } catch { /* gone */ }
    await writer.status;
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("lastLogLines: the end of the log, then of its rotated copy; a window cuts no line", async () => {
  const dir = await Deno.makeTempDir({ prefix: "kaos-append-log-" });
  try {
    const path = `${dir}/serial.log`;
    assertEquals(await lastLogLines(path, 5), []); // never written
    await Deno.writeTextFile(rotatedLogPath(path), "old 1\nold 2\n");
    await Deno.writeTextFile(path, "new 1\r\nnew 2\nnew 3 (no end yet)");
    assertEquals(await lastLogLines(path, 2), ["new 2", "new 3 (no end yet)"]);
    assertEquals(await lastLogLines(path, 4), ["old 2", "new 1", "new 2", "new 3 (no end yet)"]);
    assertEquals(await lastLogLines(path, 50), [
      "old 1",
      "old 2",
      "new 1",
      "new 2",
      "new 3 (no end yet)",
    ]);
    // A window of the last 25 bytes starts inside "new 1\r\n": that line goes, no piece of it.
    assertEquals(await lastLogLines(path, 2, { maxBytes: 25 }), ["new 2", "new 3 (no end yet)"]);
    assertEquals(await lastLogLines(path, 3, { maxBytes: 25 }), [
      "old 2",
      "new 2",
      "new 3 (no end yet)",
    ]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

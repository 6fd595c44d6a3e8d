import { deepStrictEqual as assertEquals, ok as assert, rejects } from "node:assert/strict";
import { PassThrough } from "node:stream";
import { Buffer } from "node:buffer";
import { input, select } from "@inquirer/prompts";
import { crlf, forwardWriter, Terminal } from "./terminal.ts";

const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
const bytes = (s: string) => new TextEncoder().encode(s);

/** A fake channel: what the client types goes in `keys`, what the terminal prints lands in `screen`. */
function fakeChannel() {
  const keys = new PassThrough();
  const out = new PassThrough();
  let screen = "";
  out.on("data", (chunk: Buffer) => screen += chunk.toString("utf8"));
  return { keys, out, screen: () => screen };
}

/** Waits until the screen shows `needle` (the prompts render asynchronously). */
async function shown(screen: () => string, needle: string): Promise<void> {
  for (let i = 0; i < 200 && !screen().includes(needle); i++) {
    await new Promise((r) => setTimeout(r, 10));
  }
  assert(screen().includes(needle), `${needle} not in ${JSON.stringify(screen())}`);
}

Deno.test("crlf turns lone LF into CRLF, also across chunk boundaries", () => {
  assertEquals(text(crlf(bytes("a\nb\r\nc\n\n"))), "a\r\nb\r\nc\r\n\r\n");
  assertEquals(text(crlf(bytes("\nx"), true)), "\nx");
  assertEquals(text(crlf(bytes("\nx"), false)), "\r\nx");
  const same = bytes("no newline");
  assertEquals(crlf(same), same);
});

Deno.test("forwardWriter converts, and ending it leaves the sink open", async () => {
  const sink = new PassThrough();
  let got = "";
  sink.on("data", (c: Buffer) => got += c.toString());
  const w = forwardWriter(sink);
  w.write("one\r");
  w.write("\ntwo\n");
  await new Promise<void>((r) => w.end(r));
  assertEquals(got, "one\r\ntwo\r\n");
  assert(!sink.writableEnded);
  const raw = forwardWriter(sink, { crlf: false });
  await new Promise<void>((r) => raw.end("x\n", r));
  assertEquals(got, "one\r\ntwo\r\nx\n");
});

Deno.test("two inquirer prompts run one after another on one terminal", async () => {
  const ch = fakeChannel();
  const term = new Terminal(ch.keys, ch.out, { columns: 90, rows: 20, term: "xterm" });
  const choice = term.prompt((ctx) => select({ message: "Pick", choices: ["a", "b", "c"] }, ctx));
  await shown(ch.screen, "Pick");
  ch.keys.write("\x1b[B"); // arrow down
  ch.keys.write("\r");
  assertEquals(await choice, "b");
  const name = term.prompt((ctx) => input({ message: "Name" }, ctx));
  await shown(ch.screen, "Name");
  ch.keys.write("zed\r");
  assertEquals(await name, "zed");
  assert(!ch.out.writableEnded, "the channel stays open after the prompts");
  assert(!ch.screen().replaceAll("\r\n", "").includes("\n"), "every newline went out as CRLF");
  term.write("bye\n");
  await shown(ch.screen, "bye\r\n");
  term.close();
});

Deno.test("keys typed between prompts reach the next prompt (type-ahead)", async () => {
  const ch = fakeChannel();
  const term = new Terminal(ch.keys, ch.out);
  ch.keys.write("early\r");
  await new Promise((r) => setTimeout(r, 10));
  assertEquals(await term.prompt((ctx) => input({ message: "Q" }, ctx)), "early");
  term.close();
});

Deno.test("resize updates the size, tells listeners and prompts see the new width", () => {
  const ch = fakeChannel();
  const term = new Terminal(ch.keys, ch.out, { columns: 0, rows: 0 });
  assertEquals([term.columns, term.rows], [80, 24]);
  const seen: string[] = [];
  const off = term.onResize((s) => seen.push(`${s.columns}x${s.rows}`));
  term.resize(132, 43);
  term.resize(132, 43); // no change, no event
  off();
  term.resize(100, 30);
  assertEquals(seen, ["132x43"]);
  const ctx = term.newPromptContext();
  assertEquals((ctx.output as unknown as { columns: number }).columns, 100);
  term.close();
});

Deno.test("closing the terminal aborts a running prompt", async () => {
  const ch = fakeChannel();
  const term = new Terminal(ch.keys, ch.out);
  const pending = term.prompt((ctx) => input({ message: "Q" }, ctx));
  await shown(ch.screen, "Q");
  ch.keys.end(); // the client left
  await rejects(pending, (err: Error) => err.name === "AbortPromptError");
  assert(term.closed);
});

Deno.test("raw mode is switched on for a prompt and off after it", async () => {
  const ch = fakeChannel();
  const modes: boolean[] = [];
  const term = new Terminal(ch.keys, ch.out, { setRawMode: (on) => modes.push(on) });
  const pending = term.prompt((ctx) => input({ message: "Q" }, ctx));
  await shown(ch.screen, "Q");
  ch.keys.write("x\r");
  assertEquals(await pending, "x");
  assertEquals(modes[0], true);
  assertEquals(modes.at(-1), false);
  term.close();
});

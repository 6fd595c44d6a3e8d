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

/** Settles with the prompt's answer or error name, or "still waiting" after `ms` (a deadline). */
function outcome<T>(prompt: Promise<T>, ms = 3000): Promise<string> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<string>((r) => timer = setTimeout(() => r("still waiting"), ms));
  const settled = prompt.then((v) => `answer ${v}`, (err: Error) => err.name);
  return Promise.race([settled, late]).finally(() => clearTimeout(timer));
}

Deno.test("two Ctrl-C in one chunk cancel two prompts in a row, not one", async () => {
  const ch = fakeChannel();
  const term = new Terminal(ch.keys, ch.out);
  const first = term.prompt((ctx) => select({ message: "Inner", choices: ["a", "b"] }, ctx));
  await shown(ch.screen, "Inner");
  ch.keys.write("\x03\x03");
  assertEquals(await outcome(first), "ExitPromptError");
  const second = term.prompt((ctx) => select({ message: "Outer", choices: ["c", "d"] }, ctx));
  assertEquals(await outcome(second), "ExitPromptError", "the second Ctrl-C was lost");
  term.close();
});

Deno.test("Ctrl-C twice in separate chunks while the first prompt closes: both count", async () => {
  const ch = fakeChannel();
  const term = new Terminal(ch.keys, ch.out);
  const first = term.prompt((ctx) => select({ message: "Inner", choices: ["a", "b"] }, ctx));
  await shown(ch.screen, "Inner");
  // Two SSH packets read in one go arrive as two data events in the same turn.
  ch.keys.emit("data", Buffer.from("\x03"));
  ch.keys.emit("data", Buffer.from("\x03"));
  assertEquals(await outcome(first), "ExitPromptError");
  const second = term.prompt((ctx) => select({ message: "Outer", choices: ["c", "d"] }, ctx));
  assertEquals(await outcome(second), "ExitPromptError", "the second Ctrl-C was lost");
  term.close();
});

Deno.test("keys after Enter in the same chunk go to the next prompt", async () => {
  const ch = fakeChannel();
  const term = new Terminal(ch.keys, ch.out);
  const first = term.prompt((ctx) => input({ message: "First" }, ctx));
  await shown(ch.screen, "First");
  ch.keys.write("one\rtwo\r\x1b[B\r");
  assertEquals(await outcome(first), "answer one");
  const second = term.prompt((ctx) => input({ message: "Second" }, ctx));
  assertEquals(await outcome(second), "answer two");
  const third = term.prompt((ctx) => select({ message: "Third", choices: ["c", "d"] }, ctx));
  assertEquals(await outcome(third), "answer d");
  term.close();
});

Deno.test("an input that stops at a byte takes nothing after it; the rest goes to the next", async () => {
  const ch = fakeChannel();
  const term = new Terminal(ch.keys, ch.out);
  const raw = term.openInput({ stopAt: 0x1d });
  let got = "";
  raw.on("data", (c: Buffer) => got += c.toString("latin1"));
  ch.keys.write("ls\r\x1dnext\r");
  ch.keys.write("more");
  await new Promise((r) => setTimeout(r, 20));
  assertEquals(got, "ls\r\x1d");
  const after = term.prompt((ctx) => input({ message: "After" }, ctx));
  assertEquals(await outcome(after), "answer next");
  term.close();
});

Deno.test("CR LF in one chunk is one Enter: the next prompt does not get an empty answer", async () => {
  const ch = fakeChannel();
  const term = new Terminal(ch.keys, ch.out);
  const first = term.prompt((ctx) => input({ message: "First" }, ctx));
  await shown(ch.screen, "First");
  ch.keys.write("one\r\ntwo\r\n");
  assertEquals(await outcome(first), "answer one");
  const second = term.prompt((ctx) => input({ message: "Second" }, ctx));
  assertEquals(await outcome(second), "answer two");
  term.close();
});

/**
 * A scripted in-memory terminal for menu tests: a real cli Terminal on PassThrough streams,
 * with helpers to wait for output and type keys.
 */
import { PassThrough } from "node:stream";
import { Terminal } from "../cli/terminal.ts";

// deno-lint-ignore no-control-regex
const ANSI = /\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][A-Z0-9]|\x1b[=>]/g;

/** A Terminal on in-memory streams, with helpers to wait for output and type keys. */
export class Scripted {
  input: PassThrough = new PassThrough();
  output: PassThrough = new PassThrough();
  terminal: Terminal = new Terminal(this.input, this.output, { columns: 100, rows: 40 });
  raw = "";
  #waitMs: number;
  #waiters = new Set<() => void>();

  /** `waitMs` bounds each {@linkcode waitFor} (default 20 s). */
  constructor(options: { waitMs?: number } = {}) {
    this.#waitMs = options.waitMs ?? 20_000;
    this.output.on("data", (c: Uint8Array) => {
      this.raw += new TextDecoder().decode(c);
      for (const w of [...this.#waiters]) w();
    });
  }

  /** The output so far without escape sequences, lines ending in \n. */
  get text(): string {
    return this.raw.replace(ANSI, "").replaceAll("\r\n", "\n");
  }

  /** Waits until `re` matches the output after position `from`. */
  async waitFor(re: RegExp | string, from = 0): Promise<void> {
    const ok = () => {
      const t = this.text.slice(from);
      return typeof re === "string" ? t.includes(re) : re.test(t);
    };
    if (ok()) return;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiters.delete(check);
        reject(new Error(`timed out waiting for ${re}; output:\n${this.text.slice(-3000)}`));
      }, this.#waitMs);
      const check = () => {
        if (!ok()) return;
        clearTimeout(timer);
        this.#waiters.delete(check);
        resolve();
      };
      this.#waiters.add(check);
    });
  }

  /** Types keys and waits for the output to settle. */
  async keys(text: string): Promise<void> {
    const before = this.raw.length;
    this.input.write(text);
    for (let i = 0; i < 50 && this.raw.length === before; i++) {
      await new Promise((r) => setTimeout(r, 10));
    }
    await new Promise((r) => setTimeout(r, 30));
  }

  /** The highlighted entry of the last select drawn. */
  active(): string {
    const t = this.text;
    const at = t.lastIndexOf("❯");
    if (at === -1) return "";
    const end = t.indexOf("\n", at);
    return t.slice(at + 1, end === -1 ? undefined : end).trim();
  }

  /** Waits for a select, moves its cursor (top first, then down) to `label`; presses Enter. */
  async choose(label: string): Promise<void> {
    await this.waitFor("❯");
    for (let i = 0, last = ""; i < 60 && !this.active().startsWith(label); i++) {
      last = this.active();
      await this.keys("\x1b[A");
      if (this.active() === last) break; // at the top
    }
    for (let i = 0; i < 60; i++) {
      if (this.active().startsWith(label)) {
        await this.keys("\r");
        return;
      }
      await this.keys("\x1b[B");
    }
    throw new Error(`no entry ${label}; last: ${this.active()}\n${this.text.slice(-2000)}`);
  }

  /** Types a line into an input prompt. */
  async line(text: string): Promise<void> {
    if (text) await this.keys(text);
    await this.keys("\r");
  }
}

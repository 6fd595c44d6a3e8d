/**
 * A scripted in-memory terminal for menu tests: a real cli Terminal on PassThrough streams,
 * with helpers to wait for output and type keys.
 */
import { PassThrough } from "node:stream";
import { Terminal } from "../cli/terminal.ts";
import { chooseOnScreen, screenSelect } from "./_util.ts";

// deno-lint-ignore no-control-regex
const REDRAW = /\x1b\[\d*[AG]/g;
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

  /**
   * Like {@linkcode text}, but a redraw (cursor up or to column 1) starts a new line, so that each
   * prompt line starts one: "? " waiting, "✔ " answered.
   */
  get lines(): string {
    return this.raw.replace(REDRAW, "\n").replace(ANSI, "").replaceAll("\r\n", "\n");
  }

  /** Waits until `re` matches the output after position `from`. */
  waitFor(re: RegExp | string, from = 0): Promise<void> {
    return this.#until(() => {
      const t = this.text.slice(from);
      return typeof re === "string" ? t.includes(re) : re.test(t);
    }, () => String(re));
  }

  /**
   * Waits until the output ends with the select titled `title` waiting for a key: the page a key
   * leads to, so that the next key goes there and not to the page before.
   */
  waitForSelect(title: string): Promise<void> {
    return this.#until(
      () => screenSelect(this.lines)?.title === title,
      () => `the select ${JSON.stringify(title)}`,
    );
  }

  /** Waits until `ok()` holds after some output, for at most `waitMs`. */
  async #until(ok: () => boolean, describe: () => string): Promise<void> {
    if (ok()) return;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiters.delete(check);
        reject(
          new Error(`timed out waiting for ${describe()}; output:\n${this.text.slice(-3000)}`),
        );
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

  /** The highlighted entry of the select waiting for a key ("" when none waits). */
  active(): string {
    const select = screenSelect(this.lines);
    return select ? select.entries[select.active] : "";
  }

  /** Moves a select's cursor to `label`, one key at a time as the output shows it; Enter. */
  choose(label: string): Promise<void> {
    const keys = { up: "\x1b[A", down: "\x1b[B", enter: "\r" } as const;
    return chooseOnScreen(label, {
      screen: () => this.lines,
      press: (key) => {
        this.input.write(keys[key]);
        return Promise.resolve();
      },
      timeoutMs: this.#waitMs,
    });
  }

  /**
   * From a page one level below the top: Ctrl+C back to the top page, then Log out; waits for
   * `menus` (what runMenus returned) to end.
   */
  async logOut(menus: Promise<void>): Promise<void> {
    await this.keys("\x03");
    await this.waitForSelect("KaOS");
    await this.choose("Log out");
    await menus;
  }

  /** Types a line into an input prompt. */
  async line(text: string): Promise<void> {
    if (text) await this.keys(text);
    await this.keys("\r");
  }
}

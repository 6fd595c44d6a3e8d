/**
 * The appliance's serial port through QEMU's unix socket (scripts/run-appliance --serial-socket),
 * for image tests that drive what a user at a serial terminal gets: GRUB's boot menu and the
 * console menus. Everything read is kept; escape sequences are stripped for matching.
 */
import { chooseOnScreen, waitFor } from "./_util.ts";

// deno-lint-ignore no-control-regex
const REDRAW = /\x1b\[\d*[AG]/g;
// deno-lint-ignore no-control-regex
const ANSI = /\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][A-Z0-9]|\x1b[=>]/g;

/** How long one step on the serial console may take (TCG on a busy 2-core machine). */
export const SERIAL_STEP_MS = 300_000;

/** The appliance's serial port: read everything, type keys. */
export class SerialConsole {
  #raw = "";
  #conn: Deno.UnixConn;
  #reading: Promise<void>;

  private constructor(conn: Deno.UnixConn) {
    this.#conn = conn;
    this.#reading = (async () => {
      const dec = new TextDecoder();
      const buf = new Uint8Array(16384);
      while (true) {
        const n = await conn.read(buf).catch(() => null);
        if (n === null) return;
        this.#raw += dec.decode(buf.subarray(0, n), { stream: true });
      }
    })();
  }

  /** Connects to QEMU's serial socket (retrying until it exists, at most 30 s). */
  static async connect(path: string): Promise<SerialConsole> {
    let conn: Deno.UnixConn | undefined;
    await waitFor(
      async () => {
        conn = await Deno.connect({ transport: "unix", path }).catch(() => undefined);
        return conn !== undefined;
      },
      () => `QEMU's serial socket ${path}`,
      { timeoutMs: 30_000 },
    );
    return new SerialConsole(conn!);
  }

  /** Every byte read so far (decoded). */
  get raw(): string {
    return this.#raw;
  }

  /** The output without escape sequences, lines ending in \n. */
  get text(): string {
    return this.#raw.replace(ANSI, "").replaceAll("\r\n", "\n").replaceAll("\r", "");
  }

  /**
   * Like {@linkcode text}, but a redraw (cursor up or to column 1) starts a new line, so that each
   * prompt line starts one: "? " waiting, "✔ " answered.
   */
  get lines(): string {
    return this.#raw.replace(REDRAW, "\n").replace(ANSI, "").replaceAll("\r", "");
  }

  /** Waits until the text from offset `from` on contains `re`. */
  async waitFor(re: RegExp | string, from = 0, timeoutMs = SERIAL_STEP_MS): Promise<void> {
    const ok = () => {
      const t = this.text.slice(from);
      return typeof re === "string" ? t.includes(re) : re.test(t);
    };
    await waitFor(ok, () => `${re} on the serial console; got:\n${this.text.slice(-2500)}`, {
      timeoutMs,
      intervalMs: 100,
    });
  }

  /** Sends bytes as they are, waiting for nothing. */
  async send(text: string): Promise<void> {
    await this.#conn.write(new TextEncoder().encode(text));
  }

  /**
   * Types keys, waits for the answer to start (up to 10 s: the appliance runs under TCG on a
   * busy machine), then until the output has been quiet for a second.
   */
  async keys(text: string): Promise<void> {
    const before = this.#raw.length;
    await this.send(text);
    for (let i = 0; i < 100 && this.#raw.length === before; i++) {
      await new Promise((r) => setTimeout(r, 100));
    }
    await this.settle();
  }

  /** Waits until the output has been quiet for a second (at most 30 s). */
  async settle(): Promise<void> {
    let last = -1;
    for (let i = 0; i < 30 && this.#raw.length !== last; i++) {
      last = this.#raw.length;
      await new Promise((r) => setTimeout(r, 1000));
    }
  }

  /** Types a line and Enter. */
  async line(text: string): Promise<void> {
    await this.keys(text + "\r");
  }

  /**
   * Waits for a menu select that waits for a key (not the page just answered: a slow redraw
   * under TCG once made a quiet second look like the next page), moves its cursor to `label`
   * one key at a time, each after the console showed the last, and presses Enter.
   */
  choose(label: string): Promise<void> {
    const keys = { up: "\x1b[A", down: "\x1b[B", enter: "\r" } as const;
    return chooseOnScreen(label, {
      screen: () => this.lines,
      press: (key) => this.send(keys[key]),
      timeoutMs: SERIAL_STEP_MS,
    });
  }

  /**
   * Picks the entry `title` of GRUB's boot menu, as a user at a serial terminal does: waits for
   * the menu's countdown, presses the down arrow (which stops the countdown) until GRUB
   * highlights `title` (its `*` marker), then Enter.
   */
  async bootEntry(title: string, from: number, timeoutMs = SERIAL_STEP_MS): Promise<void> {
    await this.waitFor("will be executed automatically in", from, timeoutMs);
    const highlighted = /\*(\S.*?) {2,}/; // GRUB pads each entry's line to the menu's width
    for (let i = 0; i < 10; i++) {
      const mark = this.text.length;
      await this.send("\x1b[B");
      await this.waitFor(highlighted, mark, 30_000);
      if (this.text.slice(mark).match(highlighted)![1] === title) return await this.send("\r");
    }
    throw new Error(`no boot entry "${title}" in GRUB's menu:\n${this.text.slice(from, -1)}`);
  }

  /** Closes the connection (QEMU keeps running). */
  async close(): Promise<void> {
    try {
      this.#conn.close();
    } catch { /* closed */ }
    await this.#reading;
  }
}

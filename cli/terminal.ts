/**
 * A Terminal wraps one interactive byte channel (an SSH channel with a pty, or the local tty):
 * keyboard input, an output writer that turns lone "\n" into "\r\n", the window size and resize
 * events, and fresh input/output wrappers for each @inquirer/prompts prompt, so prompts can run
 * one after another on the same channel (inquirer ends the output it is given when it is done).
 *
 * Keys are handed to the reader in order, and never to a reader that is done: after a key that may
 * end its reader (Enter, Ctrl-C) the rest waits one turn of the event loop, in which a prompt that
 * this key settled lets go of its input; what follows then goes to the next prompt. Without that,
 * a second Ctrl-C in the same SSH read reached the prompt the first one had just cancelled and
 * was lost (one menu level up instead of two).
 */
import { Buffer } from "node:buffer";
import { PassThrough, type Readable, Writable } from "node:stream";
import { clearImmediate, setImmediate } from "node:timers";
import process from "node:process";
import { isUserError, type UserError } from "../lib/errors.ts";

/** The window size of a terminal, in character cells. */
export interface TerminalSize {
  columns: number;
  rows: number;
}

/** How to build a Terminal. */
export interface TerminalOptions {
  /** Width in cells; 80 when unknown or zero. */
  columns?: number;
  /** Height in cells; 24 when unknown or zero. */
  rows?: number;
  /** The TERM name the client announced, e.g. "xterm-256color". */
  term?: string;
  /** Switches the underlying device into or out of raw mode (local tty only). */
  setRawMode?: (on: boolean) => void;
  /** Most bytes of keyboard input kept while no prompt reads (type-ahead); default 64 KiB. */
  maxBufferedInput?: number;
}

/** The second argument of an @inquirer/prompts prompt: its own input and output wrappers. */
export interface PromptContext {
  input: Readable;
  output: Writable;
  signal: AbortSignal;
  clearPromptOnDone: boolean;
}

/** How to open an input: see Terminal.openInput(). */
export interface InputOptions {
  /**
   * Makes the input a raw reader (the console) that takes every key up to and including this
   * byte (its detach key, Ctrl-]) and nothing after it: those keys are kept for the next reader,
   * however slow this one is to let go. Without it the reader is a prompt, which Enter or Ctrl-C
   * may end.
   */
  stopAt?: number;
}

/** A raw-mode input stream handed out by Terminal.openInput(). */
export type TerminalInput = PassThrough & {
  isRaw: boolean;
  setRawMode(on: boolean): TerminalInput;
};

const LF = 0x0a;
const CR = 0x0d;
const CTRL_C = 0x03;

/** Keys that may end the prompt that reads them: what follows waits until it has let go. */
function endsPrompt(byte: number): boolean {
  return byte === CR || byte === LF || byte === CTRL_C;
}

/** Returns `chunk` with every "\n" not preceded by "\r" turned into "\r\n". */
export function crlf(chunk: Uint8Array, previousWasCr = false): Uint8Array {
  let extra = 0;
  for (let i = 0; i < chunk.length; i++) {
    if (chunk[i] === LF && !(i === 0 ? previousWasCr : chunk[i - 1] === CR)) extra++;
  }
  if (extra === 0) return chunk;
  const out = new Uint8Array(chunk.length + extra);
  let j = 0;
  for (let i = 0; i < chunk.length; i++) {
    if (chunk[i] === LF && !(i === 0 ? previousWasCr : chunk[i - 1] === CR)) out[j++] = CR;
    out[j++] = chunk[i];
  }
  return out;
}

/**
 * A writer that forwards to `sink`, turning lone "\n" into "\r\n" unless `crlf` is false. Ending or
 * destroying it leaves `sink` open; its write callbacks wait for `sink` to accept the bytes.
 */
export function forwardWriter(sink: Writable, options: { crlf?: boolean } = {}): Writable {
  const convert = options.crlf ?? true;
  let lastWasCr = false;
  return new Writable({
    write(chunk, encoding, callback) {
      const bytes = toBytes(chunk, encoding);
      if (bytes.length === 0 || sink.destroyed || sink.writableEnded) return callback();
      const converted = convert ? crlf(bytes, lastWasCr) : bytes;
      lastWasCr = bytes[bytes.length - 1] === CR;
      if (sink.write(converted)) return callback();
      const done = () => {
        sink.off("drain", done);
        sink.off("close", done);
        callback();
      };
      sink.on("drain", done);
      sink.on("close", done);
    },
  });
}

/** Turns what Writable.write accepts into bytes. */
function toBytes(chunk: unknown, encoding?: BufferEncoding): Uint8Array {
  if (chunk instanceof Uint8Array) return chunk;
  return Buffer.from(String(chunk), encoding ?? "utf8");
}

/** An interactive terminal over one input stream and one output stream. */
export class Terminal {
  /** The output writer: converts lone "\n" to "\r\n"; ending it does not end the channel. */
  readonly output: Writable & { columns: number; rows: number; isTTY: boolean };
  /** The TERM name the client announced, or "" when unknown. */
  readonly term: string;
  #columns: number;
  #rows: number;
  #source: Readable;
  #sink: Writable;
  #lastWasCr = false;
  #resizeListeners = new Set<(size: TerminalSize) => void>();
  #active: TerminalInput | undefined;
  /** The active input's stop byte (see InputOptions), and whether it has gone out. */
  #stopAt: number | undefined;
  #stopped = false;
  /** Keys not handed out yet: typed while no input is open, or after a key that may end one. */
  #queue: Uint8Array[] = [];
  #queueBytes = 0;
  /** The prompt that got a key that may end it; the queue waits for it until the next turn. */
  #heldFor: TerminalInput | undefined;
  #heldUntil: ReturnType<typeof setImmediate> | undefined;
  #maxPending: number;
  #setRawMode: ((on: boolean) => void) | undefined;
  #abort = new AbortController();
  #onData = (chunk: unknown) => this.#deliver(toBytes(chunk));
  #onEnd = () => this.close();

  constructor(input: Readable, output: Writable, options: TerminalOptions = {}) {
    this.#source = input;
    this.#sink = output;
    this.#columns = options.columns || 80;
    this.#rows = options.rows || 24;
    this.term = options.term ?? "";
    this.#maxPending = options.maxBufferedInput ?? 64 * 1024;
    this.#setRawMode = options.setRawMode;
    this.output = this.#newOutput();
    input.on("data", this.#onData);
    input.on("end", this.#onEnd);
    input.on("close", this.#onEnd);
  }

  /** Width in character cells. */
  get columns(): number {
    return this.#columns;
  }

  /** Height in character cells. */
  get rows(): number {
    return this.#rows;
  }

  /** Aborted when the terminal closes (the client left). */
  get signal(): AbortSignal {
    return this.#abort.signal;
  }

  /** True once the terminal is closed. */
  get closed(): boolean {
    return this.#abort.signal.aborted;
  }

  /** Writes text (or bytes) to the terminal, converting lone "\n" to "\r\n". */
  write(text: string | Uint8Array): void {
    this.output.write(text);
  }

  /** Records a new window size and tells the resize listeners. */
  resize(columns: number, rows: number): void {
    const size = { columns: columns || this.#columns, rows: rows || this.#rows };
    if (size.columns === this.#columns && size.rows === this.#rows) return;
    this.#columns = size.columns;
    this.#rows = size.rows;
    for (const listener of [...this.#resizeListeners]) listener(size);
  }

  /** Calls `listener` after every window size change; returns a function that unsubscribes. */
  onResize(listener: (size: TerminalSize) => void): () => void {
    this.#resizeListeners.add(listener);
    return () => this.#resizeListeners.delete(listener);
  }

  /**
   * Hands out the keyboard input as a fresh stream until it is destroyed or ended, or until the
   * next openInput() call takes over. Keys typed while no stream is open are kept for the next.
   */
  openInput(options: InputOptions = {}): TerminalInput {
    this.#active?.end();
    const input = new PassThrough() as TerminalInput;
    input.isRaw = false;
    input.setRawMode = (on: boolean) => {
      input.isRaw = on;
      if (this.#active === input) this.#setRawMode?.(on);
      return input;
    };
    const release = () => {
      if (this.#active !== input) return;
      this.#active = undefined;
      if (input.isRaw) this.#setRawMode?.(false);
    };
    input.on("close", release);
    input.on("end", release);
    input.on("finish", release);
    this.#active = input;
    this.#stopAt = options.stopAt;
    this.#stopped = false;
    if (this.closed) {
      input.end();
      return input;
    }
    this.#pump();
    return input;
  }

  /** A context for one @inquirer/prompts prompt: `await select({...}, term.newPromptContext())`. */
  newPromptContext(): PromptContext {
    const input = this.openInput();
    const output = this.#newOutput(() => input.end());
    return { input, output, signal: this.signal, clearPromptOnDone: false };
  }

  /** Runs one prompt with its own context: `await term.prompt((ctx) => input({...}, ctx))`. */
  async prompt<T>(run: (context: PromptContext) => Promise<T>): Promise<T> {
    const context = this.newPromptContext();
    try {
      return await run(context);
    } finally {
      context.input.destroy();
    }
  }

  /** Stops reading, ends any open input and aborts `signal`; idempotent. */
  close(): void {
    if (this.closed) return;
    this.#abort.abort(new Error("terminal closed"));
    this.#source.off("data", this.#onData);
    this.#source.off("end", this.#onEnd);
    this.#source.off("close", this.#onEnd);
    this.#active?.end();
    this.#active = undefined;
    this.#queue = [];
    this.#queueBytes = 0;
    if (this.#heldUntil) clearImmediate(this.#heldUntil);
    this.#resizeListeners.clear();
  }

  /** A Terminal on the local tty (Deno.stdin/stdout), for the console; close() restores it. */
  static fromLocalTty(): Terminal {
    const size = consoleSizeOr80x24();
    const isTty = Deno.stdin.isTerminal();
    const term = new Terminal(process.stdin, process.stdout, {
      columns: size.columns,
      rows: size.rows,
      term: Deno.env.get("TERM") ?? "",
      setRawMode: isTty ? (on) => Deno.stdin.setRaw(on) : undefined,
    });
    const onWinch = () => {
      const next = consoleSizeOr80x24();
      term.resize(next.columns, next.rows);
    };
    Deno.addSignalListener("SIGWINCH", onWinch);
    term.signal.addEventListener("abort", () => {
      Deno.removeSignalListener("SIGWINCH", onWinch);
      if (isTty) Deno.stdin.setRaw(false);
      process.stdin.pause();
    });
    return term;
  }

  #deliver(bytes: Uint8Array): void {
    if (bytes.length === 0) return;
    // Type-ahead is bounded; keys for a reader only wait a turn (a paste into the console).
    if (!this.#reader() && this.#queueBytes + bytes.length > this.#maxPending) return;
    this.#queue.push(bytes);
    this.#queueBytes += bytes.length;
    this.#pump();
  }

  /** The open input that still takes keys, if any. */
  #reader(): TerminalInput | undefined {
    const input = this.#active;
    if (!input || input.writableEnded || input.destroyed || this.#stopped) return undefined;
    return input;
  }

  /**
   * Hands queued keys to the reader. A prompt gets them up to and including the first key that
   * may end it (Enter, Ctrl-C); the rest goes on one turn later, to the same prompt if that key
   * did not end it, else to the next one. A raw reader gets them up to its stop byte.
   */
  #pump(): void {
    for (;;) {
      const input = this.#reader();
      if (!input || this.#heldFor === input || this.#queue.length === 0) return;
      const chunk = this.#queue[0];
      const stopAt = this.#stopAt;
      let cut = chunk.findIndex((b) => stopAt === undefined ? endsPrompt(b) : b === stopAt);
      const ends = cut !== -1;
      if (ends && chunk[cut] === CR && chunk[cut + 1] === LF) cut++; // one Enter, not two
      cut = ends ? cut + 1 : chunk.length;
      if (cut === chunk.length) this.#queue.shift();
      else this.#queue[0] = chunk.subarray(cut);
      this.#queueBytes -= cut;
      input.write(chunk.subarray(0, cut));
      if (!ends) continue;
      if (stopAt !== undefined) {
        this.#stopped = true;
        return;
      }
      this.#heldFor = input;
      this.#heldUntil = setImmediate(() => {
        this.#heldUntil = undefined;
        if (this.#heldFor === input) this.#heldFor = undefined;
        this.#pump();
      });
      return;
    }
  }

  #newOutput(onEnd?: () => void): Writable & { columns: number; rows: number; isTTY: boolean } {
    // deno-lint-ignore no-this-alias
    const terminal = this;
    const writer = new Writable({
      write(chunk, encoding, callback) {
        terminal.#writeRaw(toBytes(chunk, encoding), callback);
      },
      final(callback) {
        onEnd?.();
        callback();
      },
    });
    Object.defineProperties(writer, {
      columns: { get: () => terminal.#columns },
      rows: { get: () => terminal.#rows },
      isTTY: { value: true },
    });
    return writer as Writable & { columns: number; rows: number; isTTY: boolean };
  }

  #writeRaw(bytes: Uint8Array, callback: (error?: Error | null) => void): void {
    if (bytes.length === 0 || this.#sink.destroyed || this.#sink.writableEnded) {
      callback();
      return;
    }
    const converted = crlf(bytes, this.#lastWasCr);
    this.#lastWasCr = bytes[bytes.length - 1] === CR;
    if (this.#sink.write(converted)) {
      callback();
      return;
    }
    const done = () => {
      this.#sink.off("drain", done);
      this.#sink.off("close", done);
      callback();
    };
    this.#sink.on("drain", done);
    this.#sink.on("close", done);
  }
}

/** The local terminal's size; 80x24 when it has none (a pipe, or a serial line that says 0x0). */
function consoleSizeOr80x24(): { columns: number; rows: number } {
  try {
    if (!Deno.stdout.isTerminal()) return { columns: 80, rows: 24 };
    const size = Deno.consoleSize();
    return size.columns > 0 && size.rows > 0 ? size : { columns: 80, rows: 24 };
  } catch {
    return { columns: 80, rows: 24 };
  }
}

/**
 * Runs one step of a prompt dialogue (a password check, a change): a UserError it throws, when
 * `tell` accepts it (default: every one), is written on `terminal` (message and hint) and gives
 * false, so the dialogue can ask again; anything else is thrown on.
 */
export async function toldIfRefused(
  terminal: Terminal,
  step: () => Promise<unknown>,
  tell: (err: UserError) => boolean = () => true,
): Promise<boolean> {
  try {
    await step();
    return true;
  } catch (err) {
    if (!isUserError(err) || !tell(err)) throw err;
    terminal.write(`${err.message}\n${err.hint ? `Hint: ${err.hint}\n` : ""}`);
    return false;
  }
}

/**
 * kattach's own log: every line gets a UTC timestamp and goes to a bounded, rotated file in the
 * state directory (`STATE/log/kattach.log`, then `.1` … `.N`; the appliance's data partition), to the sinks kattach was given
 * (stderr in hosted mode; the serial port on the appliance when the menu owns tty1) and to
 * whoever follows it (`system log --follow`). Lines written before the file is open are kept in
 * memory and written first.
 */

/** How a {@linkcode LogBook} behaves; the defaults suit the appliance. */
export interface LogBookOptions {
  /** Where each line goes besides the file (e.g. stderr), without the timestamp. */
  sinks?: ((line: string) => void)[];
  /** Rotate when the file passes this size; default 1 MiB. */
  maxBytes?: number;
  /** How many rotated files to keep; default 3. */
  keep?: number;
  /** The clock (tests). */
  now?: () => Date;
}

/** The most lines kept in memory before the file opens. */
const EARLY_LINES = 2000;

/** kattach's log (the file, the sinks, the followers). */
export class LogBook {
  #sinks: ((line: string) => void)[];
  #followers = new Set<(line: string) => void>();
  #file: Deno.FsFile | undefined;
  #path = "";
  #size = 0;
  #early: string[] = [];
  #maxBytes: number;
  #keep: number;
  #now: () => Date;
  #enc = new TextEncoder();

  constructor(options: LogBookOptions = {}) {
    this.#sinks = [...(options.sinks ?? [])];
    this.#maxBytes = options.maxBytes ?? 1024 * 1024;
    this.#keep = options.keep ?? 3;
    this.#now = options.now ?? (() => new Date());
  }

  /** The log file ("" until {@linkcode open}). */
  get file(): string {
    return this.#path;
  }

  /** Opens (appending) `DIR/kattach.log` and writes the lines logged so far. */
  open(dir: string): void {
    Deno.mkdirSync(dir, { recursive: true, mode: 0o700 });
    this.#path = `${dir}/kattach.log`;
    this.#reopen();
    const early = this.#early;
    this.#early = [];
    for (const line of early) this.#append(line);
  }

  /** Logs one line (control characters other than tab are replaced). */
  write(text: string): void {
    // deno-lint-ignore no-control-regex
    const clean = text.replace(/[\x00-\x08\x0a-\x1f\x7f]/g, " ");
    const line = `${this.#now().toISOString().replace(/\.\d{3}Z$/, "Z")} ${clean}`;
    if (this.#file) this.#append(line);
    else if (this.#early.push(line) > EARLY_LINES) this.#early.shift();
    for (const sink of this.#sinks) {
      try {
        sink(clean);
      } catch { /* a sink that fails (a gone serial port) must not stop the log */ }
    }
    for (const f of this.#followers) f(line);
  }

  /** Adds a sink. */
  addSink(sink: (line: string) => void): void {
    this.#sinks.push(sink);
  }

  /** Removes a sink. */
  removeSink(sink: (line: string) => void): void {
    this.#sinks = this.#sinks.filter((s) => s !== sink);
  }

  /** The last `n` lines (from the file and the rotated ones as needed). */
  async tail(n: number): Promise<string[]> {
    if (n === 0) return [];
    if (!this.#file) return this.#early.slice(-n);
    const out: string[] = [];
    for (let i = 0; i <= this.#keep && out.length < n; i++) {
      const path = i === 0 ? this.#path : `${this.#path}.${i}`;
      const text = await Deno.readTextFile(path).catch(() => "");
      const lines = text.split("\n").filter((l) => l !== "");
      out.unshift(...lines.slice(-(n - out.length)));
    }
    return out;
  }

  /** Calls `fn` with every new line until `signal` aborts. */
  follow(fn: (line: string) => void, signal: AbortSignal): Promise<void> {
    if (signal.aborted) return Promise.resolve();
    this.#followers.add(fn);
    return new Promise((resolve) => {
      signal.addEventListener("abort", () => {
        this.#followers.delete(fn);
        resolve();
      }, { once: true });
    });
  }

  /** Closes the file. */
  close(): void {
    this.#file?.close();
    this.#file = undefined;
  }

  #reopen(): void {
    this.#file?.close();
    this.#file = Deno.openSync(this.#path, { append: true, create: true, mode: 0o600 });
    this.#size = this.#file.statSync().size;
  }

  #append(line: string): void {
    const bytes = this.#enc.encode(line + "\n");
    if (this.#size > 0 && this.#size + bytes.length > this.#maxBytes) this.#rotate();
    try {
      this.#file!.writeSync(bytes);
      this.#size += bytes.length;
    } catch { /* a full or gone disk: the sinks still get the line */ }
  }

  #rotate(): void {
    try {
      for (let i = this.#keep - 1; i >= 1; i--) {
        try {
          Deno.renameSync(`${this.#path}.${i}`, `${this.#path}.${i + 1}`);
        } catch { /* not there yet */ }
      }
      Deno.renameSync(this.#path, `${this.#path}.1`);
      this.#reopen();
    } catch { /* keep writing where we can */ }
  }
}

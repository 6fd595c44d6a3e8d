/**
 * Generic helpers of the integration tests: run a command to completion, poll until a condition
 * holds, pick a free loopback port, and drive a real pty through a tmux server of our own.
 */
import { deepStrictEqual as assertEquals } from "node:assert/strict";

/** What a finished command left behind. */
export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** How {@linkcode run} runs a command. */
export interface RunOptions {
  /** Extra environment variables (added to the inherited environment). */
  env?: Record<string, string>;
  /** Written to the command's stdin, then closed; without it stdin is /dev/null. */
  stdin?: string;
  /**
   * Kills the command (SIGKILL) after this long and fails saying what it waited for
   * (default {@linkcode RUN_TIMEOUT_MS}).
   */
  timeoutMs?: number;
}

/** How long {@linkcode run} lets a command run unless told otherwise. */
export const RUN_TIMEOUT_MS = 120_000;

/** A wait of the test harness ran out; the message says what it waited for. */
export class DeadlineError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "DeadlineError";
  }
}

/** Settles as `p` does, or fails with "gave up after … waiting for WHAT" once `ms` have passed. */
export async function withDeadline<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new DeadlineError(`gave up after ${ms / 1000} s waiting for ${what}`)),
      ms,
    );
  });
  try {
    return await Promise.race([p, late]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Runs `argv` to completion and returns its exit code and decoded output; kills it and fails
 * (a {@linkcode DeadlineError} naming the command) after `timeoutMs`.
 */
export async function run(argv: string[], options: RunOptions = {}): Promise<RunResult> {
  const child = new Deno.Command(argv[0], {
    args: argv.slice(1),
    env: options.env,
    stdin: options.stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const limit = options.timeoutMs ?? RUN_TIMEOUT_MS;
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    try {
      child.kill("SIGKILL");
    } catch { /* gone */ }
  }, limit);
  try {
    if (options.stdin !== undefined) {
      const writer = child.stdin.getWriter();
      await writer.write(new TextEncoder().encode(options.stdin));
      await writer.close();
    }
    // A grandchild holding the pipes open must not hang us either.
    const out = await withDeadline(child.output(), limit + 10_000, `${argv.join(" ")} to end`);
    const dec = new TextDecoder();
    const result = {
      code: out.code,
      stdout: dec.decode(out.stdout),
      stderr: dec.decode(out.stderr),
    };
    if (timedOut) {
      throw new DeadlineError(
        `gave up after ${limit / 1000} s waiting for \`${argv.join(" ")}\` to finish ` +
          `(killed); its output:\n${result.stdout}${result.stderr}`.slice(0, 8000),
      );
    }
    return result;
  } finally {
    clearTimeout(timer);
  }
}

/** How long {@linkcode waitFor} waits, and how often it looks. */
export interface WaitOptions {
  /** Gives up after this long (default 30 s). */
  timeoutMs?: number;
  /** Pause between two checks (default 100 ms). */
  intervalMs?: number;
}

/** Polls until `check` holds; fails with `describe()` once `timeoutMs` has passed. */
export async function waitFor(
  check: () => boolean | Promise<boolean>,
  describe: () => string | Promise<string>,
  options: WaitOptions = {},
): Promise<void> {
  const limit = options.timeoutMs ?? 30_000;
  const deadline = Date.now() + limit;
  const giveUp = async () =>
    new DeadlineError(`gave up after ${limit / 1000} s waiting for: ${await describe()}`);
  while (true) {
    // A check that hangs is bounded by the same deadline.
    const held = await withDeadline(
      Promise.resolve(check()),
      Math.max(1, deadline - Date.now()),
      "a check",
    ).catch(async (err) => {
      if (err instanceof DeadlineError) throw await giveUp();
      throw err;
    });
    if (held) return;
    if (Date.now() > deadline) throw await giveUp();
    await new Promise((r) => setTimeout(r, options.intervalMs ?? 100));
  }
}

/** A TCP port on 127.0.0.1 that was free a moment ago. */
export function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

/** True when `path` exists (a link counts as what it points to). */
export function pathExists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

/** A select prompt waiting for a key: its message, its entries and the highlighted one. */
export interface ScreenSelect {
  title: string;
  entries: string[];
  active: number;
}

/**
 * The select prompt that waits for a key on `screen` (text without escape sequences), if any:
 * the last prompt line ("? " waiting, "✔ " answered) is a "? " line, then its entries (the
 * highlighted one marked "❯"; a long one wrapped onto the next line), then nothing but blank
 * lines and the keys' help. A select that was answered, cancelled (text follows it) or is half
 * drawn does not count.
 */
export function screenSelect(screen: string): ScreenSelect | undefined {
  const lines = screen.split("\n");
  const top = lines.findLastIndex((l) => l.startsWith("? ") || l.startsWith("✔ "));
  if (top === -1 || !lines[top].startsWith("? ")) return undefined;
  const entries: string[] = [];
  let active = -1;
  let at = top + 1;
  for (; at < lines.length && lines[at].trim() !== ""; at++) {
    const line = lines[at];
    if (line.startsWith("❯ ")) active = entries.length;
    if (line.startsWith("❯ ") || line.startsWith("  ") || entries.length === 0) {
      entries.push(line.slice(2).trim());
    } else {
      entries[entries.length - 1] += line.trim(); // inquirer wraps long entries itself
    }
  }
  const rest = lines.slice(at);
  if (active === -1 || !rest.some((l) => l.startsWith("↑↓"))) return undefined;
  if (!rest.every((l) => l.trim() === "" || l.startsWith("↑↓"))) return undefined;
  return { title: lines[top].slice(2).trim(), entries, active };
}

/** How {@linkcode chooseOnScreen} reads the screen and presses keys. */
export interface ChooseOptions {
  /** The screen as text without escape sequences. */
  screen(): string | Promise<string>;
  /** Presses one key. */
  press(key: "up" | "down" | "enter"): Promise<void>;
  /** Limit of each wait. */
  timeoutMs: number;
}

/**
 * Waits for a select on screen, moves its cursor to the entry starting with `label` one key at a
 * time (each after the screen showed the last one: a key never lands on a select that is being
 * left), presses Enter and waits until the screen shows it was taken.
 */
export async function chooseOnScreen(label: string, o: ChooseOptions): Promise<void> {
  let text = "";
  let now: ScreenSelect | undefined;
  const look = async () => (now = screenSelect(text = await o.screen())) !== undefined;
  await waitFor(look, () => `a select to choose ${label} from:\n${text}`, {
    timeoutMs: o.timeoutMs,
    intervalMs: 30,
  });
  for (let moves = 0;; moves++) {
    const { entries, active } = now!;
    if (entries[active].startsWith(label)) break;
    const target = entries.findIndex((e) => e.startsWith(label));
    if (moves >= 80) throw new Error(`no entry ${label} on screen:\n${text}`);
    const up = target !== -1 && target < active;
    const from = entries[active];
    await o.press(up ? "up" : "down");
    await waitFor(
      async () => await look() && now!.entries[now!.active] !== from,
      () => `the cursor to move ${up ? "up" : "down"} from ${from} (toward ${label}):\n${text}`,
      { timeoutMs: o.timeoutMs, intervalMs: 30 },
    );
  }
  // Nothing else draws while a select waits: any change is the answered select's last render.
  const before = text;
  await o.press("enter");
  await waitFor(
    async () => (text = await o.screen()) !== before,
    () => `${label} to be taken:\n${text}`,
    { timeoutMs: o.timeoutMs, intervalMs: 30 },
  );
}

/** How a {@linkcode Tmux} window is set up and waited on. */
export interface TmuxOptions {
  /** Prefix of the tmux socket name (the pid and a random suffix follow). */
  name: string;
  /** Window width (default 110). */
  columns?: number;
  /** Window height (default 40). */
  rows?: number;
  /** How long the window stays after the command ends, in seconds (default 60). */
  holdSeconds?: number;
  /** Default limit of {@linkcode Tmux.waitFor} (default 30 s). */
  waitMs?: number;
  /** Limit of each tmux command (default none). */
  commandTimeoutMs?: number;
  /** Makes {@linkcode Tmux.waitFor} fail at once when the command has ended (default false). */
  failOnExit?: boolean;
}

/**
 * A tmux server of our own running one shell script in a window; the window shows
 * `[ssh exited N]` when the script ends.
 */
export class Tmux {
  readonly socket: string;
  #options: TmuxOptions;

  constructor(options: TmuxOptions) {
    this.#options = options;
    this.socket = `${options.name}_${Deno.pid}_${Math.random().toString(36).slice(2)}`;
  }

  /** Starts the server with `sh SCRIPT` in a detached session. */
  async start(script: string): Promise<void> {
    const { columns = 110, rows = 40, holdSeconds = 60 } = this.#options;
    const r = await this.#tmux([
      ...["-f", "/dev/null", "new-session", "-d", "-x", String(columns), "-y", String(rows)],
      ...["-s", "t", `sh ${script}; echo "[ssh exited $?]"; sleep ${holdSeconds}`],
    ]);
    assertEquals(r.code, 0, r.stderr);
  }

  /** The visible screen, as text. */
  async screen(): Promise<string> {
    return (await this.#tmux(["capture-pane", "-p", "-t", "t"])).stdout;
  }

  /** Sends keys (tmux send-keys names, or `-l TEXT` for literal text). */
  async keys(...keys: string[]): Promise<void> {
    const r = await this.#tmux(["send-keys", "-t", "t", ...keys]);
    assertEquals(r.code, 0, r.stderr);
  }

  /** Types `text` (if any), then Enter. */
  async type(text: string): Promise<void> {
    if (text) await this.keys("-l", text);
    await this.keys("Enter");
  }

  /** Resizes the window. */
  async resize(columns: number, rows: number): Promise<void> {
    const r = await this.#tmux([
      "resize-window",
      "-t",
      "t",
      "-x",
      String(columns),
      "-y",
      String(rows),
    ]);
    assertEquals(r.code, 0, r.stderr);
  }

  /** Waits until `text` is on screen and returns the screen. */
  async waitFor(text: string | RegExp, limitMs = this.#options.waitMs ?? 30_000): Promise<string> {
    let screen = "";
    await waitFor(
      async () => {
        screen = await this.screen();
        if (this.#options.failOnExit && screen.includes("[ssh exited")) {
          throw new Error(`ssh ended:\n${screen}`);
        }
        return typeof text === "string" ? screen.includes(text) : text.test(screen);
      },
      () => `${text} on screen:\n${screen}`,
      { timeoutMs: limitMs },
    );
    return screen;
  }

  /** The highlighted entry of the select on screen. */
  async active(): Promise<string> {
    const select = screenSelect(await this.screen());
    return select ? select.entries[select.active] : "";
  }

  /** Moves the cursor with the arrow keys to the entry starting with `label`; presses Enter. */
  choose(label: string): Promise<void> {
    const keys = { up: "Up", down: "Down", enter: "Enter" } as const;
    return chooseOnScreen(label, {
      screen: () => this.screen(),
      press: (key) => this.keys(keys[key]),
      timeoutMs: this.#options.waitMs ?? 30_000,
    });
  }

  /**
   * Waits until the screen shows the select titled `title` waiting for a key: the page a key
   * leads to, so that the next key goes there and not to the page before.
   */
  async waitForSelect(title: string, limitMs = this.#options.waitMs ?? 30_000): Promise<void> {
    let screen = "";
    await waitFor(
      async () => screenSelect(screen = await this.screen())?.title === title,
      () => `the select ${JSON.stringify(title)} on screen:\n${screen}`,
      { timeoutMs: limitMs },
    );
  }

  /** Kills the tmux server and whatever runs in it. */
  async stop(): Promise<void> {
    await this.#tmux(["kill-server"]);
  }

  #tmux(args: string[]): Promise<RunResult> {
    return run(["tmux", "-L", this.socket, ...args], {
      timeoutMs: this.#options.commandTimeoutMs,
    });
  }
}

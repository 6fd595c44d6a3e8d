/**
 * The console front-end: the same login and menus as over SSH, on the local terminal (the
 * appliance's /dev/console, where kattach starts and respawns it, or a developer's terminal with
 * `main.ts console --state DIR` in hosted mode). The appliance runs it from its own bundle,
 * /kaos/console.js of console_main.ts (buildroot/appliance/bundle-front-ends).
 *
 * Before the login prompt it loads only the terminal (issue 13: memory): the prompts, the menus,
 * the one-line commands and the IPC client (its schemas) come with cli/session.ts once a key is
 * pressed, as a getty's "press Enter to activate this console". An idle console on a terminal
 * nobody looks at then holds little more than a bare Deno.
 */
import type { IpcClient } from "../ipc/mod.ts";
import { parseCli } from "../lib/cli_args.ts";
import { Terminal } from "./terminal.ts";

/** The line the console shows until a key is pressed. */
export const ACTIVATE_PROMPT = "Press Enter to log in.";

/** Waits for a key (raw mode: any key, discarded); false when the terminal closes first. */
function anyKey(terminal: Terminal): Promise<boolean> {
  const input = terminal.openInput();
  input.setRawMode(true);
  return new Promise<boolean>((resolve) => {
    const done = (key: boolean) => {
      terminal.signal.removeEventListener("abort", closed);
      input.destroy();
      resolve(key);
    };
    const closed = () => done(false);
    if (terminal.closed) return done(false);
    terminal.signal.addEventListener("abort", closed);
    input.once("data", () => done(true));
    input.once("end", closed);
  });
}

/**
 * Runs one console session on the local tty; resolves when the operator logs out or presses
 * Ctrl+C (kattach then starts the next one: a fresh login prompt). `tty` names the terminal in
 * the banner (tty1, ttyS0). With `waitKey`, it first shows {@linkcode ACTIVATE_PROMPT} and loads
 * the login and menus once a key comes.
 */
export async function runConsole(
  options: { connect(): Promise<IpcClient>; tty?: string; waitKey?: boolean },
): Promise<void> {
  const terminal = Terminal.fromLocalTty();
  try {
    if (options.waitKey) {
      terminal.write(
        `KaOS console${options.tty ? ` on ${options.tty}` : ""}. ${ACTIVATE_PROMPT}\n`,
      );
      if (!(await anyKey(terminal))) return; // the terminal closed
    }
    const { runConsoleSession } = await import("./session.ts");
    await runConsoleSession(terminal, options);
  } catch (err) {
    if (!(err instanceof Error && /Prompt/.test(err.name))) throw err;
  } finally {
    terminal.close();
  }
}

/** The usage of `main.ts console` (and of the appliance's /kaos/console.js). */
export const CONSOLE_USAGE = `usage: main.ts console [--state DIR] [--tty NAME] [--wait-key]
  The login and menus on this terminal (the appliance's console).
  --state DIR       the state directory (default $KAOS_STATE, else .state)
  --tty NAME        which console this is (kattach runs one per console terminal: tty1, ttyS0)
  --wait-key        show "${ACTIVATE_PROMPT}" and load the login and menus at the first key
                    (the appliance's consoles: an idle one holds less memory)
  -h, --help        this text`;

/**
 * The console's entry (`main.ts console`, the appliance's /kaos/console.js): parses its options
 * strictly and runs one session (undefined once it ended: the caller exits, stdin still holds the
 * process). Returns the exit status when it must not run (0 after `--help`, 2 after a refused
 * option) instead of exiting, so a bundle's `--help` ends normally and Deno writes the code cache
 * (the image build relies on it).
 */
export async function consoleMain(args: string[]): Promise<0 | 2 | undefined> {
  const parsed = parseCli(args, {
    usage: CONSOLE_USAGE,
    options: {
      state: { type: "string" },
      tty: { type: "string" },
      "wait-key": { type: "boolean" },
    },
  });
  if ("exit" in parsed) return parsed.exit;
  const { values } = parsed;
  const runDir = `${values.state ?? Deno.env.get("KAOS_STATE") ?? ".state"}/run`;
  await runConsole({
    // The IPC client (and the schemas of every action) loads with the first connection.
    connect: async () => (await import("../ipc/mod.ts")).IpcClient.connect(runDir),
    tty: values.tty,
    waitKey: values["wait-key"] ?? false,
  });
}

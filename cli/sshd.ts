/**
 * The SSH daemon of the AppQueue CLI, run as `main.ts sshd` (the appliance: its own bundle
 * /kaos/sshd.js, from sshd_main.ts) under kattach's supervision: the process entry. It loads the
 * SSH server only; its backend over IPC (cli/sshd_backend.ts: the menus, the one-line commands,
 * the IPC schemas) comes at the first login, so the server listens sooner after the process
 * starts (seconds under TCG on the appliance's way to the SSH banner).
 */
import { parseCli, portNumber } from "../lib/cli_args.ts";
import { isUserError } from "../lib/errors.ts";
import { idleMemory } from "../lib/idle_memory.ts";
import { type SshBackend, type SshServer, startSshServer } from "./ssh_server.ts";

/**
 * An SshBackend that loads cli/sshd_backend.ts when it is first asked something (a login): the
 * banner and the key exchange do not wait for it.
 */
export function lazyBackend(runDir: string): SshBackend {
  let loaded: Promise<SshBackend> | undefined;
  const backend = () => loaded ??= import("./sshd_backend.ts").then((m) => m.sshdBackend(runDir));
  return {
    checkPassword: async (user, password) => (await backend()).checkPassword(user, password),
    authorizedKeys: async (user) => (await backend()).authorizedKeys(user),
    changePassword: async (user, password) => (await backend()).changePassword(user, password),
    checkNewPassword: async (user, password) => (await backend()).checkNewPassword(user, password),
    // Once no one-line command has run for a moment, the process' idle-time reducer collects
    // the commands' garbage and gives glibc's free pages back (lib/idle_memory.ts; issue 13: the
    // sshd grew 10.7 % over 1,000 one-line commands without a trim, 3.2 % with). Not at the
    // start: FFI's first call touches 1.5 MiB more of the deno binary, idle. A menu session
    // counts as work at its start and end only: one left open must not keep the reducer off.
    exec: async (line, io) => {
      idleMemory().begin();
      try {
        return await (await backend()).exec(line, io);
      } finally {
        idleMemory().end();
      }
    },
    shell: async (io) => {
      idleMemory().touch();
      try {
        return await (await backend()).shell(io);
      } finally {
        idleMemory().touch();
      }
    },
  };
}

/** What the sshd process runs with (main.ts parses its options). */
export interface SshdMainOptions {
  stateDir: string;
  port: number;
  listen: string;
  /** Ends when kattach (the parent) goes away. */
  supervised: boolean;
  /**
   * Reads no state and listens only after a line `go` on stdin: kattach starts the sshd early
   * and says go once the firewall is in and the state directory is mounted.
   */
  waitGo?: boolean;
}

/** The sshd's exit status when its port is taken (EADDRINUSE's number on Linux). */
export const SSHD_EXIT_PORT_IN_USE = 98;

/** Runs the sshd process (`main.ts sshd`). */
export async function runSshdMain(o: SshdMainOptions): Promise<void> {
  const dir = o.stateDir;
  const running: { server?: SshServer } = {}; // none until the go (with --wait-go)
  const stop = async (why: string) => {
    console.error(`ssh: ${why}: stopping`);
    await running.server?.close();
    Deno.exit(0);
  };
  Deno.addSignalListener("SIGTERM", () => void stop("SIGTERM"));
  let go = () => {};
  const goSaid = new Promise<void>((resolve) => go = resolve);
  if (o.supervised || o.waitGo) {
    // kattach holds the other end of stdin: it writes only `go` (with --wait-go); EOF means
    // kattach is gone.
    (async () => {
      let text = "";
      for await (const chunk of Deno.stdin.readable.pipeThrough(new TextDecoderStream())) {
        text = (text + chunk).slice(-64);
        if (/(^|\n)go\n/.test(text)) go();
      }
      await stop("kattach went away");
    })();
  }
  if (o.waitGo) {
    console.error("ssh: started; waiting for kattach's go (firewall in, state mounted)");
    await goSaid;
  }
  try {
    running.server = await startSshServer({
      hostname: o.listen,
      port: o.port,
      hostKeysDir: `${dir}/ssh`,
      backend: lazyBackend(`${dir}/run`),
      log: (line) => console.error(line),
    });
  } catch (err) {
    if (isUserError(err)) {
      // A host key file that cannot be read (cli/host_keys.ts): why, in plain words; no stack.
      console.error(`ssh: ${err.message}${err.hint ? ` (${err.hint})` : ""}`);
      Deno.exit(1);
    }
    // Another process holds the port: one line, no stack; the supervisor's back-off retries.
    if ((err as { code?: string }).code !== "EADDRINUSE") throw err;
    console.error(
      `ssh: port ${o.port} on ${o.listen} is in use: another process listens there; free it or ` +
        "choose another port",
    );
    Deno.exit(SSHD_EXIT_PORT_IN_USE);
  }
  if (o.supervised) {
    // In case another process holds the pipe too: kattach gone means a new parent. Every 5 s,
    // not every second: the pipe's end is the way this is told (at once); each look wakes the
    // process, and on an idle appliance under TCG every wake-up of the emulated machine costs.
    const parent = Deno.ppid;
    setInterval(() => {
      if (Deno.ppid !== parent) void stop("kattach went away");
    }, 5000);
  }
}

const SSHD_USAGE = `usage: main.ts sshd [--state DIR] [--port N] [--listen ADDR] [--supervised]
         [--wait-go]
  The SSH server of the AppQueue CLI (kattach runs and supervises it; the appliance runs it as
  /kaos/sshd.js, a bundle of sshd_main.ts).
  --state DIR       the state directory (host keys in DIR/ssh; default $KAOS_STATE, else .state)
  --port N          TCP port (default 1289)
  --listen ADDR     address to listen on (default 0.0.0.0)
  --supervised      end when kattach (the parent) goes away
  --wait-go         read no state and listen only after a line \`go\` on stdin (kattach sends it
                    once the firewall is in and the state directory is mounted)
  -h, --help        this text`;

/**
 * The sshd's entry: parses its options strictly and runs the server. Returns the exit status
 * when it must not run (0 after `--help`, 2 after a refused option) instead of exiting, so a
 * bundle's `--help` ends normally and Deno writes the code cache (the image build relies on it).
 */
export async function sshdMain(args: string[]): Promise<0 | 2 | undefined> {
  const parsed = parseCli(args, {
    usage: SSHD_USAGE,
    options: {
      state: { type: "string" },
      port: { type: "string" },
      listen: { type: "string" },
      supervised: { type: "boolean" },
      "wait-go": { type: "boolean" },
    },
  });
  if ("exit" in parsed) return parsed.exit;
  const { values } = parsed;
  const port = portNumber(values.port ?? "1289");
  if (port === undefined) {
    console.error(`Error: --port takes a port number from 0 to 65535, not ${values.port}`);
    console.error(SSHD_USAGE);
    return 2;
  }
  await runSshdMain({
    stateDir: values.state ?? Deno.env.get("KAOS_STATE") ?? ".state",
    port,
    listen: values.listen ?? "0.0.0.0",
    supervised: values.supervised ?? false,
    waitGo: values["wait-go"] ?? false,
  });
}

/**
 * The SSH daemon of the AppQueue CLI, run as `main.ts sshd` (the appliance: its own bundle
 * /kaos/sshd.js, from sshd_main.ts) under kattach's supervision: the SshBackend over IPC (auth.*
 * actions for logins, keys and password changes; runOneLine for exec; the menus for a shell) and
 * the process entry.
 */
import { IpcClient, type Origin } from "../ipc/mod.ts";
import { parseCli, portNumber } from "../lib/cli_args.ts";
import { isUserError, UserError } from "../lib/errors.ts";
import { runMenus } from "./menus.ts";
import { EXIT, runOneLine } from "./oneline.ts";
import { splitWords } from "./render.ts";
import { streamStdio, terminalStdio } from "./stdio.ts";
import {
  type SessionIo,
  SSH_USER,
  type SshBackend,
  type SshServer,
  startSshServer,
} from "./ssh_server.ts";

/** How the backend reaches kattach (`origin`: the SSH connection a request comes from). */
export interface SessionOptions {
  connect(origin?: Origin): Promise<IpcClient>;
}

async function withClient<T>(
  options: SessionOptions,
  fn: (c: IpcClient) => Promise<T>,
): Promise<T> {
  const client = await options.connect();
  try {
    return await fn(client);
  } finally {
    client.close();
  }
}

/** The SshBackend that talks to kattach over IPC. */
export function ipcBackend(options: SessionOptions): SshBackend {
  return {
    async checkPassword(user, password) {
      if (user !== SSH_USER) {
        // still ask kattach, so an unknown user costs the same time as a wrong password
        await withClient(
          options,
          (c) =>
            c.call("auth.check", { user: user.slice(0, 64), password: password.slice(0, 1024) }),
        );
        return "denied";
      }
      if (password.length > 1024) return "denied";
      const r = await withClient(options, (c) => c.call("auth.check", { user, password }));
      return r.verdict;
    },
    async authorizedKeys(user) {
      if (user !== SSH_USER) return [];
      return (await withClient(options, (c) => c.call("auth.keys.list", {}))).map((k) => k.line);
    },
    async changePassword(user, newPassword) {
      await withClient(options, (c) => c.call("auth.change", { user, newPassword }));
    },
    async exec(line, io) {
      let words: string[];
      try {
        words = splitWords(line);
      } catch (err) {
        io.stderr.write(`Error: cannot read the command line: ${(err as Error).message}\n`);
        return EXIT.usage;
      }
      return await runOneLine(words, {
        get stdio() {
          return io.terminal
            ? terminalStdio(io.terminal)
            : streamStdio(io.stdin, io.stdout, io.stderr);
        },
        out: (text) => io.stdout.write(text),
        err: (text) => io.stderr.write(text),
        connect: () => options.connect(sshOrigin(io)),
      });
    },
    async shell(io) {
      await runMenus(io.terminal!, {
        connect: () => options.connect(sshOrigin(io)),
        user: io.user,
      });
    },
  };
}

/** The origin of requests made for one SSH session (`firewall confirm` checks its age). */
function sshOrigin(io: SessionIo): Origin {
  return { via: "ssh", openedAt: io.openedAt, remote: io.remote };
}

/** How to run the SSH daemon. */
export interface SshdOptions extends SessionOptions {
  hostname: string;
  port: number;
  hostKeysDir: string;
  log(line: string): void;
}

/** Starts the SSH server with the IPC backend. */
export function startSshd(options: SshdOptions): Promise<SshServer> {
  return startSshServer({
    hostname: options.hostname,
    port: options.port,
    hostKeysDir: options.hostKeysDir,
    backend: ipcBackend(options),
    log: options.log,
  });
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

/** How long a login waits for kattach's IPC socket (the sshd starts before it listens). */
const KATTACH_WAIT_MS = 120_000;

/**
 * Connects to kattach; while its socket is not there yet (kattach starts the sshd before its ipc
 * phase, and a boot leaves the previous socket behind) tries again until `waitMs` have passed.
 */
export async function connectWaiting(
  runDir: string,
  options: { origin?: Origin; waitMs: number },
): Promise<IpcClient> {
  const end = Date.now() + options.waitMs;
  while (true) {
    try {
      return await IpcClient.connect(runDir, { origin: options.origin });
    } catch (err) {
      if (!isUserError(err) || err.code !== "unavailable") throw err;
      if (Date.now() >= end) {
        throw new UserError(
          `Cannot reach kattach at ${runDir}: waited ${Math.round(options.waitMs / 1000)} s for ` +
            `its socket (${err.message})`,
          { hint: "kattach's log says which phase it is in", code: "unavailable", cause: err },
        );
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}

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
  running.server = await startSshd({
    hostname: o.listen,
    port: o.port,
    hostKeysDir: `${dir}/ssh`,
    connect: (origin) => connectWaiting(`${dir}/run`, { origin, waitMs: KATTACH_WAIT_MS }),
    log: (line) => console.error(line),
  });
  if (o.supervised) {
    // In case another process holds the pipe too: kattach gone means a new parent.
    const parent = Deno.ppid;
    setInterval(() => {
      if (Deno.ppid !== parent) void stop("kattach went away");
    }, 1000);
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

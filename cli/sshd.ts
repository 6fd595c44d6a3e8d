/**
 * The SSH daemon of the AppQueue CLI, run as `main.ts sshd` under kattach's supervision: the
 * SshBackend over IPC (auth.* actions for logins, keys and password changes; runOneLine for exec;
 * the menus for a shell) and the process entry.
 */
import { IpcClient, type Origin } from "../ipc/mod.ts";
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
}

/** Runs the sshd process (`main.ts sshd`). */
export async function runSshdMain(o: SshdMainOptions): Promise<void> {
  const dir = o.stateDir;
  const server = await startSshd({
    hostname: o.listen,
    port: o.port,
    hostKeysDir: `${dir}/ssh`,
    connect: (origin) => IpcClient.connect(`${dir}/run`, { origin }),
    log: (line) => console.error(line),
  });
  const stop = async (why: string) => {
    console.error(`ssh: ${why}: stopping`);
    await server.close();
    Deno.exit(0);
  };
  Deno.addSignalListener("SIGTERM", () => void stop("SIGTERM"));
  if (o.supervised) {
    // kattach holds the other end of stdin and never writes: EOF means kattach is gone.
    (async () => {
      for await (const _ of Deno.stdin.readable) { /* nothing is ever sent */ }
      await stop("kattach went away");
    })();
    // And in case another process holds the pipe too: kattach gone means a new parent.
    const parent = Deno.ppid;
    setInterval(() => {
      if (Deno.ppid !== parent) void stop("kattach went away");
    }, 1000);
  }
}

/**
 * The sshd's backend over IPC (auth.* actions for logins, keys and password changes; runOneLine
 * for exec; the menus for a shell). cli/sshd.ts loads it at the first login, not before the SSH
 * server listens: the menus, the one-line commands and the IPC schemas are most of the sshd's
 * code, and the appliance's SSH banner does not need them (issue 9: boot speed).
 */
import { IpcClient, type Origin } from "../ipc/mod.ts";
import { isUserError, UserError } from "../lib/errors.ts";
import { runMenus } from "./menus.ts";
import { EXIT, runOneLine } from "./oneline.ts";
import { splitWords } from "./render.ts";
import { streamStdio, terminalStdio } from "./stdio.ts";
import { type SessionIo, SSH_USER, type SshBackend } from "./ssh_server.ts";
import type { Terminal } from "./terminal.ts";

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
    async checkNewPassword(user, newPassword) {
      await withClient(options, (c) => c.call("auth.change", { user, newPassword, dryRun: true }));
    },
    async exec(line, io) {
      let words: string[];
      try {
        words = splitWords(line);
      } catch (err) {
        io.stderr.write(`Error: cannot read the command line: ${(err as Error).message}\n`);
        return EXIT.usage;
      }
      // Ctrl+C in a pty (`ssh -t`) or the client leaving ends the command: its IPC connection is
      // closed, so a `system log --follow` in kattach ends too, and nothing more is written.
      let client: IpcClient | undefined;
      let cancelled = false;
      const cancel = () => {
        cancelled = true;
        client?.close();
      };
      io.signal.addEventListener("abort", cancel, { once: true });
      const unwatch = io.terminal && watchCtrlC(io.terminal, () => {
        io.stdout.write("^C\n"); // as a pty echoes it
        cancel();
      });
      try {
        const code = await runOneLine(words, {
          get stdio() {
            unwatch?.(); // an interactive command (the console) or KEY=@- reads the keys now
            return io.terminal
              ? terminalStdio(io.terminal)
              : streamStdio(io.stdin, io.stdout, io.stderr);
          },
          out: (text) => cancelled || io.stdout.write(text),
          err: (text) => cancelled || io.stderr.write(text),
          connect: async () => {
            const c = await options.connect(sshOrigin(io));
            if (cancelled) c.close();
            return client = c;
          },
        });
        return cancelled ? EXIT_INTERRUPTED : code;
      } finally {
        io.signal.removeEventListener("abort", cancel);
        unwatch?.();
      }
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
/** The exit status of a command ended by Ctrl+C, as a shell reports one ended by SIGINT. */
export const EXIT_INTERRUPTED = 130;

const CTRL_C = 0x03;

/**
 * Calls `onCtrlC` when Ctrl+C is typed on the terminal while a one-line command runs; the keys
 * after it are left for the next reader. Returns a function that stops watching.
 */
function watchCtrlC(terminal: Terminal, onCtrlC: () => void): () => void {
  const input = terminal.openInput({ stopAt: CTRL_C });
  input.on("data", (chunk: Uint8Array) => {
    if (chunk.includes(CTRL_C)) onCtrlC();
  });
  return () => input.end();
}

function sshOrigin(io: SessionIo): Origin {
  return { via: "ssh", openedAt: io.openedAt, remote: io.remote };
}

/** How long a login waits for kattach's IPC socket (the sshd starts before it listens). */
export const KATTACH_WAIT_MS = 120_000;

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

/** The backend of the sshd whose kattach listens in `runDir` (logins wait for its socket). */
export function sshdBackend(runDir: string): SshBackend {
  return ipcBackend({
    connect: (origin) => connectWaiting(runDir, { origin, waitMs: KATTACH_WAIT_MS }),
  });
}

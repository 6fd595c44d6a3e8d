/**
 * Adapters that let interactive one-line commands (`instance console`) take over a session's
 * terminal or streams instead of the process' own stdio (which, in the sshd, is kattach's pipe).
 */
import { type Readable, Readable as NodeReadable, type Writable } from "node:stream";
import { type ConsoleStdio, DETACH_BYTE } from "./console_attach.ts";
import type { Terminal } from "./terminal.ts";

function writer(stream: Writable): ConsoleStdio["stdout"] {
  return {
    write: (p) =>
      new Promise<number>((resolve) => {
        if (stream.destroyed || stream.writableEnded) return resolve(p.length);
        stream.write(p, () => resolve(p.length));
      }),
  };
}

/** The stdio of an interactive command on a Terminal (menus, SSH with a pty, the console). */
export function terminalStdio(terminal: Terminal): ConsoleStdio {
  // The keys after Ctrl-] are the menu's, not the console's (it may be slow to let go).
  const input = terminal.openInput({ stopAt: DETACH_BYTE });
  const stdin = NodeReadable.toWeb(input) as ReadableStream<Uint8Array>;
  return {
    stdin: Object.assign(stdin, {
      isTerminal: () => true,
      setRaw: (raw: boolean) => void input.setRawMode(raw),
    }),
    stdout: writer(terminal.output),
    stderr: writer(terminal.output),
  };
}

/** The stdio of an interactive command on plain streams (SSH exec without a pty). */
export function streamStdio(stdin: Readable, stdout: Writable, stderr: Writable): ConsoleStdio {
  return {
    stdin: Object.assign(NodeReadable.toWeb(stdin) as ReadableStream<Uint8Array>, {
      isTerminal: () => false,
    }),
    stdout: writer(stdout),
    stderr: writer(stderr),
  };
}

/**
 * `instance console NAME`: joins the operator's terminal to a guest's serial console socket
 * (a unix socket kattach returns; reachable by root, who runs aq). Ctrl-] detaches. Without a
 * terminal (scripts, tests), stdin is sent as is and the console detaches shortly after stdin ends.
 */

/** The byte that detaches: Ctrl-] (0x1d), as in telnet. */
export const DETACH_BYTE = 0x1d;

/** Streams the console uses; the process' own stdio by default. */
export interface ConsoleStdio {
  stdin: ReadableStream<Uint8Array> & { isTerminal?(): boolean; setRaw?(raw: boolean): void };
  stdout: { write(p: Uint8Array): Promise<number> };
  stderr: { write(p: Uint8Array): Promise<number> };
}

/** Attaches to the console socket until Ctrl-], end of input or the guest going away. */
export async function attachConsole(
  socket: string,
  options: { instance: string; stdio?: ConsoleStdio },
): Promise<number> {
  const io: ConsoleStdio = options.stdio ?? {
    stdin: Object.assign(Deno.stdin.readable, {
      isTerminal: () => Deno.stdin.isTerminal(),
      setRaw: (raw: boolean) => Deno.stdin.setRaw(raw),
    }),
    stdout: Deno.stdout,
    stderr: Deno.stderr,
  };
  const enc = new TextEncoder();
  let conn: Deno.UnixConn;
  try {
    conn = await Deno.connect({ transport: "unix", path: socket });
  } catch (err) {
    await io.stderr.write(
      enc.encode(
        `Error: Cannot open the console of ${options.instance}: ${(err as Error).message}\n` +
          `Hint: another operator may be attached (one at a time); aq must run as root\n`,
      ),
    );
    return 1;
  }
  const tty = io.stdin.isTerminal?.() ?? false;
  await io.stderr.write(
    enc.encode(`Connected to the console of ${options.instance}. Detach with Ctrl-].\r\n`),
  );
  if (tty) io.stdin.setRaw?.(true);
  let detached = false;
  const fromGuest = (async () => {
    const buf = new Uint8Array(16 * 1024);
    for (;;) {
      const n = await conn.read(buf).catch(() => null);
      if (n === null) return;
      await io.stdout.write(buf.subarray(0, n));
    }
  })();
  const reader = io.stdin.getReader();
  const toGuest = (async () => {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) {
        await new Promise((r) => setTimeout(r, 1000)); // let the reply arrive
        return;
      }
      const cut = value.indexOf(DETACH_BYTE);
      const chunk = cut === -1 ? value : value.subarray(0, cut);
      if (chunk.length > 0) await conn.write(chunk).catch(() => {});
      if (cut !== -1) {
        detached = true;
        return;
      }
    }
  })();
  await Promise.race([fromGuest, toGuest]);
  if (tty) io.stdin.setRaw?.(false);
  try {
    reader.releaseLock();
  } catch { /* a read is pending: the process ends soon */ }
  try {
    conn.close();
  } catch { /* closed */ }
  await fromGuest;
  await io.stderr.write(
    enc.encode(detached ? "\r\nDetached.\r\n" : "\r\nConsole closed.\r\n"),
  );
  return 0;
}

/** Small waits and ports the benches share (they run outside the test harness). */
import { IpcClient } from "../ipc/mod.ts";

/** Resolves after `ms` milliseconds. */
export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Waits until `ok()`, every 100 ms, for at most `ms`; says what it waited for. */
export async function waitUntil(
  what: string,
  ms: number,
  ok: () => boolean | Promise<boolean>,
): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await ok())) {
    if (Date.now() > deadline) throw new Error(`waited ${ms / 1000} s for ${what}`);
    await sleep(100);
  }
}

/** A loopback TCP port free at the moment of asking. */
export function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

/** True when something accepts TCP connections on 127.0.0.1:`port`. */
export async function listening(port: number): Promise<boolean> {
  try {
    (await Deno.connect({ hostname: "127.0.0.1", port })).close();
    return true;
  } catch {
    return false;
  }
}

/**
 * Connects to the IPC socket of the kattach whose state directory is `state`, trying every
 * 100 ms for at most `ms` (a kattach just started opens it once ready).
 */
export async function connectKattach(state: string, ms: number): Promise<IpcClient> {
  let client: IpcClient | undefined;
  await waitUntil(`kattach's IPC socket (${state}/run)`, ms, async () => {
    client = await IpcClient.connect(`${state}/run`).catch(() => undefined);
    return client !== undefined;
  });
  return client!;
}

/** Ends `children` with SIGTERM, the last started first, each awaited before the next. */
export async function stopChildren(children: Deno.ChildProcess[]): Promise<void> {
  for (const child of [...children].reverse()) {
    try {
      child.kill("SIGTERM");
    } catch { /* gone */ }
    await child.status.catch(() => {});
  }
}

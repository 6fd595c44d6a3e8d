/**
 * Soak: 200 clients connect, send and vanish at random for 60 s while configuration writes go on
 * through another client. kattach's resident memory at the end is within 10 % of the start (after
 * a warm-up) and it holds no more descriptors than before (/proc/PID/fd). Prints the figures.
 */
import assert from "node:assert/strict";
import { IpcClient } from "../ipc/mod.ts";
import { encodeFrame } from "../ipc/protocol.ts";
import { TestKattach } from "./_harness.ts";
import { waitFor, withDeadline } from "./_util.ts";

const CLIENTS = 200;
const SOAK_MS = 60_000;
const WARMUP_MS = 15_000;

/** kattach's resident memory. */
export function rssKiB(pid: number): number {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  return Number(/^VmRSS:\s+(\d+) kB/m.exec(status)![1]);
}

function fds(pid: number): number {
  return [...Deno.readDirSync(`/proc/${pid}/fd`)].length;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** One client's life: connect, do one random thing, vanish; again until `until`. */
async function client(socket: string, token: string, until: number): Promise<number> {
  let rounds = 0;
  const buf = new Uint8Array(16 * 1024);
  while (Date.now() < until) {
    rounds++;
    let conn: Deno.UnixConn;
    try {
      conn = await Deno.connect({ transport: "unix", path: socket });
    } catch {
      await sleep(10);
      continue;
    }
    try {
      const request = encodeFrame({
        v: 1,
        id: rounds,
        token,
        action: Math.random() < 0.5 ? "system.status" : "vlan.list",
        params: {},
      });
      const r = Math.random();
      if (r < 0.25) {
        await conn.write(request.subarray(0, 1 + Math.floor(Math.random() * request.length)));
      } else if (r < 0.5) {
        await conn.write(request); // never reads the answer
      } else if (r < 0.6) {
        await conn.write(new TextEncoder().encode("garbage " + Math.random() + "\n"));
      } else {
        await conn.write(request);
        await withDeadline(conn.read(buf), 10_000, "an answer").catch(() => null);
      }
    } catch { /* kattach closed first */ }
    try {
      conn.close();
    } catch { /* closed */ }
    await sleep(Math.random() * 30);
  }
  return rounds;
}

/** Configuration writes through a well-behaved client; every one must succeed. */
async function writer(stateDir: string, until: number): Promise<number> {
  const c = await IpcClient.connect(`${stateDir}/run`);
  let writes = 0;
  try {
    for (let i = 0; Date.now() < until; i++) {
      const id = 100 + (i % 50);
      await c.call("vlan.add", { id, name: `soak${id}`, cidr: `10.${id}.0.0/24` });
      await c.call("vlan.del", { vlan: String(id) });
      writes += 2;
    }
  } finally {
    c.close();
  }
  return writes;
}

/** Runs the clients and the writer for `ms`. */
export async function load(
  k: TestKattach,
  ms: number,
): Promise<{ rounds: number; writes: number }> {
  const token = (await Deno.readTextFile(`${k.stateDir}/run/token`)).trim();
  const socket = `${k.stateDir}/run/kattach.sock`;
  const until = Date.now() + ms;
  const [writes, ...rounds] = await Promise.all([
    writer(k.stateDir, until),
    ...Array.from({ length: CLIENTS }, () => client(socket, token, until)),
  ]);
  return { rounds: rounds.reduce((a, b) => a + b, 0), writes };
}

Deno.test({
  name: "soak: 200 clients vanishing at random for 60 s; RSS within 10 %, no leaked descriptors",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const k = await TestKattach.start();
    try {
      await load(k, WARMUP_MS);
      await sleep(1000);
      const rss0 = rssKiB(k.pid);
      const fd0 = fds(k.pid);
      const { rounds, writes } = await load(k, SOAK_MS);
      // Connections the clients dropped are closed by kattach within a moment.
      await waitFor(
        () => fds(k.pid) <= fd0,
        () => `kattach's descriptors back to ${fd0} (now ${fds(k.pid)})`,
        {
          timeoutMs: 15_000,
        },
      );
      await sleep(1000);
      const rss1 = rssKiB(k.pid);
      console.log(
        `soak: ${rounds} client connections, ${writes} writes in ${SOAK_MS / 1000} s; ` +
          `kattach RSS ${rss0} KiB -> ${rss1} KiB (${((rss1 / rss0 - 1) * 100).toFixed(1)} %), ` +
          `descriptors ${fd0} -> ${fds(k.pid)}`,
      );
      assert.ok(writes > 0);
      assert.ok(rss1 <= rss0 * 1.1, `RSS ${rss0} KiB -> ${rss1} KiB`);
      assert.equal((await k.aq("system", "status")).code, 0);
      assert.doesNotMatch(k.log, /BUG|bug \(/);
    } finally {
      await k.dispose();
    }
  },
});

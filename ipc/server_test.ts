/**
 * The IPC server when clients misbehave: one writer per connection (frames never interleave under
 * backpressure), a failed write ends that connection only, and clients that vanish at any moment
 * (while sending, before reading, mid progress stream, many at once) disturb nobody else.
 * A real unix socket; the dispatch is a small fake (the server is what is under test).
 */
import assert from "node:assert/strict";
import { IpcClient } from "./client.ts";
import { encodeFrame } from "./protocol.ts";
import { type Dispatch, FrameWriter, serveIpc } from "./server.ts";

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

Deno.test("FrameWriter: concurrent frames over a trickling connection come out whole and in order", async () => {
  const written: number[] = [];
  const conn = {
    async write(bytes: Uint8Array): Promise<number> {
      if (Math.random() < 0.1) await sleep(0);
      const n = Math.min(bytes.length, 1 + Math.floor(Math.random() * 16)); // short writes
      written.push(...bytes.subarray(0, n));
      return n;
    },
  };
  const writer = new FrameWriter(conn, () => assert.fail("no write fails here"));
  const frames = Array.from({ length: 200 }, (_, i) => ({ id: i, text: "x".repeat(i % 50) }));
  await Promise.all(frames.map((f) => writer.send(f)));
  const lines = new TextDecoder().decode(new Uint8Array(written)).trimEnd().split("\n");
  assert.deepEqual(lines.map((l) => JSON.parse(l)), frames);
});

Deno.test("FrameWriter: a failed write ends the connection once and drops later frames", async () => {
  let writes = 0;
  let failures = 0;
  const conn = {
    write(bytes: Uint8Array): Promise<number> {
      writes++;
      if (writes === 3) return Promise.reject(new Deno.errors.BrokenPipe("peer gone"));
      return Promise.resolve(bytes.length);
    },
  };
  const writer = new FrameWriter(conn, () => failures++);
  const results = await Promise.allSettled([1, 2, 3, 4, 5].map((id) => writer.send({ id })));
  assert.deepEqual(results.map((r) => r.status), [
    "fulfilled",
    "fulfilled",
    "rejected",
    "rejected",
    "rejected",
  ]);
  assert.equal(writes, 3);
  assert.equal(failures, 1);
});

/** A server whose `vlan.list` streams `n` progress frames of `size` bytes, then answers. */
async function startServer(log: string[]) {
  const dir = await Deno.makeTempDir({ prefix: "kaos-ipc-" });
  const started = { streams: 0 };
  const dispatch: Dispatch = async (action, _params, ctx) => {
    if (action === "vlan.list") {
      started.streams++;
      for (let i = 0; i < 2000 && !ctx.signal.aborted; i++) {
        ctx.progress("p".repeat(4000), i, 2000);
        if (i % 100 === 0) await sleep(0);
      }
      return [];
    }
    if (action === "system.status") await sleep(20);
    return {
      version: "t",
      hostname: "h",
      pid: 1,
      mode: "hosted",
      stateDir: dir,
      uptimeSeconds: 1,
      accel: { kind: "tcg", reason: "" },
      vkaos: null,
      store: { schema: 1, integrity: "ok", integrityCheckedAt: "2026-11-27T00:00:00.000Z" },
      dataDisk: null,
      counts: { vlans: 0, modules: 0, configGroups: 0, vmimages: 0, instances: 0 },
      warnings: [],
    };
  };
  const server = await serveIpc({ runDir: `${dir}/run`, dispatch, log: (l) => log.push(l) });
  return { dir, server, started };
}

async function rawConnect(path: string): Promise<Deno.UnixConn> {
  return await Deno.connect({ transport: "unix", path });
}

/** The frames read from `conn` until `results` result frames came (the connection must stay open). */
async function readFrames(
  conn: Deno.UnixConn,
  results: number,
): Promise<{ id: number; type: string }[]> {
  const lines: string[] = [];
  let buffered = "";
  const dec = new TextDecoder();
  const buf = new Uint8Array(65536);
  while (lines.filter((l) => l.includes('"type":"result"')).length < results) {
    const n = await conn.read(buf);
    assert.notEqual(n, null, `the connection stayed open until ${results} result(s)`);
    buffered += dec.decode(buf.subarray(0, n!), { stream: true });
    const parts = buffered.split("\n");
    buffered = parts.pop()!;
    lines.push(...parts);
  }
  return lines.map((l) => JSON.parse(l));
}

Deno.test("serveIpc: clients vanishing at any moment disturb nobody and leave no connection behind", async () => {
  const log: string[] = [];
  const { dir, server, started } = await startServer(log);
  try {
    const token = (await Deno.readTextFile(`${dir}/run/token`)).trim();
    const request = (id: number, action: string) =>
      encodeFrame({ v: 1, id, token, action, params: {}, progress: true });
    const vanish = async (kind: number) => {
      const c = await rawConnect(server.socketPath);
      const frame = request(kind, kind % 2 === 0 ? "vlan.list" : "system.status");
      if (kind % 4 === 0) await c.write(frame.subarray(0, frame.length >> 1)); // half a frame
      else if (kind % 4 === 1) await c.write(frame); // a request, never read
      else if (kind % 4 === 2) { // a progress stream, read a little, then gone
        await c.write(frame);
        await c.read(new Uint8Array(1000));
      } else { // many requests pipelined, nothing read
        for (let i = 0; i < 20; i++) await c.write(request(i, "vlan.list"));
      }
      c.close();
    };
    // Meanwhile a well-behaved client keeps working.
    const client = await IpcClient.connect(`${dir}/run`);
    let answered = 0;
    const steady = (async () => {
      for (let i = 0; i < 30; i++) {
        await client.call("system.status", {});
        answered++;
      }
    })();
    for (let round = 0; round < 5; round++) {
      await Promise.all(Array.from({ length: 40 }, (_, i) => vanish(round * 40 + i)));
    }
    await steady;
    assert.equal(answered, 30);
    assert.ok(started.streams > 0, "progress streams ran");

    // A reader that stops reading under backpressure, then one that reads everything: whole
    // frames only, each progress frame before its result.
    const stalled = await rawConnect(server.socketPath);
    await stalled.write(request(7, "vlan.list"));
    const full = await rawConnect(server.socketPath);
    await full.write(request(1, "vlan.list"));
    await full.write(request(2, "system.status"));
    const frames = await readFrames(full, 2);
    assert.equal(frames.filter((f) => f.id === 1 && f.type === "progress").length, 2000);
    assert.deepEqual(frames.filter((f) => f.type === "result").map((f) => f.id), [1, 2]);
    full.close();
    stalled.close();

    // Every vanished connection is gone from the server (the count of its open connections is
    // not visible; a fresh client answering and the log are): no bug was logged.
    const again = await IpcClient.connect(`${dir}/run`);
    await again.call("system.status", {});
    again.close();
    client.close();
    assert.deepEqual(log.filter((l) => /BUG|bug|connection ended/.test(l)), []);
  } finally {
    await server.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("serveIpc: progress frames go only to a client that asks for them (IpcClient: one that shows them)", async () => {
  const log: string[] = [];
  const { dir, server } = await startServer(log);
  try {
    const token = (await Deno.readTextFile(`${dir}/run/token`)).trim();
    // Raw: every frame the server writes for one request, up to its result.
    const frames = async (progress: boolean | undefined) => {
      const conn = await rawConnect(server.socketPath);
      const ask = progress === undefined ? {} : { progress };
      await conn.write(
        encodeFrame({ v: 1, id: 1, token, action: "vlan.list", params: {}, ...ask }),
      );
      const read = await readFrames(conn, 1);
      conn.close();
      return read.map((f) => f.type);
    };
    assert.deepEqual(await frames(undefined), ["result"]);
    assert.deepEqual(await frames(false), ["result"]);
    const asked = await frames(true);
    assert.equal(asked.filter((t) => t === "progress").length, 2000);
    assert.equal(asked.at(-1), "result");
    // IpcClient asks when the call has an onProgress, and not otherwise.
    const client = await IpcClient.connect(`${dir}/run`);
    let reports = 0;
    await client.call("vlan.list", {}, { onProgress: () => reports++ });
    assert.equal(reports, 2000);
    await client.call("vlan.list", {}); // answered without 2000 frames of 4 kB to skip
    client.close();
  } finally {
    await server.close();
    await Deno.remove(dir, { recursive: true });
  }
});

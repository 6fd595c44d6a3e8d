/**
 * Fuzzing kattach over its real IPC socket with fast-check: random bytes, random JSON, mutated
 * requests and requests built from random one-line commands, on connections that vanish at random
 * (right after sending, in the middle of a frame, after reading a little) or read every answer.
 * Afterwards kattach still answers, `PRAGMA integrity_check` is ok and the configuration (every
 * row of every table) is exactly as before.
 *
 * Requests that would change the configuration (write actions) carry a wrong token, so they are
 * refused; read-only actions carry the right one and reach their handlers.
 */
import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import * as fc from "fast-check";
import { commands, findCommand, parseArgs } from "../cli/mod.ts";
import { actions } from "../ipc/mod.ts";
import { encodeFrame, MAX_FRAME_BYTES, ServerFrame } from "../ipc/protocol.ts";
import { TestKattach } from "./_harness.ts";
import { withDeadline } from "./_util.ts";

/** Actions that only read: sent with the right token. */
const READ_ONLY = new Set([
  "system.status",
  "vlan.list",
  "vlan.show",
  "module.list",
  "module.show",
  "configGroup.list",
  "configGroup.show",
  "vmimage.list",
  "vmimage.show",
  "instance.list",
  "instance.show",
  "instance.stats",
  "instance.log",
  "appqueue.list",
  "system.subscription.show",
  "module.commands",
  "qmp.commands",
  "auth.keys.list",
  "vlan.route.list",
]);
const FRAMES = 10_000;
const SEED = 11_2026;

/** Every row of every table, in order: the configuration as data. */
function dumpConfig(dbPath: string): { integrity: string; rows: Record<string, unknown[]> } {
  const db = new DatabaseSync(dbPath, { readOnly: true });
  try {
    const integrity = String(
      (db.prepare("PRAGMA integrity_check").get() as Record<string, unknown>).integrity_check,
    );
    const tables = db.prepare(
      "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name",
    ).all() as { name: string }[];
    const rows: Record<string, unknown[]> = {};
    for (const { name } of tables) {
      rows[name] = db.prepare(`SELECT * FROM "${name}" ORDER BY 1, 2`).all();
    }
    return { integrity, rows };
  } finally {
    db.close();
  }
}

/** Words for one-line commands: every command's words and flags, plus some values. */
const WORDS = [
  ...new Set(commands.flatMap((c) => [...c.path, ...c.flags.map((f) => `--${f.name}`)])),
  ...["web", "web-1", "10", "4095", "10.0.10.0/24", "x=1", "title=é", "--", "-1", "1e9", ""],
];

/** One frame as bytes on the wire (usually one line; raw bytes may hold several or none). */
function frameArbitrary(token: string): fc.Arbitrary<Uint8Array> {
  const enc = new TextEncoder();
  const line = (v: unknown) => encodeFrame(v);
  const tokenFor = (action: unknown) =>
    typeof action === "string" && READ_ONLY.has(action) ? token : "f".repeat(64);
  const actionNames = Object.keys(actions);
  const valid = fc.record({
    v: fc.constant(1),
    id: fc.nat(),
    action: fc.constantFrom(...actionNames),
    params: fc.oneof(fc.constant({}), fc.object(), fc.record({ name: fc.string() })),
  }).map((r) => ({ ...r, token: tokenFor(r.action) }));
  const mutated = fc.tuple(
    valid,
    fc.constantFrom("v", "id", "token", "action", "params", "extra"),
    fc.jsonValue(),
  )
    .map(([r, key, value]) => {
      const m: Record<string, unknown> = { ...r, [key]: value };
      if (key !== "token") m.token = tokenFor(m.action);
      return line(m);
    });
  const oneLine = fc.array(fc.constantFrom(...WORDS), { minLength: 1, maxLength: 7 }).map(
    (words) => {
      const found = findCommand(words);
      let request: { action: string; params: unknown } = { action: words[0], params: words };
      try {
        if (found) request = found.command.build(parseArgs(found.command, found.rest));
      } catch { /* a usage error: send the words as they are */ }
      return line({ v: 1, id: 1, token: tokenFor(request.action), ...request });
    },
  );
  return fc.oneof(
    { weight: 3, arbitrary: valid.map(line) },
    { weight: 4, arbitrary: mutated },
    { weight: 4, arbitrary: oneLine },
    { weight: 2, arbitrary: fc.jsonValue().map(line) },
    { weight: 2, arbitrary: fc.string({ unit: "binary" }).map((s) => enc.encode(s + "\n")) },
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: 512 }) },
    { weight: 1, arbitrary: fc.constant(new Uint8Array(MAX_FRAME_BYTES + 10).fill(0x7b)) },
  );
}

/** How a fuzz connection ends. */
type Ending = "read-all" | "vanish" | "cut-frame" | "read-some";

async function session(socket: string, frames: Uint8Array[], ending: Ending): Promise<void> {
  const conn = await Deno.connect({ transport: "unix", path: socket });
  try {
    for (const [i, f] of frames.entries()) {
      const last = i === frames.length - 1;
      const bytes = last && ending === "cut-frame" ? f.subarray(0, f.length >> 1) : f;
      if (bytes.length > 0) await conn.write(bytes).catch(() => {});
    }
    if (ending === "vanish" || ending === "cut-frame") return;
    const buf = new Uint8Array(64 * 1024);
    if (ending === "read-some") {
      await withDeadline(conn.read(buf), 10_000, "a first answer").catch(() => null);
      return;
    }
    // read-all: every line kattach sends is one whole, valid frame; it closes after the last.
    await conn.closeWrite().catch(() => {});
    let text = "";
    const dec = new TextDecoder();
    const readAll = async () => {
      while (true) {
        const n = await conn.read(buf).catch(() => null);
        if (n === null) break;
        text += dec.decode(buf.subarray(0, n), { stream: true });
      }
    };
    await withDeadline(readAll(), 30_000, "kattach to answer and close the connection");
    for (const l of text.split("\n").filter((l) => l !== "")) {
      assert.ok(ServerFrame.safeParse(JSON.parse(l)).success, `a valid frame: ${l.slice(0, 300)}`);
    }
  } finally {
    try {
      conn.close();
    } catch { /* closed */ }
  }
}

Deno.test({
  name: "fuzz: 10,000 random and mutated frames and one-line commands with random disconnects",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const k = await TestKattach.start();
    try {
      // Some configuration to keep intact.
      await k.json("vlan", "add", "10", "front", "10.0.10.0/24");
      await k.json("vlan", "add", "20", "back", "10.0.20.0/28");
      await k.json("vlan", "reserve", "10", "10.0.10.7", "--note", "printer");
      const db = `${k.stateDir}/kaos.db`;
      const before = dumpConfig(db);
      assert.equal(before.integrity, "ok");

      const token = (await Deno.readTextFile(`${k.stateDir}/run/token`)).trim();
      const frames = fc.sample(frameArbitrary(token), { numRuns: FRAMES, seed: SEED });
      const plan = fc.sample(
        fc.record({
          size: fc.integer({ min: 1, max: 25 }),
          ending: fc.constantFrom<Ending>("read-all", "vanish", "cut-frame", "read-some"),
        }),
        { numRuns: FRAMES, seed: SEED + 1 },
      );
      const sessions: { frames: Uint8Array[]; ending: Ending }[] = [];
      for (let at = 0, i = 0; at < frames.length; i++) {
        sessions.push({ frames: frames.slice(at, at + plan[i].size), ending: plan[i].ending });
        at += plan[i].size;
      }
      const socket = `${k.stateDir}/run/kattach.sock`;
      let next = 0;
      const worker = async () => {
        while (next < sessions.length) {
          const s = sessions[next++];
          await session(socket, s.frames, s.ending);
        }
      };
      await Promise.all(Array.from({ length: 8 }, worker));
      const sent = sessions.reduce((n, s) => n + s.frames.length, 0);
      assert.ok(sent >= FRAMES, `${sent} frames sent`);

      // kattach answers, its store is intact and the configuration is exactly as before.
      const status = await k.json<{ store: { integrity: string } }>("system", "status");
      assert.equal(status.store.integrity, "ok");
      assert.deepEqual(dumpConfig(db), before);
      assert.doesNotMatch(k.log, /BUG|bug \(/);
    } finally {
      await k.dispose();
    }
  },
});

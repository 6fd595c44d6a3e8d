import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { migrations } from "./migrations.ts";
import { Store } from "./store.ts";
import { replaceModule } from "./store_appqueue.ts";

Deno.test("store.tx durable: false commits (seen by another connection), rolls back on a throw, and leaves synchronous = FULL", async () => {
  const dir = await Deno.makeTempDir({ prefix: "kaos-store-tx-" });
  const store = Store.open(`${dir}/kaos.db`);
  const other = new DatabaseSync(`${dir}/kaos.db`);
  try {
    const synchronous = () => Number(store.get("PRAGMA synchronous")?.synchronous);
    assert.equal(synchronous(), 2); // FULL
    store.tx(() => store.run("CREATE TABLE t (v INTEGER)"));
    store.tx(() => store.run("INSERT INTO t VALUES (1)"), { durable: false });
    assert.equal(synchronous(), 2);
    assert.throws(
      () =>
        store.tx(() => {
          store.run("INSERT INTO t VALUES (2)");
          throw new Error("no");
        }, { durable: false }),
      /no/,
    );
    assert.equal(synchronous(), 2);
    assert.deepEqual(other.prepare("SELECT v FROM t").all().map((r) => r.v), [1]);
  } finally {
    other.close();
    store.close();
    await Deno.remove(dir, { recursive: true });
  }
});

/** The commit frames in a WAL file (frame header bytes 4-7: the database size after a commit). */
function walCommits(path: string): number {
  const wal = Deno.readFileSync(path);
  if (wal.length < 32) return 0; // no frame written since the last checkpoint
  const view = new DataView(wal.buffer, wal.byteOffset, wal.byteLength);
  const pageSize = view.getUint32(8);
  let commits = 0;
  for (let at = 32; at + 24 + pageSize <= wal.length; at += 24 + pageSize) {
    if (view.getUint32(at + 4) !== 0) commits++;
  }
  return commits;
}

Deno.test("a first open applies every migration in one durable commit; a second open writes nothing", async () => {
  const dir = await Deno.makeTempDir({ prefix: "kaos-store-migrate-" });
  const path = `${dir}/kaos.db`;
  try {
    const store = Store.open(path);
    try {
      assert.equal(store.schemaVersion(), Math.max(...migrations.map((m) => m.version)));
      assert.equal(walCommits(`${path}-wal`), 1);
    } finally {
      store.close();
    }
    const again = Store.open(path);
    try {
      assert.equal(walCommits(`${path}-wal`), 0); // up to date: no write transaction
    } finally {
      again.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a failing migration leaves the store as it was: no earlier pending one applied, data kept", async () => {
  const dir = await Deno.makeTempDir({ prefix: "kaos-store-migrate-" });
  const path = `${dir}/kaos.db`;
  const broken = [
    ...migrations,
    { version: 1000, name: "fine", sql: "CREATE TABLE fine_then (x INTEGER)" },
    { version: 1001, name: "broken", sql: "INSERT INTO no_such_table VALUES (1)" },
  ];
  try {
    // A fresh database: nothing at all is left behind.
    assert.throws(
      () => Store.open(path, { migrations: broken }),
      /Migration 1001 \(broken\) failed: no such table: no_such_table/,
    );
    const empty = new DatabaseSync(path);
    assert.deepEqual(empty.prepare("SELECT name FROM sqlite_schema").all(), []);
    empty.close();

    // A store at schema 4 with a VLAN: the pending 5-12 are not applied either.
    const old = Store.open(path, { migrations: migrations.filter((m) => m.version <= 4) });
    old.tx(() =>
      old.run(
        "INSERT INTO vlan VALUES (10, 'front', '10.0.10.0/24', '10.0.10.1', '10.0.10.2', '10.0.10.254', 'then')",
      )
    );
    old.close();
    assert.throws(() => Store.open(path, { migrations: broken }), /Migration 1001/);
    const db = new DatabaseSync(path);
    assert.equal(db.prepare("SELECT MAX(version) AS v FROM schema_migration").get()?.v, 4);
    assert.deepEqual(
      db.prepare("SELECT name FROM sqlite_schema WHERE name = 'fine_then'").all(),
      [],
    );
    assert.deepEqual(db.prepare("SELECT id, cidr FROM vlan").all().map((r) => [r.id, r.cidr]), [[
      10,
      "10.0.10.0/24",
    ]]);
    db.close();

    // The real list then applies 5-12 and keeps the VLAN.
    const store = Store.open(path);
    assert.equal(store.schemaVersion(), Math.max(...migrations.map((m) => m.version)));
    assert.equal(store.getVlan(10)?.cidr, "10.0.10.0/24");
    store.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a durable: false commit syncs nothing; sync() then fdatasyncs the write-ahead log (seen by strace)", async () => {
  const dir = await Deno.makeTempDir({ prefix: "kaos-store-sync-" });
  try {
    const store = new URL("./store.ts", import.meta.url).pathname;
    await Deno.writeTextFile(
      `${dir}/child.ts`,
      `import { Store } from ${JSON.stringify(store)};
const s = Store.open(${JSON.stringify(`${dir}/kaos.db`)});
const say = (m: string) => Deno.stderr.writeSync(new TextEncoder().encode(m));
say("MARK-COMMIT");
s.tx(() => s.run("INSERT INTO setting (key, value) VALUES ('k', 'v')"), { durable: false });
say("MARK-SYNC");
await s.sync();
say("MARK-END");
s.close();
`,
    );
    const config = new URL("../deno.json", import.meta.url).pathname;
    const out = await new Deno.Command("strace", {
      args: [
        "-f",
        "-y",
        "-o",
        `${dir}/trace`,
        "-e",
        "trace=fsync,fdatasync,write",
        Deno.execPath(),
        "run",
        "-A",
        "--config",
        config,
        `${dir}/child.ts`,
      ],
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.ok(out.success, new TextDecoder().decode(out.stderr));
    const trace = await Deno.readTextFile(`${dir}/trace`);
    const at = (m: string) => trace.indexOf(m);
    assert.ok(at("MARK-COMMIT") > 0 && at("MARK-SYNC") > at("MARK-COMMIT"), trace);
    assert.ok(at("MARK-END") > at("MARK-SYNC"), trace);
    const syncs = (from: string, to: string) =>
      trace.slice(at(from), at(to)).split("\n").filter((l) =>
        /\b(fsync|fdatasync)\(\d+<[^>]*kaos\.db-wal>\) = 0/.test(l)
      ).length;
    assert.equal(syncs("MARK-COMMIT", "MARK-SYNC"), 0);
    assert.equal(syncs("MARK-SYNC", "MARK-END"), 1);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("store.releaseMemory: SQLite's page cache goes; the data and prepared queries stay", async () => {
  const dir = await Deno.makeTempDir({ prefix: "kaos-store-release-" });
  const store = Store.open(`${dir}/kaos.db`);
  try {
    store.tx(() => {
      store.run("CREATE TABLE t (v TEXT)");
      for (let i = 0; i < 2000; i++) {
        store.run("INSERT INTO t VALUES (?)", [`row ${i} ${"x".repeat(200)}`]);
      }
    });
    const read = () => store.all("SELECT v FROM t ORDER BY rowid").map((r) => r.v);
    const before = read();
    store.releaseMemory();
    assert.deepEqual(read(), before);
    assert.equal(before.length, 2000);
  } finally {
    store.close();
    await Deno.remove(dir, { recursive: true });
  }
  assert.throws(() => store.releaseMemory()); // closed: the reducer's hook skips it
});

Deno.test("a module read again is parsed once per content: the same frozen object until its rows change", async () => {
  const dir = await Deno.makeTempDir({ prefix: "kaos-store-module-" });
  const store = Store.open(`${dir}/kaos.db`);
  try {
    const src = new URL("../fixtures/src/web/", import.meta.url);
    const record = {
      name: "web",
      version: "1.0.0",
      kind: "app" as const,
      description: "the fixture web module",
      imageFormat: "ext4" as const,
      dir: `${dir}/modules/web`,
      files: [{ part: "image" as const, file: "web.aqi", sha256: "ab".repeat(32), size: 4096 }],
      climod: JSON.parse(await Deno.readTextFile(new URL("climod.aq", src))),
      appmgr: JSON.parse(await Deno.readTextFile(new URL("appmgr.aq", src))),
    };
    store.tx(() => store.insertModule(record));
    const first = store.getModule("web")!;
    assert.equal(store.getModule("web"), first); // the same object: not parsed again
    assert.equal(store.listModules()[0], first);
    assert.ok(Object.isFrozen(first) && Object.isFrozen(first.files[0]));
    assert.ok(Object.isFrozen(first.appmgr) && Object.isFrozen(first.climod));
    assert.throws(() => (first.files as unknown[]).push({}), TypeError); // no reader changes it
    // A row that changes (an update: version and image) is read anew.
    store.tx(() =>
      replaceModule(store, {
        ...record,
        version: "1.1.0",
        files: [{ ...record.files[0], sha256: "cd".repeat(32) }],
      })
    );
    const updated = store.getModule("web")!;
    assert.notEqual(updated, first);
    assert.equal(updated.version, "1.1.0");
    assert.equal(updated.files[0].sha256, "cd".repeat(32));
    assert.equal(first.version, "1.0.0"); // what a reader held before stays as it was
    // A rolled-back change leaves what is read as it was.
    assert.throws(() =>
      store.tx(() => {
        replaceModule(store, { ...record, version: "9.9.9" });
        throw new Error("abort");
      })
    );
    assert.equal(store.getModule("web"), updated);
    store.tx(() => store.deleteModule("web"));
    assert.equal(store.getModule("web"), undefined);
  } finally {
    store.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("store.getInstances: the named ones that exist, in the order asked, as getInstance reads them", async () => {
  const dir = await Deno.makeTempDir({ prefix: "kaos_store_test_" });
  const store = Store.open(`${dir}/kaos.db`);
  try {
    store.tx(() => {
      store.insertVmImage({
        name: "web",
        modules: [],
        configGroups: [],
        vlans: [],
        memoryMiB: 64,
        cpus: 1,
      });
      for (const n of [1, 2, 3]) {
        store.insertInstance({
          name: `web-${n}`,
          vmimage: "web",
          state: "defined",
          autostart: n === 2,
          restartPolicy: "never",
          nics: [
            { index: 0, vlan: null, mac: `0a:4b:53:00:00:0${n}`, ip: null },
            { index: 1, vlan: null, mac: `0a:4b:53:00:01:0${n}`, ip: null },
          ],
        });
      }
    });
    const got = store.getInstances(["web-3", "gone", "web-1"]);
    assert.deepEqual(got.map((i) => i.name), ["web-3", "web-1"]);
    assert.deepEqual(got, [store.getInstance("web-3"), store.getInstance("web-1")]);
    assert.deepEqual(store.getInstances([]), []);
    assert.equal(store.instanceState("web-2"), "defined");
    assert.equal(store.instanceState("gone"), undefined);
  } finally {
    store.close();
    await Deno.remove(dir, { recursive: true });
  }
});

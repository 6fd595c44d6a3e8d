import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { GroupCommit } from "./group_commit.ts";
import { Store } from "./store.ts";

Deno.test("GroupCommit: one transaction per turn; a failing write loses only its own changes", async () => {
  const dir = await Deno.makeTempDir({ prefix: "kaos-group-commit-" });
  const store = Store.open(`${dir}/kaos.db`);
  try {
    store.tx(() => store.run("CREATE TABLE t (v INTEGER PRIMARY KEY)"));
    const group = new GroupCommit(store);
    const write = (v: number) => () => store.run("INSERT INTO t VALUES (?)", [v]);
    const failing = () => {
      store.run("INSERT INTO t VALUES (3)");
      store.run("INSERT INTO t VALUES (1)"); // a duplicate key: this write fails
    };
    const outcomes = await Promise.allSettled([
      group.commit(write(1), { durable: false }),
      group.commit(failing, { durable: false }),
      group.commit(write(2), { durable: true }),
    ]);
    assert.deepEqual(outcomes.map((o) => o.status), ["fulfilled", "rejected", "fulfilled"]);
    assert.match(String((outcomes[1] as PromiseRejectedResult).reason), /UNIQUE/);
    // 3 went with the failing write; 1 and 2 are committed.
    assert.deepEqual(store.all("SELECT v FROM t ORDER BY v").map((r) => r.v), [1, 2]);
    // One transaction: the second write sees the first's row, another connection does not yet.
    const other = new DatabaseSync(`${dir}/kaos.db`);
    const seen: number[] = [];
    const count = (db: { prepare(sql: string): { get(): unknown } }) =>
      Number((db.prepare("SELECT count(*) AS n FROM t WHERE v = 10").get() as { n: number }).n);
    await Promise.all([
      group.commit(write(10), { durable: false }),
      group.commit(() => {
        seen.push(Number(store.get("SELECT count(*) AS n FROM t WHERE v = 10")?.n), count(other));
      }, { durable: false }),
    ]);
    assert.deepEqual(seen, [1, 0]);
    assert.equal(count(other), 1); // committed now
    other.close();
    assert.equal(store.get("PRAGMA synchronous")?.synchronous, 2); // FULL again after
  } finally {
    store.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("GroupCommit: when writes are refused, every write of the group is told", async () => {
  const dir = await Deno.makeTempDir({ prefix: "kaos-group-commit-" });
  const store = Store.open(`${dir}/kaos.db`);
  try {
    store.tx(() => store.run("CREATE TABLE t (v INTEGER)"));
    store.refuseWrites(new Error("the data partition is unusable"));
    const group = new GroupCommit(store);
    const outcomes = await Promise.allSettled([
      group.commit(() => store.run("INSERT INTO t VALUES (1)"), { durable: true }),
      group.commit(() => store.run("INSERT INTO t VALUES (2)"), { durable: false }),
    ]);
    assert.deepEqual(outcomes.map((o) => o.status), ["rejected", "rejected"]);
    assert.equal(store.all("SELECT v FROM t").length, 0);
  } finally {
    store.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("GroupCommit.flush: the writes queued so far commit at once, together; the turn's timer then finds nothing", async () => {
  const dir = await Deno.makeTempDir({ prefix: "kaos-group-commit-" });
  const store = Store.open(`${dir}/kaos.db`);
  try {
    store.tx(() => store.run("CREATE TABLE t (v INTEGER PRIMARY KEY)"));
    // Every transaction of the store counted.
    let transactions = 0;
    const tx = store.tx.bind(store);
    store.tx = (fn, o) => (transactions++, tx(fn, o));
    const group = new GroupCommit(store);
    const other = new DatabaseSync(`${dir}/kaos.db`);
    const rows = () => other.prepare("SELECT v FROM t ORDER BY v").all().map((r) => r.v);
    const first = group.commit(() => store.run("INSERT INTO t VALUES (1)"), { durable: false });
    const second = group.commit(() => store.run("INSERT INTO t VALUES (2)"), { durable: false });
    assert.deepEqual(rows(), []); // queued: nothing committed yet
    group.flush();
    assert.deepEqual(rows(), [1, 2]); // committed before any timer ran, in one transaction
    assert.equal(transactions, 1);
    await Promise.all([first, second]);
    // The timer armed by the first write came and found nothing to commit.
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(transactions, 1);
    group.flush(); // nothing queued: nothing happens
    assert.equal(transactions, 1);
    other.close();
  } finally {
    store.close();
    await Deno.remove(dir, { recursive: true });
  }
});

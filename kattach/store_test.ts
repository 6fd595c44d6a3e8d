import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { Store } from "./store.ts";

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

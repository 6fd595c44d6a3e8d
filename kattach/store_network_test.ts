import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { migrations } from "./migrations.ts";
import { Store } from "./store.ts";

Deno.test("migration 5: existing VLANs become internal, not NATed, not isolated; routes and settings", async () => {
  const dir = await Deno.makeTempDir({ prefix: "kaos-store-net-" });
  try {
    const path = `${dir}/kaos.db`;
    // A database as schema 4 left it, with one VLAN.
    const db = new DatabaseSync(path);
    db.exec(
      "CREATE TABLE schema_migration (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)",
    );
    for (const m of migrations.filter((m) => m.version <= 4)) {
      db.exec(m.sql);
      db.prepare("INSERT INTO schema_migration VALUES (?, ?, 'then')").run(m.version, m.name);
    }
    db.exec(
      "INSERT INTO vlan VALUES (10, 'front', '10.0.10.0/24', '10.0.10.1', '10.0.10.2', '10.0.10.254', 'then')",
    );
    db.exec(
      "INSERT INTO vlan VALUES (20, 'back', '10.0.20.0/24', '10.0.20.1', '10.0.20.2', '10.0.20.254', 'then')",
    );
    db.close();

    const store = Store.open(path);
    try {
      assert.ok(store.schemaVersion() >= 5); // later migrations (e.g. 8) apply too
      const v = store.getVlan(10)!;
      assert.equal(v.uplink, "none");
      assert.equal(v.nat, false);
      assert.equal(v.isolate, false);
      assert.deepEqual(store.networkSettings(), { uplink: "eth0", dns: [] });

      store.updateVlan({ ...v, uplink: "tagged", nat: true, isolate: true });
      const changed = store.getVlan(10)!;
      assert.deepEqual([changed.uplink, changed.nat, changed.isolate], ["tagged", true, true]);

      // Routes are stored once per pair, a < b, whatever the order given.
      assert.equal(store.insertVlanRoute(20, 10), true);
      assert.equal(store.insertVlanRoute(10, 20), false);
      assert.deepEqual(store.listVlanRoutes(), [{ a: 10, b: 20 }]);
      // The schema itself refuses a pair out of order or a VLAN that does not exist.
      assert.throws(() => store.run("INSERT INTO vlan_route (a, b) VALUES (20, 10)"), /CHECK/);
      assert.throws(() => store.run("INSERT INTO vlan_route (a, b) VALUES (10, 30)"), /FOREIGN/);
      assert.throws(() => store.run("UPDATE vlan SET uplink = 'trunk' WHERE id = 10"), /CHECK/);
      // Deleting a VLAN deletes its routes.
      store.deleteVlan(20);
      assert.deepEqual(store.listVlanRoutes(), []);
      assert.equal(store.deleteVlanRoute(10, 20), false);

      store.setNetworkSettings({ dns: ["192.0.2.53", "198.51.100.53"] });
      store.setNetworkSettings({ uplink: "enp1s0" });
      assert.deepEqual(store.networkSettings(), {
        uplink: "enp1s0",
        dns: ["192.0.2.53", "198.51.100.53"],
      });
      store.setNetworkSettings({ dns: [] });
      assert.deepEqual(store.networkSettings().dns, []);
    } finally {
      store.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

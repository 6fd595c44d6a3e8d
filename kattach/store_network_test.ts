import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import * as fc from "fast-check";
import { type Cidr, contains, defaultPlan, formatCidr, parseCidr } from "../netmgr/mod.ts";
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

Deno.test("migration 12: existing VLANs get their address range; overlaps are found by it", async () => {
  const dir = await Deno.makeTempDir({ prefix: "kaos-store-net-" });
  try {
    const path = `${dir}/kaos.db`;
    // A database as schema 11 left it, with VLANs from a /8 to a /30 at the top of the space.
    const db = new DatabaseSync(path);
    db.exec(
      "CREATE TABLE schema_migration (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)",
    );
    for (const m of migrations.filter((m) => m.version <= 11)) {
      db.exec(m.sql);
      db.prepare("INSERT INTO schema_migration VALUES (?, ?, 'then')").run(m.version, m.name);
    }
    const insert = db.prepare(
      "INSERT INTO vlan (id, name, cidr, gateway, pool_start, pool_end, created_at) VALUES (?, ?, ?, '', '', '', 'then')",
    );
    insert.run(10, "big", "10.0.0.0/8");
    insert.run(20, "mid", "172.16.4.0/22");
    insert.run(30, "top", "255.255.255.252/30");
    db.close();

    const store = Store.open(path);
    try {
      assert.ok(store.schemaVersion() >= 12);
      assert.deepEqual(
        store.all("SELECT id, net_first, net_last FROM vlan ORDER BY id"),
        [
          { id: 10, net_first: 0x0a000000, net_last: 0x0affffff },
          { id: 20, net_first: 0xac100400, net_last: 0xac1007ff },
          { id: 30, net_first: 0xfffffffc, net_last: 0xffffffff },
        ].map((r) => Object.assign(Object.create(null), r)),
      );
      assert.deepEqual(store.vlanOverlapping("10.20.0.0/16"), { id: 10, cidr: "10.0.0.0/8" });
      assert.deepEqual(store.vlanOverlapping("172.16.0.0/12"), { id: 20, cidr: "172.16.4.0/22" });
      assert.deepEqual(store.vlanOverlapping("172.16.7.0/24"), { id: 20, cidr: "172.16.4.0/22" });
      assert.equal(store.vlanOverlapping("172.16.8.0/24"), undefined); // adjacent
      assert.equal(store.vlanOverlapping("11.0.0.0/8"), undefined);
      assert.equal(store.vlanOverlapping("255.255.255.248/30"), undefined);
    } finally {
      store.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("property: vlanOverlapping agrees with comparing the new subnet to every VLAN", async () => {
  const dir = await Deno.makeTempDir({ prefix: "kaos-store-net-" });
  try {
    // Subnets inside 10.0.0.0/16 with prefixes 16-30, so that overlaps are frequent.
    const subnet = fc.tuple(fc.integer({ min: 16, max: 30 }), fc.nat(0xffff)).map(([p, n]) => {
      const c = parseCidr(`10.0.${n >> 8}.${n & 255}/${p}`, { strict: false });
      return formatCidr(c);
    });
    // One store; each run adds its VLANs in a transaction that is rolled back at its end.
    const store = Store.open(`${dir}/kaos.db`);
    const rollback = new Error("rollback");
    const overlap = (a: Cidr, b: Cidr) => contains(a, b.network) || contains(b, a.network);
    try {
      fc.assert(
        fc.property(fc.array(subnet, { minLength: 1, maxLength: 40 }), (cidrs) => {
          const kept: Cidr[] = [];
          try {
            store.tx(() => {
              for (const [i, cidr] of cidrs.entries()) {
                const c = parseCidr(cidr);
                const expected = kept.some((o) => overlap(o, c));
                const found = store.vlanOverlapping(cidr);
                assert.equal(found !== undefined, expected, cidr);
                // Several VLANs may overlap a wide subnet: any one of them is a right answer.
                if (found) assert.ok(overlap(parseCidr(found.cidr), c), `${found.cidr}, ${cidr}`);
                if (expected) continue;
                const plan = defaultPlan(cidr);
                store.insertVlan({
                  id: i + 1,
                  name: `v${i + 1}`,
                  ...plan,
                  uplink: "none",
                  nat: false,
                  isolate: false,
                });
                kept.push(c);
              }
              throw rollback;
            });
          } catch (err) {
            if (err !== rollback) throw err;
          }
        }),
        { numRuns: 200 },
      );
    } finally {
      store.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

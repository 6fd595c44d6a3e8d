/**
 * The core against a real hosted kattach: one-line commands through `aq`, IPC hardening, and
 * kill -9 in the middle of writes.
 */
import assert from "node:assert/strict";
import { IpcClient, type VlanInfo } from "../ipc/mod.ts";
import { TestKattach } from "./_harness.ts";

Deno.test("vlan: add, list, show, reserve, del through aq; errors change nothing", async () => {
  const k = await TestKattach.start();
  try {
    const added = await k.json<VlanInfo>("vlan", "add", "10", "web", "10.0.10.0/24");
    assert.equal(added.gateway, "10.0.10.1");
    assert.equal(added.poolStart, "10.0.10.2");
    assert.equal(added.poolEnd, "10.0.10.254");
    assert.equal(added.poolSize, 253);

    const custom = await k.json<VlanInfo>(
      "vlan",
      "add",
      "20",
      "db",
      "192.168.20.0/28",
      "--gateway",
      "192.168.20.14",
      "--pool",
      "192.168.20.2-192.168.20.5",
    );
    assert.equal(custom.poolSize, 4);

    const plain = await k.aq("vlan", "list");
    assert.equal(plain.code, 0);
    assert.match(plain.stdout, /^ID\s+NAME\s+CIDR/m);
    assert.match(plain.stdout, /^10\s+web\s+10\.0\.10\.0\/24/m);

    // Each bad input: a clear error on stderr, a non-zero exit, and no change.
    const bad: [string[], number, RegExp][] = [
      [["vlan", "add", "4095", "x", "10.1.0.0/24"], 2, /VLAN id runs from 1 to 4094, not 4095/],
      [["vlan", "add", "0", "x", "10.1.0.0/24"], 2, /VLAN id runs from 1 to 4094, not 0/],
      [["vlan", "add", "11", "web", "10.0.11.0/24"], 1, /name web is taken/],
      [["vlan", "add", "10", "other", "10.0.11.0/24"], 1, /exists already/],
      [["vlan", "add", "12", "x", "10.0.10.128/25"], 1, /overlaps VLAN 10/],
      [["vlan", "add", "13", "x", "10.0.13.5/24"], 1, /host bits/],
      [["vlan", "add", "14", "x", "10.0.14.0/24", "--gateway", "10.0.15.1"], 1, /gateway/i],
      [
        ["vlan", "add", "15", "Bad_Name", "10.0.15.0/24"],
        1,
        /^Error: "Bad_Name" is not a valid VLAN name \(NAME\): names are 1-32 lower-case/,
      ],
      [["vlan", "add", "16", "x", "10.0.16.0/24", "--pool", "10.0.16.0-10.0.16.9"], 1, /pool/],
      [["vlan", "add", "ten", "x", "10.0.17.0/24"], 2, /whole number/],
      [["vlan", "add", "18"], 2, /NAME is missing/],
      [["vlan", "add", "19", "x", "10.0.19.0/24", "--bogus", "1"], 2, /unknown option --bogus/],
      [["vlan", "show", "99"], 1, /VLAN 99 does not exist/],
      [["vlan", "frobnicate"], 2, /unknown command/],
      [["vlan", "list", "--limit", "0"], 2, /--limit must be at least 1/],
      [["vlan", "list", "--offset", "-1"], 2, /--offset must not be negative/],
      [["vlan", "list", "--limit", "x"], 2, /--limit must be a whole number/],
    ];
    for (const [args, code, message] of bad) {
      const r = await k.aq(...args);
      assert.equal(r.code, code, `aq ${args.join(" ")}: ${r.stderr}`);
      assert.match(r.stderr, message, `aq ${args.join(" ")}`);
      assert.equal(r.stdout, "");
    }
    const after = await k.json<VlanInfo[]>("vlan", "list");
    assert.deepEqual(after.map((v) => v.id), [10, 20]);
    // Pages of the list (the menus fetch long lists this way), in its order.
    const pages = [["--limit", "1"], ["--limit", "1", "--offset", "1"], ["--offset", "2"]];
    const paged = await Promise.all(pages.map((p) => k.json<VlanInfo[]>("vlan", "list", ...p)));
    assert.deepEqual(paged.map((l) => l.map((v) => v.id)), [[10], [20], []]);
    assert.deepEqual(paged[1][0], after[1]);

    const reserved = await k.json<VlanInfo>(
      "vlan",
      "reserve",
      "web",
      "10.0.10.2",
      "--note",
      "router",
    );
    assert.deepEqual(reserved.reserved, [{ ip: "10.0.10.2", note: "router" }]);
    assert.equal(reserved.used, 1);
    assert.equal((await k.aq("vlan", "reserve", "10", "10.0.10.1")).code, 1); // the gateway
    assert.equal((await k.aq("vlan", "reserve", "10", "10.0.10.2")).code, 1); // twice
    await k.json("vlan", "unreserve", "10", "10.0.10.2");

    const errJson = await k.aq("vlan", "show", "nosuch", "--json");
    assert.equal(errJson.code, 1);
    assert.equal(JSON.parse(errJson.stderr).error.code, "not-found");

    assert.deepEqual(await k.json("vlan", "del", "db"), { deleted: "20" });
    assert.deepEqual((await k.json<VlanInfo[]>("vlan", "list")).map((v) => v.id), [10]);

    // Pages (usage counted per VLAN) agree with the whole list (usage counted in bulk): 71 VLANs,
    // one with a reservation.
    const c = await IpcClient.connect(`${k.stateDir}/run`);
    try {
      for (let id = 100; id < 170; id++) {
        await c.call("vlan.add", { id, name: `p${id}`, cidr: `10.2.${id}.0/24` });
      }
      await c.call("vlan.reserve", { vlan: "150", ip: "10.2.150.7", note: "x" });
      const whole = await c.call("vlan.list", {});
      const pages = [];
      for (let offset = 0; offset < 80; offset += 30) {
        pages.push(...await c.call("vlan.list", { limit: 30, offset }));
      }
      assert.equal(whole.length, 71);
      assert.deepEqual(pages, whole);
      assert.equal(whole.find((v) => v.id === 150)?.used, 1);
    } finally {
      c.close();
    }
  } finally {
    await k.dispose();
  }
});

Deno.test("check: the rules of an action about one answer, read-only; the action stays the authority", async () => {
  const k = await TestKattach.start();
  const c = await IpcClient.connect(`${k.stateDir}/run`);
  try {
    await c.call("vlan.add", { id: 10, name: "web", cidr: "10.0.10.0/24" });
    const check = (params: Record<string, unknown>, fields: string[]) =>
      c.call("check", { action: "vlan.add", params, fields });
    // Only the rules about the fields asked run: a taken name is not the id's problem.
    assert.deepEqual(await check({ id: 11, name: "web" }, ["id"]), []);
    assert.deepEqual(await check({ id: 11, name: "web" }, ["name"]), [{
      fields: ["name"],
      message: "Cannot add VLAN 11: the name web is taken",
      hint: "VLAN names are unique; choose another",
      code: "conflict",
    }]);
    assert.deepEqual(
      (await check({ id: 10, cidr: "10.0.10.64/26" }, ["id", "cidr"])).map((i) => i.message),
      [
        "Cannot add VLAN 10: it exists already",
        "Cannot add VLAN 10: 10.0.10.64/26 overlaps VLAN 10 (10.0.10.0/24)",
      ],
    );
    // A rule whose parameters are not all given (or not valid) does not run.
    assert.deepEqual(await check({ cidr: "10.0.10.64/26" }, ["cidr"]), []);
    assert.deepEqual(await check({ id: 11, cidr: "10.0.10.64/33" }, ["cidr"]), []);
    // The other actions' rules: vlan set's gateway against the VLAN's own subnet, a module not
    // installed, a VM image that does not exist.
    const set = await c.call("check", {
      action: "vlan.set",
      params: { vlan: "web", gateway: "10.0.20.1" },
      fields: ["gateway"],
    });
    assert.deepEqual(set.map((i) => [i.fields, i.message]), [[
      ["gateway"],
      "Invalid gateway 10.0.20.1: it must be a host address inside 10.0.10.0/24",
    ]]);
    // A VLAN that does not exist is the VLAN's answer's problem, not the name's.
    const typed = await c.call("check", {
      action: "vlan.set",
      params: { vlan: "nosuch", name: "other" },
      fields: ["name"],
    });
    assert.deepEqual(typed, []);
    const group = await c.call("check", {
      action: "configGroup.add",
      params: { module: "nosuch", name: "g" },
      fields: ["module"],
    });
    assert.equal(group[0].code, "not-found");
    const deploy = await c.call("check", {
      action: "deploy",
      params: { vmimage: "nosuch", count: 1 },
      fields: ["vmimage"],
    });
    assert.equal(deploy.length, 1);
    // Passed by a check, then taken by another client: the write refuses it, nothing changes.
    assert.deepEqual(await check({ id: 12, name: "db" }, ["id", "name"]), []);
    await c.call("vlan.add", { id: 13, name: "db", cidr: "10.0.13.0/24" });
    const late = await k.aq("vlan", "add", "12", "db", "10.0.12.0/24");
    assert.equal(late.code, 1);
    assert.match(late.stderr, /^Error: Cannot add VLAN 12: the name db is taken/);
    assert.deepEqual((await c.call("vlan.list", {})).map((v) => v.id), [10, 13]);
    // Unknown actions and malformed requests are refused by the schema.
    await assert.rejects(
      c.call("check", { action: "vlan.del" as "vlan.add", params: {}, fields: ["vlan"] }),
      /action/,
    );
    await assert.rejects(c.call("check", { action: "vlan.add", params: {}, fields: [] }), /fields/);
  } finally {
    c.close();
    await k.dispose();
  }
});

Deno.test("help and usage: every command is listed; no kattach needed", async () => {
  const k = new TestKattach(await Deno.makeTempDir());
  try {
    const r = await k.aq("help");
    assert.equal(r.code, 0);
    for (
      const word of [
        "system status",
        "vlan add",
        "module import",
        "config-group set",
        "vmimage create",
        "deploy",
        "instance del",
      ]
    ) {
      assert.match(r.stdout, new RegExp(word), word);
    }
    const down = await k.aq("vlan", "list");
    assert.equal(down.code, 3);
    assert.match(down.stderr, /Cannot reach kattach/);
  } finally {
    await k.dispose();
  }
});

Deno.test("ipc: malformed and hostile messages get error replies and never crash kattach", async () => {
  const k = await TestKattach.start();
  try {
    const runDir = `${k.stateDir}/run`;
    assert.equal((await Deno.stat(runDir)).mode! & 0o777, 0o700);
    assert.equal((await Deno.stat(`${runDir}/kattach.sock`)).mode! & 0o777, 0o600);
    const token = (await Deno.readTextFile(`${runDir}/token`)).trim();

    const exchange = async (payload: string | Uint8Array): Promise<string> => {
      const conn = await Deno.connect({ transport: "unix", path: `${runDir}/kattach.sock` });
      try {
        const bytes = typeof payload === "string" ? new TextEncoder().encode(payload) : payload;
        const writing = (async () => {
          for (let off = 0; off < bytes.length;) off += await conn.write(bytes.subarray(off));
        })().catch(() => {}); // kattach may close the connection before the end of a huge frame
        const buf = new Uint8Array(64 * 1024);
        let text = "";
        while (!text.includes("\n")) {
          const n = await conn.read(buf);
          if (n === null) break;
          text += new TextDecoder().decode(buf.subarray(0, n));
        }
        await writing;
        return text;
      } finally {
        conn.close();
      }
    };
    const reply = async (payload: string | Uint8Array) => JSON.parse(await exchange(payload));

    assert.equal((await reply("not json\n")).error.kind, "protocol");
    assert.equal((await reply('{"v":1}\n')).error.kind, "protocol");
    assert.equal((await reply("[1,2,3]\n")).error.kind, "protocol");
    const wrongToken = await reply(
      JSON.stringify({ v: 1, id: 7, token: "x".repeat(64), action: "vlan.list", params: {} }) +
        "\n",
    );
    assert.equal(wrongToken.id, 7);
    assert.equal(wrongToken.error.code, "unauthorized");
    const unknown = await reply(
      JSON.stringify({ v: 1, id: 8, token, action: "rm.rf", params: {} }) + "\n",
    );
    assert.equal(unknown.error.code, "unknown-action");
    const badParams = await reply(
      JSON.stringify({ v: 1, id: 9, token, action: "vlan.add", params: { id: "ten", extra: 1 } }) +
        "\n",
    );
    assert.equal(badParams.error.kind, "user");
    const proto = await reply(
      JSON.stringify({ v: 1, id: 10, token, action: "__proto__", params: {} }) + "\n",
    );
    assert.equal(proto.error.code, "unknown-action");
    const huge = new Uint8Array(2 * 1024 * 1024).fill(0x61);
    assert.match(await exchange(huge), /longer than/);

    // Still alive and answering properly.
    assert.deepEqual(await k.json("vlan", "list"), []);
  } finally {
    await k.dispose();
  }
});

Deno.test("kill -9 during writes: every acknowledged change survives, the database is intact", async () => {
  const k = await TestKattach.start();
  try {
    const acknowledged: number[] = [];
    let nextId = 1;
    // Three rounds, each killed at a different moment of a stream of writes.
    for (const killAfter of [15, 40, 75]) {
      const client = await IpcClient.connect(`${k.stateDir}/run`);
      let stop = false;
      const writer = (async () => {
        while (!stop && nextId <= 4000) {
          const id = nextId++;
          try {
            await client.call("vlan.add", {
              id,
              name: `v${id}`,
              cidr: `10.${Math.floor(id / 256)}.${id % 256}.0/24`,
            });
            acknowledged.push(id);
          } catch {
            return; // kattach died under us
          }
        }
      })();
      while (acknowledged.length < killAfter) await new Promise((r) => setTimeout(r, 5));
      await k.stop("SIGKILL");
      stop = true;
      await writer;
      client.close();

      await k.restart();
      const status = await k.json<{ store: { integrity: string } }>("system", "status");
      assert.equal(status.store.integrity, "ok");
      const ids = new Set((await k.json<VlanInfo[]>("vlan", "list")).map((v) => v.id));
      for (const id of acknowledged) assert.ok(ids.has(id), `acknowledged VLAN ${id} was lost`);
    }
    const again = await k.json<VlanInfo>("vlan", "add", "4094", "last", "172.16.0.0/24");
    assert.equal(again.id, 4094);
    // `system status` shows the check made at start (it does not read the whole store per
    // call); `system check` runs one now and status shows that one from then on.
    // kattach says which V8 flags it runs with (the harness starts it as the appliance does).
    assert.match(
      k.log,
      /kattach: V8 flags: --max-semi-space-size=1 --max-old-space-size=512 --expose-gc --max-opt=2\n/,
    );
    type Status = { store: { integrity: string; integrityCheckedAt: string } };
    const first = (await k.json<Status>("system", "status")).store;
    assert.deepEqual((await k.json<Status>("system", "status")).store, first);
    const check = await k.json<{ integrity: string; checkedAt: string; durationMs: number }>(
      "system",
      "check",
    );
    assert.equal(check.integrity, "ok");
    assert.ok(check.checkedAt > first.integrityCheckedAt, `${check.checkedAt} after start`);
    assert.equal(
      (await k.json<Status>("system", "status")).store.integrityCheckedAt,
      check.checkedAt,
    );
  } finally {
    await k.dispose();
  }
});

Deno.test("a second kattach on the same state directory is refused", async () => {
  const k = await TestKattach.start();
  try {
    const second = new TestKattach(k.stateDir);
    await assert.rejects(() => second.restart(), /another kattach is running/);
    assert.deepEqual(await k.json("vlan", "list"), []);
  } finally {
    await k.dispose();
  }
});

import { testContext } from "./_test_context.ts";
import assert from "node:assert/strict";
import { FakeNetlink, FakeNft } from "../host/mod.ts";
import type { Kattach } from "./actions/_types.ts";
import {
  applyNetwork,
  ensureGuestLinks,
  guestNetwork,
  networkStatus,
  nicCounters,
  nicStatus,
  readHostState,
  startNetwork,
  unlinkInstance,
} from "./network.ts";
import { Store } from "./store.ts";
import { instanceListJson } from "./store_lists.ts";
import { withRuntime } from "./supervisor.ts";

async function withKattach(
  fn: (k: Kattach, host: FakeNetlink, lines: string[]) => Promise<void>,
  host = new FakeNetlink({ lo: { kind: "loopback" }, eth0: { kind: "veth" } }),
) {
  const dir = await Deno.makeTempDir({ prefix: "kaos-network-unit-" });
  const store = Store.open(`${dir}/kaos.db`);
  const { k, lines } = testContext(store, dir);
  try {
    store.tx(() => {
      for (const [id, uplink] of [[10, "none"], [20, "tagged"]] as const) {
        store.insertVlan({
          id,
          name: `v${id}`,
          cidr: `10.0.${id}.0/24`,
          gateway: `10.0.${id}.1`,
          poolStart: `10.0.${id}.2`,
          poolEnd: `10.0.${id}.254`,
          uplink,
          nat: false,
          isolate: false,
        });
      }
      store.insertVmImage({
        name: "web",
        modules: [],
        configGroups: [],
        vlans: [10, 20],
        memoryMiB: 64,
        cpus: 1,
      });
      store.insertInstance({
        name: "web-1",
        vmimage: "web",
        state: "defined",
        autostart: false,
        restartPolicy: "never",
        nics: [
          { index: 0, vlan: 10, mac: "0a:4b:53:00:00:01", ip: "10.0.10.2" },
          { index: 1, vlan: 20, mac: "0a:4b:53:00:00:02", ip: "10.0.20.2" },
          { index: 2, vlan: null, mac: "0a:4b:53:00:00:03", ip: null },
        ],
      });
      store.setNetworkSettings({ dns: ["192.0.2.53"] });
    });
    await fn(k, host, lines);
  } finally {
    store.close();
    await Deno.remove(dir, { recursive: true });
  }
}

/** A second instance, web-2: one NIC on VLAN 10 (its tap kt0a4b53000009). */
function insertWeb2(store: Store): void {
  store.tx(() =>
    store.insertInstance({
      name: "web-2",
      vmimage: "web",
      state: "defined",
      autostart: false,
      restartPolicy: "never",
      nics: [{ index: 0, vlan: 10, mac: "0a:4b:53:00:00:09", ip: "10.0.10.9" }],
    })
  );
}

/** Drift behind kattach's back: web-2's tap off its bridge, a stray owned bridge kbr30. */
function driftElsewhere(host: FakeNetlink): void {
  host.linkMap.get("kt0a4b53000009")!.master = undefined;
  host.linkMap.set("kbr30", {
    kind: "bridge",
    alias: "kaos:bridge:30",
    up: true,
    mac: "0a:4b:42:00:00:1e",
  });
}

Deno.test("applyNetwork: calls during a run share one queued run; a no-op applies nothing", async () => {
  await withKattach(async (k, host) => {
    startNetwork(k, { mode: "bridged", host });
    const [a, b, c] = await Promise.all([
      applyNetwork(k, { reason: "one" }),
      applyNetwork(k, { reason: "two" }),
      applyNetwork(k, { reason: "three" }),
    ]);
    assert.equal(a, b, "calls made together join one run");
    assert.equal(b, c);
    assert.equal(host.batches.length, 1);
    assert.ok(a.applied.includes("link add link eth0 name kvl20 type vlan id 20"));
    assert.equal(a.error, null);
    const again = await applyNetwork(k, { reason: "again" });
    assert.deepEqual([again.applied, host.batches.length], [[], 1]);
    const status = await networkStatus(k);
    assert.deepEqual(status.vlans.map((v) => [v.bridge, v.state, v.hostAddress, v.taps]), [
      ["kbr10", "up", "10.0.10.1/24", 1],
      ["kbr20", "up", null, 1], // tagged, no NAT or route: the outside router holds .1
    ]);
    assert.equal(status.lastApply, again);
    // The kernel's view of the links KaOS owns; the uplink (no mark) is not among them.
    assert.deepEqual(
      status.links.map((l) => [l.name, l.kind, l.alias, l.master, l.parent, l.vlanId, l.up]),
      [
        ["kbr10", "bridge", "kaos:bridge:10", null, null, null, true],
        ["kbr20", "bridge", "kaos:bridge:20", null, null, null, true],
        ["kt0a4b53000001", "tap", "kaos:tap:web-1:0", "kbr10", null, null, true],
        ["kt0a4b53000002", "tap", "kaos:tap:web-1:1", "kbr20", null, null, true],
        ["kvl20", "vlan", "kaos:vlan:20", "kbr20", "eth0", 20, true],
      ],
    );
    // The guest and the tagged VLAN go: its 802.1Q link and bridge go with it.
    k.store.tx(() => {
      k.store.deleteInstance("web-1");
      k.store.deleteVmImage("web");
      k.store.deleteVlan(20);
    });
    const gone = await applyNetwork(k, { reason: "vlan del 20" });
    assert.equal(gone.error, null);
    assert.ok(gone.applied.includes("link del dev kvl20"), gone.applied.join("\n"));
    const after = await networkStatus(k);
    assert.deepEqual(after.links.map((l) => l.name), ["kbr10"]);
    assert.deepEqual(after.pending, []);
  });
});

Deno.test("ensureGuestLinks: a start repairs its own taps only; the next full reconcile the rest", async () => {
  await withKattach(async (k, host) => {
    startNetwork(k, { mode: "bridged", host });
    insertWeb2(k.store);
    assert.equal((await applyNetwork(k, { reason: "boot" })).error, null);
    // Drift behind kattach's back: web-1's tap deleted, web-2's moved off its bridge, a stray
    // owned bridge (kbr30, no VLAN 30) left over.
    host.linkMap.delete("kt0a4b53000001");
    driftElsewhere(host);
    const before = host.batches.length;
    await ensureGuestLinks(k, k.store.getInstance("web-1")!);
    // (as root the tap belongs to the QEMU user: `user U group G`, left out here)
    const since = (n: number) =>
      host.batches.slice(n).map((b) => b.replace(/ user \d+ group \d+/, ""));
    assert.deepEqual(since(before), [
      "tuntap add dev kt0a4b53000001 mode tap vnet_hdr\n" +
      "link set dev kt0a4b53000001 alias kaos:tap:web-1:0 master kbr10\n" +
      "link set dev kt0a4b53000001 up\n",
    ], "web-1's start touches web-1's tap only");
    assert.equal(host.linkMap.get("kt0a4b53000009")!.master, undefined);
    assert.ok(host.linkMap.has("kbr30"));
    await ensureGuestLinks(k, k.store.getInstance("web-1")!);
    assert.equal(host.batches.length, before + 1, "a second start of web-1 changes nothing");
    // web-2's start puts its own tap back on its bridge.
    await ensureGuestLinks(k, k.store.getInstance("web-2")!);
    assert.deepEqual(since(before + 1), [
      "link set dev kt0a4b53000009 master kbr10\n",
    ]);
    const full = await applyNetwork(k, { reason: "full" });
    assert.deepEqual(full.applied, ["link del dev kbr30"]);
    // Starts that arrive together (a deploy's) share one run: one batch for both taps.
    host.linkMap.delete("kt0a4b53000001");
    host.linkMap.delete("kt0a4b53000009");
    const n = host.batches.length;
    await Promise.all(
      ["web-1", "web-2"].map((name) => ensureGuestLinks(k, k.store.getInstance(name)!)),
    );
    assert.equal(host.batches.length, n + 1, since(n).join("---"));
    assert.match(
      host.batches[n],
      /tuntap add dev kt0a4b53000001 [^\n]*\n(.*\n)*tuntap add dev kt0a4b53000009 /,
    );
    // A tap that cannot be put on its bridge: the start is refused, naming it.
    host.linkMap.set("kt0a4b53000009", { kind: "veth", up: true, mac: "02:00:00:00:00:09" });
    await assert.rejects(
      () => ensureGuestLinks(k, k.store.getInstance("web-2")!),
      /Cannot start web-2: its tap kt0a4b53000009 is not on kbr10/,
    );
  });
});

Deno.test("unlinkInstance: a deleted instance's own taps go, and the firewall only when it named them", async () => {
  await withKattach(async (k, host) => {
    const nft = new FakeNft();
    k.firewallHost = { nft, mgmtPort: 1289 };
    // User mode: nothing to do.
    assert.equal(
      await unlinkInstance(k, "web-1", { taps: ["kt0a4b53000001"], firewall: true }),
      null,
    );
    startNetwork(k, { mode: "bridged", host });
    insertWeb2(k.store);
    assert.equal((await applyNetwork(k, { reason: "boot" })).error, null);
    assert.match(nft.current!, /"kt0a4b53000001"/);
    // Drift elsewhere (web-2's tap off its bridge, a stray owned bridge) and a foreign link in
    // place of one of web-1's taps: none of them is the delete's business.
    driftElsewhere(host);
    host.linkMap.set("kt0a4b53000002", { kind: "veth", up: true, mac: "02:00:00:00:00:02" });
    const [batches, applies] = [host.batches.length, nft.applied.length];
    k.store.tx(() => k.store.deleteInstance("web-1"));
    const r = await unlinkInstance(k, "web-1", {
      taps: ["kt0a4b53000001", "kt0a4b53000002"],
      firewall: true,
    });
    assert.deepEqual([r?.applied, r?.error, r?.reason], [
      ["link del dev kt0a4b53000001"],
      null,
      "instance del web-1",
    ]);
    assert.deepEqual(host.batches.slice(batches), ["link del dev kt0a4b53000001\n"]);
    assert.equal(host.linkMap.get("kt0a4b53000002")?.kind, "veth", "a foreign link stays");
    assert.equal(host.linkMap.get("kt0a4b53000009")!.master, undefined);
    assert.ok(host.linkMap.has("kbr30"));
    assert.equal(nft.applied.length, applies + 1);
    assert.doesNotMatch(nft.current!, /kt0a4b53000001|10\.0\.20\.2/);
    assert.match(nft.current!, /"kt0a4b53000009"/);
    // Nothing the ruleset or the links name (a user-mode NIC only): no batch, no ruleset.
    assert.equal(await unlinkInstance(k, "web-3", { taps: [], firewall: false }), null);
    // Taps without a firewall change: the batch only.
    host.linkMap.set("kt0a4b53000005", {
      kind: "tap",
      alias: "kaos:tap:web-5:0",
      up: true,
      mac: "02:00:00:00:00:05",
    });
    const only = await unlinkInstance(k, "web-5", { taps: ["kt0a4b53000005"], firewall: false });
    assert.deepEqual(only?.applied, ["link del dev kt0a4b53000005"]);
    assert.equal(nft.applied.length, applies + 1);
    // nft refusing: said in the outcome (the links' part is done, the kernel keeps the ruleset
    // it had), never thrown.
    nft.refuse = /table/;
    k.store.tx(() => k.store.deleteInstance("web-2"));
    const failed = await unlinkInstance(k, "web-2", { taps: ["kt0a4b53000009"], firewall: true });
    assert.match(failed?.error ?? "", /^firewall: /);
    assert.ok(!host.linkMap.has("kt0a4b53000009"));
    assert.match(nft.current!, /"kt0a4b53000009"/);
  });
});

Deno.test("guestNetwork: taps with addresses in bridged mode, the gateway once; user mode leaves NICs alone", async () => {
  await withKattach(async (k, host) => {
    startNetwork(k, { mode: "bridged", host });
    const inst = k.store.getInstance("web-1")!;
    const net = guestNetwork(k, inst);
    assert.deepEqual(
      net.nics.map((n) => [n.mode, n.tap, n.bridge, n.address, n.gateway]),
      [
        ["tap", "kt0a4b53000001", "kbr10", "10.0.10.2/24", "10.0.10.1"],
        ["tap", "kt0a4b53000002", "kbr20", "10.0.20.2/24", null],
        ["user", null, null, null, null],
      ],
    );
    assert.deepEqual(net.dns, ["192.0.2.53"]);

    startNetwork(k, { mode: "user", host });
    const user = guestNetwork(k, inst);
    assert.ok(user.nics.every((n) => n.mode === "user" && n.address === null));
    assert.deepEqual(user.dns, []);
    const r = await applyNetwork(k, { reason: "user mode" });
    assert.deepEqual([r.mode, r.applied, host.batches.length], ["user", [], 0]);
  });
});

Deno.test("instance list and instance show give each NIC the address the guest has, in both modes", async () => {
  await withKattach(async (k, host) => {
    const inst = k.store.getInstance("web-1")!;
    const views = async (bridged: boolean) => {
      const [listed] = JSON.parse(instanceListJson(k.store, { pids: new Map(), bridged }));
      const shown = await nicStatus(k, inst);
      return {
        list: (listed.nics as { address: string }[]).map((n) => n.address),
        objects: withRuntime(k, inst).nics.map((n) => n.address),
        show: shown.network.map((n) => [n.address, n.gateway]),
        dns: shown.dns,
      };
    };
    // User mode (hosted): every NIC is QEMU's user-mode NIC, whatever the VLAN's pool allocated;
    // the guest is told 10.0.2.15/24, the first NIC the route, slirp's DNS.
    startNetwork(k, { mode: "user", host });
    const user = await views(false);
    assert.deepEqual(user.list, ["10.0.2.15/24", "10.0.2.15/24", "10.0.2.15/24"]);
    assert.deepEqual(user.objects, user.list);
    assert.deepEqual(user.show, [
      ["10.0.2.15/24", "10.0.2.2"],
      ["10.0.2.15/24", null],
      ["10.0.2.15/24", null],
    ]);
    assert.deepEqual(user.dns, ["10.0.2.3"]);
    // Bridged: taps have their VLAN address, the NAT NIC the user-mode one.
    startNetwork(k, { mode: "bridged", host });
    const bridged = await views(true);
    assert.deepEqual(bridged.list, ["10.0.10.2/24", "10.0.20.2/24", "10.0.2.15/24"]);
    assert.deepEqual(bridged.objects, bridged.list);
    assert.deepEqual(bridged.show, [
      ["10.0.10.2/24", "10.0.10.1"],
      ["10.0.20.2/24", null],
      ["10.0.2.15/24", null],
    ]);
    assert.deepEqual(bridged.dns, ["192.0.2.53"]);
  });
});

/** A host whose in-process dump fails (as a refused setns or socket would). */
class BrokenDumpNetlink extends FakeNetlink {
  override dump(): Promise<null> {
    return Promise.reject(new Error("rtnetlink: socket(AF_NETLINK) failed: errno 97"));
  }
}

Deno.test("reconcile reads through the rtnetlink dump when offered; a failing dump falls back to ip -j, logged", async () => {
  const links = { lo: { kind: "loopback" }, eth0: { kind: "veth" } };
  await withKattach(async (k, host, lines) => {
    startNetwork(k, { mode: "bridged", host });
    assert.ok(lines.includes("network: links are read through rtnetlink (fake)"));
    const first = await applyNetwork(k, { reason: "dump" });
    assert.ok(first.applied.length > 0);
    assert.deepEqual((await applyNetwork(k, { reason: "again" })).applied, []);
    host.linkMap.delete("kt0a4b53000001"); // drift by hand
    const repaired = (await applyNetwork(k, { reason: "drift" })).applied;
    // (as root the tap also names its owner: `… vnet_hdr user U group G`)
    assert.match(repaired[0], /^tuntap add dev kt0a4b53000001 mode tap vnet_hdr\b/);
    assert.deepEqual(repaired.slice(1), [
      "link set dev kt0a4b53000001 alias kaos:tap:web-1:0 master kbr10",
      "link set dev kt0a4b53000001 up",
    ]);
  }, new FakeNetlink(links, { dump: true }));
  await withKattach(async (k, host, lines) => {
    startNetwork(k, { mode: "bridged", host });
    const r = await applyNetwork(k, { reason: "fallback" });
    assert.equal(r.error, null);
    assert.ok(r.applied.length > 0);
    assert.ok(
      lines.includes(
        "network: rtnetlink read failed (rtnetlink: socket(AF_NETLINK) failed: errno 97); " +
          "read through ip -j instead",
      ),
      lines.join("\n"),
    );
    assert.deepEqual((await readHostState(host)).links.get("kbr10")?.up, true);
  }, new BrokenDumpNetlink(links));
});

Deno.test("nicCounters: a tap's counters as the guest sees them; user-mode and a missing tap not counted", async () => {
  const host = new FakeNetlink({ kt0a4b53000001: { kind: "tap", master: "kbr10" } });
  // The tap received 1,000 bytes from the guest and sent it 5,000.
  host.counterMap.set("kt0a4b53000001", {
    rxBytes: 1000,
    rxPackets: 10,
    txBytes: 5000,
    txPackets: 40,
  });
  const nic = (index: number, tap: string | null) => ({
    index,
    mac: `0a:4b:53:00:00:0${index + 1}`,
    vlan: tap ? 10 : null,
    mode: tap ? "tap" as const : "user" as const,
    tap,
    bridge: tap ? "kbr10" : null,
    address: tap ? "10.0.10.2/24" : null,
    gateway: null,
  });
  const plan = [nic(0, "kt0a4b53000001"), nic(1, null), nic(2, "kt0a4b53000003")];
  assert.deepEqual(await nicCounters(plan, host), [
    {
      index: 0,
      vlan: 10,
      mode: "tap",
      tap: "kt0a4b53000001",
      counters: { rxBytes: 5000, rxPackets: 40, txBytes: 1000, txPackets: 10 },
      why: null,
    },
    {
      index: 1,
      vlan: null,
      mode: "user",
      tap: null,
      counters: null,
      why: "not counted (user-mode network)",
    },
    {
      index: 2,
      vlan: 10,
      mode: "tap",
      tap: "kt0a4b53000003",
      counters: null,
      why: "not counted (its tap kt0a4b53000003 is missing)",
    },
  ]);
  // Hosted in user mode there is no host interface: nothing is read, nothing counted as 0.
  const hosted = await nicCounters([nic(1, null)], undefined);
  assert.deepEqual(hosted.map((n) => [n.counters, n.why]), [
    [null, "not counted (user-mode network)"],
  ]);
});

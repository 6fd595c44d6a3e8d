import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { FakeNetlink } from "../host/mod.ts";
import {
  diffLinks,
  type HostState,
  hostStateFromDump,
  type NetworkConfig,
  onlyLinks,
  parseHostState,
  planLinks,
  renderBatch,
} from "./mod.ts";

/** Set UPDATE_GOLDEN=1 to rewrite the golden files from the current renderer. */
const UPDATE = Deno.env.get("UPDATE_GOLDEN") === "1";
const GOLDEN = fileURLToPath(new URL("../fixtures/golden/ip_batch/", import.meta.url));

const base: NetworkConfig = {
  uplink: "eth0",
  vlans: [
    // internal switch: the host is its router
    {
      id: 10,
      cidr: "10.0.10.0/24",
      gateway: "10.0.10.1",
      uplink: "none",
      nat: false,
      isolate: false,
    },
    // tagged, NATed by the host, guests isolated
    {
      id: 20,
      cidr: "10.0.20.0/24",
      gateway: "10.0.20.254",
      uplink: "tagged",
      nat: true,
      isolate: true,
    },
    // tagged, the network's own router holds the gateway: no host address
    {
      id: 30,
      cidr: "192.168.30.0/28",
      gateway: "192.168.30.1",
      uplink: "tagged",
      nat: false,
      isolate: false,
    },
  ],
  routes: [],
  nics: [
    { instance: "web-2", index: 0, mac: "0a:4b:53:00:00:02", vlan: 10 },
    { instance: "web-1", index: 0, mac: "0a:4b:53:00:00:01", vlan: 10 },
    { instance: "web-1", index: 1, mac: "0a:4b:53:00:00:03", vlan: 20 },
    { instance: "db-1", index: 0, mac: "0a:4b:53:00:00:04", vlan: 30 },
  ],
};

function machine(): FakeNetlink {
  // lo, the uplink, and two links KaOS must never touch: one with a KaOS-like name but no mark.
  return new FakeNetlink({
    lo: { kind: "loopback" },
    eth0: { kind: "veth" },
    docker0: { kind: "bridge" },
    kbr99: { kind: "bridge" },
  });
}

async function hostState(h: FakeNetlink): Promise<HostState> {
  return parseHostState({
    links: await h.links(),
    addresses: await h.addresses(),
    ports: await h.ports(),
    vlans: await h.vlans(),
  });
}

/** Diffs, applies to the fake and checks that a second run is a no-op; returns the first batch. */
async function reconcile(h: FakeNetlink, config: NetworkConfig) {
  const d = diffLinks(planLinks(config), await hostState(h));
  const r = await h.applyBatch(renderBatch(d.lines));
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(diffLinks(planLinks(config), await hostState(h)).lines, [], "second run");
  return d;
}

async function golden(name: string, text: string): Promise<void> {
  const path = `${GOLDEN}${name}.batch`;
  if (UPDATE) await Deno.writeTextFile(path, text);
  assert.equal(text, await Deno.readTextFile(path), `golden ${name}.batch`);
}

Deno.test("link plan: cold host → one batch (golden); second run changes nothing; foreign links untouched", async () => {
  const h = machine();
  const d = await reconcile(h, base);
  await golden("cold", renderBatch(d.lines));
  assert.deepEqual(d.warnings, []);
  assert.equal(h.linkMap.get("kbr99")!.alias, undefined);
  assert.ok(h.linkMap.has("docker0"));
  // The host holds the gateway where it routes (10: internal, 20: NAT), not on 30.
  assert.deepEqual(h.addrMap.get("kbr10"), ["10.0.10.1/24"]);
  assert.deepEqual(h.addrMap.get("kbr20"), ["10.0.20.254/24"]);
  assert.equal(h.addrMap.get("kbr30"), undefined);
  assert.equal(h.linkMap.get("kt0a4b53000003")!.isolated, true);
  assert.equal(h.linkMap.get("kbr20")!.mac, "0a:4b:42:00:00:14");
  assert.equal(h.linkMap.get("kvl30")!.master, "kbr30");
});

Deno.test("host state: the rtnetlink records give what the ip -j JSON gives (VLAN links, ports, addresses)", async () => {
  const h = new FakeNetlink({
    lo: { kind: "loopback" },
    eth0: { kind: "veth" },
    kbr99: { kind: "bridge" },
  }, { dump: true });
  await reconcile(h, base);
  const fromDump = hostStateFromDump((await h.dump())!);
  assert.deepEqual(fromDump, await hostState(h));
  assert.deepEqual(
    [fromDump.links.get("kvl30")?.kind, fromDump.links.get("kvl30")?.parent],
    ["vlan", "eth0"],
  );
  assert.equal(fromDump.links.get("kt0a4b53000003")?.isolated, true);
});

Deno.test("instance del: its own taps go in one batch (golden); drift and other links stay", async () => {
  const h = machine();
  await reconcile(h, base);
  // Drift elsewhere, which only a full reconcile repairs: web-2's tap off its bridge, a bridge down.
  h.linkMap.get("kt0a4b53000002")!.master = undefined;
  h.linkMap.get("kbr30")!.up = false;
  const before = new Map([...h.linkMap].map(([name, l]) => [name, { ...l }]));
  // web-1 deleted: nothing of it is planned; the host as far as its taps (and the uplink) go.
  const want = planLinks({ ...base, vlans: [], nics: [] });
  const taps = ["kt0a4b53000001", "kt0a4b53000003"];
  const d = diffLinks(want, onlyLinks(await hostState(h), [...taps, want.uplink]));
  await golden("instance_del", renderBatch(d.lines));
  assert.deepEqual(d.warnings, []);
  assert.equal((await h.applyBatch(renderBatch(d.lines))).code, 0);
  for (const tap of taps) before.delete(tap);
  assert.deepEqual(h.linkMap, before, "every other link as it was, drift included");
  assert.deepEqual(diffLinks(want, onlyLinks(await hostState(h), [...taps, "eth0"])).lines, []);
});

Deno.test("link plan: drift and configuration changes are repaired in one batch (golden)", async () => {
  const h = machine();
  await reconcile(h, base);
  // Drift by hand: a tap deleted, a bridge down, a stray address, a port moved.
  h.linkMap.delete("kt0a4b53000001");
  h.linkMap.get("kbr10")!.up = false;
  h.addrMap.set("kbr10", ["10.0.10.1/24", "10.0.10.99/24"]);
  h.linkMap.get("kt0a4b53000004")!.master = "kbr10";
  // Configuration changes: web-2 deleted, VLAN 20 no longer isolated, VLAN 30 routed to 10 (the
  // host takes its gateway), the uplink of VLAN 20 changed to none (its kvl goes).
  const changed: NetworkConfig = {
    ...base,
    vlans: base.vlans.map((v) =>
      v.id === 20 ? { ...v, isolate: false, uplink: "none" as const } : v
    ),
    routes: [{ a: 10, b: 30 }],
    nics: base.nics.filter((n) => n.instance !== "web-2"),
  };
  const d = await reconcile(h, changed);
  await golden("drift", renderBatch(d.lines));
  assert.ok(!h.linkMap.has("kt0a4b53000002"));
  assert.ok(!h.linkMap.has("kvl20"));
  assert.deepEqual(h.addrMap.get("kbr30"), ["192.168.30.1/28"]);
  assert.equal(h.linkMap.get("kt0a4b53000003")!.isolated, false);
});

Deno.test("link plan: a missing uplink and a foreign link in the way are reported, not forced", async () => {
  const h = new FakeNetlink({
    lo: { kind: "loopback" },
    // someone else's bridge holds the name KaOS would give VLAN 10's
    kbr10: { kind: "bridge", alias: "not-ours" },
  });
  const d = await reconcile(h, base);
  await golden("blocked", renderBatch(d.lines));
  assert.deepEqual(d.warnings, [
    "kbr10 exists and is not KaOS' (no kaos: alias): left alone",
    "kvl20 is not created: the uplink eth0 does not exist (see `network set --uplink`)",
    "kvl30 is not created: the uplink eth0 does not exist (see `network set --uplink`)",
    "kt0a4b53000001 is not attached: its bridge kbr10 is not KaOS'",
    "kt0a4b53000002 is not attached: its bridge kbr10 is not KaOS'",
  ]);
  assert.equal(h.linkMap.get("kbr10")!.alias, "not-ours");
  assert.equal(h.addrMap.get("kbr10"), undefined);
});

Deno.test("link plan: an owned link of the wrong kind or parent is replaced; an empty plan removes only KaOS links", async () => {
  const h = machine();
  h.linkMap.set("eth1", { kind: "veth", mac: "02:00:00:00:01:01", up: true });
  await reconcile(h, base);
  const moved = await reconcile(h, { ...base, uplink: "eth1" });
  assert.deepEqual(moved.lines.slice(0, 2), ["link del dev kvl20", "link del dev kvl30"]);
  assert.equal(h.linkMap.get("kvl20")!.parent, "eth1");
  await reconcile(h, { uplink: "eth1", vlans: [], routes: [], nics: [] });
  assert.deepEqual([...h.linkMap.keys()].sort(), ["docker0", "eth0", "eth1", "kbr99", "lo"]);
});

Deno.test("host state parsing: malformed ip output is refused at the edge", () => {
  const ok = { links: "[]", addresses: "", ports: "", vlans: "" };
  assert.throws(() => parseHostState({ ...ok, links: '[{"flags":[]}]' }), /ifname/);
  assert.throws(() => parseHostState({ ...ok, links: "not json" }), SyntaxError);
  assert.throws(() => parseHostState({ ...ok, vlans: '[{"ifname":"kvl10"}]' }), /linkinfo/);
  assert.deepEqual(parseHostState(ok), { links: new Map(), addresses: new Map() });
  // iproute2's answer to a filter that matches nothing
  assert.deepEqual(parseHostState({ ...ok, vlans: "[{}]" }).links, new Map());
});

Deno.test("host state parsing: real iproute2 output (kind from the kernel for VLAN links, from the name for owned links)", () => {
  const s = parseHostState({
    links: JSON.stringify([
      { ifname: "eth0", flags: ["UP"], address: "52:54:00:12:34:56" },
      { ifname: "kbr10", flags: ["UP"], address: "0a:4b:42:00:00:0a", ifalias: "kaos:bridge:10" },
      { ifname: "kvl10", flags: [], master: "kbr10", link: "eth0", ifalias: "kaos:vlan:10" },
      { ifname: "kt0a4b53000001", flags: ["UP"], master: "kbr10", ifalias: "kaos:tap:w-1:0" },
      { ifname: "docker0", flags: ["UP"] },
    ]),
    addresses:
      '[{"ifname":"kbr10","operstate":"UP","addr_info":[{"local":"10.0.10.1","prefixlen":24}]}]',
    ports: JSON.stringify([
      { ifname: "kvl10", master: "kbr10", isolated: false },
      { ifname: "kt0a4b53000001", master: "kbr10", isolated: true },
    ]),
    vlans: JSON.stringify([{ ifname: "kvl10", link: "eth0", linkinfo: { info_data: { id: 10 } } }]),
  });
  const l = (n: string) => s.links.get(n)!;
  assert.deepEqual(
    [l("kbr10").kind, l("kvl10").kind, l("kt0a4b53000001").kind, l("docker0").kind],
    [
      "bridge",
      "vlan",
      "tap",
      null,
    ],
  );
  assert.deepEqual([l("kvl10").parent, l("kvl10").vlanId, l("kvl10").up], ["eth0", 10, false]);
  assert.deepEqual([l("kt0a4b53000001").isolated, l("kbr10").isolated], [true, null]);
  assert.deepEqual(s.addresses.get("kbr10"), ["10.0.10.1/24"]);
});

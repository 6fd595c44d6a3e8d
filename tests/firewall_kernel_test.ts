/**
 * The rendered firewall on the real kernel, in network namespaces this test creates: a "host"
 * namespace with two VLAN bridges and an uplink veth into an "uplink" namespace, and veth
 * "guests" in namespaces of their own plugged into the bridges as KaOS' taps would be. Checks
 * every golden ruleset with `nft -c`, then anti-spoofing (seen in the named counters), VLAN
 * isolation until a route, NAT out of the uplink, a published port (from outside and from the host
 * itself) and the management port by source.
 */
import { deepStrictEqual as assertEquals, ok } from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { realNft } from "../host/mod.ts";
import { type FirewallInput, renderFirewall } from "../netmgr/mod.ts";
import { run } from "./_util.ts";

const GOLDEN = fileURLToPath(new URL("../fixtures/golden/firewall/", import.meta.url));

Deno.test("every golden ruleset passes nft -c -f in a namespace of its own", async () => {
  const files = [...Deno.readDirSync(GOLDEN)].map((e) => e.name).filter((n) => n.endsWith(".nft"));
  ok(files.length >= 4, files.join());
  for (const name of files.sort()) {
    const r = await run(["unshare", "-n", "nft", "-c", "-f", `${GOLDEN}${name}`]);
    assertEquals({ name, code: r.code, stderr: r.stderr }, { name, code: 0, stderr: "" });
  }
});

const tag = `${Deno.pid % 100000}${Math.floor(Math.random() * 1000)}`;
const NS = {
  host: `fwh${tag}`,
  up: `fwu${tag}`,
  g1: `fw1${tag}`,
  g2: `fw2${tag}`,
  g3: `fw3${tag}`,
};

async function sh(argv: string[], what = argv.join(" ")): Promise<string> {
  const r = await run(argv, { timeoutMs: 20_000 });
  if (r.code !== 0) throw new Error(`${what} exited ${r.code}: ${r.stderr.trim()}`);
  return r.stdout;
}

const inNs = (ns: string, ...argv: string[]) => ["ip", "netns", "exec", ns, ...argv];

/** True when `argv` in `ns` succeeds within a few seconds. */
async function succeeds(ns: string, ...argv: string[]): Promise<boolean> {
  return (await run(["timeout", "3", ...inNs(ns, ...argv)])).code === 0;
}

const ping = (ns: string, ip: string) => succeeds(ns, "busybox", "ping", "-c", "1", "-W", "1", ip);
const wget = (ns: string, url: string) =>
  run(["timeout", "2", ...inNs(ns, "busybox", "wget", "-q", "-O", "-", url)]);

const guests = [
  { ns: NS.g1, mac: "0a:4b:53:00:00:01", ip: "10.0.10.2", vlan: 10 },
  { ns: NS.g2, mac: "0a:4b:53:00:00:02", ip: "10.0.10.3", vlan: 10 },
  { ns: NS.g3, mac: "0a:4b:53:00:00:03", ip: "10.0.20.2", vlan: 20 },
];
const tap = (mac: string) => `kt${mac.replaceAll(":", "")}`;

async function buildLab(): Promise<void> {
  for (const ns of Object.values(NS)) await sh(["ip", "netns", "add", ns]);
  const h = (...a: string[]) => sh(inNs(NS.host, ...a));
  await h("ip", "link", "set", "lo", "up");
  await h("sh", "-c", "echo 1 > /proc/sys/net/ipv4/ip_forward");
  for (const [id, gw] of [[10, "10.0.10.1"], [20, "10.0.20.1"]] as const) {
    await h("ip", "link", "add", `kbr${id}`, "type", "bridge");
    await h("ip", "addr", "add", `${gw}/24`, "dev", `kbr${id}`);
    await h("ip", "link", "set", `kbr${id}`, "up");
  }
  // The uplink: up0 here, eth0 in the uplink namespace, which has no route back to the VLANs.
  await h("ip", "link", "add", "up0", "type", "veth", "peer", "name", "eth0", "netns", NS.up);
  await h("ip", "addr", "add", "192.0.2.1/24", "dev", "up0");
  await h("ip", "link", "set", "up0", "up");
  await sh(inNs(NS.up, "ip", "addr", "add", "192.0.2.2/24", "dev", "eth0"));
  await sh(inNs(NS.up, "ip", "link", "set", "eth0", "up"));
  await sh(inNs(NS.up, "ip", "link", "set", "lo", "up"));
  for (const g of guests) {
    await h("ip", "link", "add", tap(g.mac), "type", "veth", "peer", "name", "eth0", "netns", g.ns);
    await h("ip", "link", "set", tap(g.mac), "master", `kbr${g.vlan}`, "up");
    const gs = (...a: string[]) => sh(inNs(g.ns, ...a));
    await gs("ip", "link", "set", "eth0", "address", g.mac);
    await gs("ip", "addr", "add", `${g.ip}/24`, "dev", "eth0");
    await gs("ip", "link", "set", "eth0", "up");
    await gs("ip", "link", "set", "lo", "up");
    await gs("ip", "route", "add", "default", "via", g.vlan === 10 ? "10.0.10.1" : "10.0.20.1");
  }
}

async function dropLab(): Promise<void> {
  for (const ns of Object.values(NS)) await run(["ip", "netns", "del", ns]);
}

function config(over: Partial<FirewallInput> = {}): FirewallInput {
  return {
    uplink: "up0",
    mgmtPort: 1289,
    mgmt: [],
    vlans: [
      {
        id: 10,
        cidr: "10.0.10.0/24",
        gateway: "10.0.10.1",
        bridge: "kbr10",
        nat: true,
        isolate: false,
      },
      {
        id: 20,
        cidr: "10.0.20.0/24",
        gateway: "10.0.20.1",
        bridge: "kbr20",
        nat: false,
        isolate: false,
      },
    ],
    routes: [],
    ports: guests.map((g) => ({ tap: tap(g.mac), mac: g.mac, ip: g.ip, vlan: g.vlan })),
    forwards: [{ proto: "tcp", hostPort: 8080, ip: "10.0.10.2", guestPort: 80 }],
    rules: [],
    ...over,
  };
}

Deno.test({
  name: "the firewall on the kernel: anti-spoofing, isolation, routes, NAT, published port, 1289",
  // The busybox httpd daemons and their namespaces go away with the namespaces.
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    const nft = realNft(inNs(NS.host, "nft"));
    const www = await Deno.makeTempDir({ prefix: "kaos-fw-www-" });
    try {
      await buildLab();
      await Deno.writeTextFile(`${www}/index.html`, "guest one\n");
      // Bridged traffic must not meet the inet forward chain (what kattach sets, too).
      await nft.writeSysctl("net/bridge/bridge-nf-call-iptables", "0");
      await nft.apply(renderFirewall(config()).text);
      await sh(inNs(NS.g1, "busybox", "httpd", "-p", "80", "-h", www));
      await sh(inNs(NS.host, "busybox", "httpd", "-p", "1289", "-h", www));
      const counters = async () => ({
        ...await nft.counters("bridge", "kaos"),
        ...await nft.counters("inet", "kaos"),
      });

      await t.step("guests reach the gateway and each other on their VLAN", async () => {
        ok(await ping(NS.g1, "10.0.10.1"), "g1 → gateway");
        ok(await ping(NS.g1, "10.0.10.3"), "g1 → g2");
      });

      await t.step("a spoofed source IP is dropped on the bridge", async () => {
        const before = (await counters()).spoof_ip.packets;
        await sh(inNs(NS.g1, "ip", "addr", "add", "10.0.10.99/24", "dev", "eth0"));
        ok(
          !await succeeds(
            NS.g1,
            "busybox",
            "ping",
            "-c",
            "1",
            "-W",
            "1",
            "-I",
            "10.0.10.99",
            "10.0.10.3",
          ),
        );
        await sh(inNs(NS.g1, "ip", "addr", "del", "10.0.10.99/24", "dev", "eth0"));
        ok((await counters()).spoof_ip.packets > before, "spoof_ip counted");
      });

      await t.step("a spoofed ARP sender is dropped", async () => {
        const before = (await counters()).spoof_arp.packets;
        await sh(inNs(NS.g1, "ip", "addr", "add", "10.0.10.77/24", "dev", "eth0"));
        const arping = ["busybox", "arping", "-c", "1", "-w", "1", "-I", "eth0"];
        ok(
          !await succeeds(NS.g1, ...arping, "-s", "10.0.10.77", "10.0.10.3"),
          "spoofed ARP answered",
        );
        await sh(inNs(NS.g1, "ip", "addr", "del", "10.0.10.77/24", "dev", "eth0"));
        ok((await counters()).spoof_arp.packets > before, "spoof_arp counted");
        ok(await succeeds(NS.g1, ...arping, "10.0.10.3"), "ARP from its own address works");
      });

      await t.step("a spoofed source MAC is dropped", async () => {
        const before = (await counters()).spoof_mac.packets;
        await sh(inNs(NS.g1, "ip", "link", "set", "eth0", "address", "0a:4b:53:00:00:99"));
        await sh(inNs(NS.g1, "ip", "neigh", "flush", "all"));
        ok(!await ping(NS.g1, "10.0.10.3"), "spoofed MAC got through");
        await sh(inNs(NS.g1, "ip", "link", "set", "eth0", "address", guests[0].mac));
        ok((await counters()).spoof_mac.packets > before, "spoof_mac counted");
        ok(await ping(NS.g1, "10.0.10.3"), "g1 works again with its own MAC");
      });

      await t.step("VLANs are isolated until a route is added", async () => {
        const before = (await counters()).forward_drop.packets;
        ok(!await ping(NS.g1, "10.0.20.2"), "VLAN 10 reached VLAN 20 without a route");
        ok((await counters()).forward_drop.packets > before, "forward_drop counted");
        await nft.apply(renderFirewall(config({ routes: [{ a: 10, b: 20 }] })).text);
        ok(await ping(NS.g1, "10.0.20.2"), "the route lets VLAN 10 reach VLAN 20");
        ok(await ping(NS.g3, "10.0.10.2"), "and back");
        await nft.apply(renderFirewall(config()).text);
      });

      await t.step("a NAT VLAN reaches the uplink, a VLAN without NAT does not", async () => {
        ok(await ping(NS.g1, "192.0.2.2"), "VLAN 10 (nat) → uplink");
        ok(!await ping(NS.g3, "192.0.2.2"), "VLAN 20 (no nat) → uplink");
      });

      await t.step("a published port answers from the uplink", async () => {
        const r = await wget(NS.up, "http://192.0.2.1:8080/");
        assertEquals(r.stdout, "guest one\n");
        ok((await wget(NS.up, "http://10.0.10.2:80/")).code !== 0, "guest reached directly");
      });

      await t.step("the host itself reaches a published port on its own addresses", async () => {
        // The output-path DNAT: the uplink address and a VLAN gateway are the host's own.
        assertEquals((await wget(NS.host, "http://192.0.2.1:8080/")).stdout, "guest one\n");
        assertEquals((await wget(NS.host, "http://10.0.10.1:8080/")).stdout, "guest one\n");
        // Not on loopback (route_localnet stays off): nothing listens on 127.0.0.1:8080.
        const lo = await wget(NS.host, "http://127.0.0.1:8080/");
        ok(lo.code !== 0 && lo.stdout === "", `127.0.0.1:8080 answered: ${lo.stdout}`);
        const rl = await sh(inNs(NS.host, "cat", "/proc/sys/net/ipv4/conf/all/route_localnet"));
        assertEquals(rl.trim(), "0");
      });

      await t.step(
        "1289 from anywhere outside the guest VLANs when there are no sources",
        async () => {
          assertEquals((await wget(NS.up, "http://192.0.2.1:1289/")).stdout, "guest one\n");
          ok((await wget(NS.g1, "http://10.0.10.1:1289/")).code !== 0, "a guest reached 1289");
        },
      );

      await t.step("1289 only from the management sources", async () => {
        await nft.apply(renderFirewall(config({ mgmt: ["198.51.100.0/24"] })).text);
        ok((await wget(NS.up, "http://192.0.2.1:1289/")).code !== 0, "a non-source reached 1289");
        await nft.apply(renderFirewall(config({ mgmt: ["192.0.2.2/32"] })).text);
        assertEquals((await wget(NS.up, "http://192.0.2.1:1289/")).stdout, "guest one\n");
        ok((await counters()).mgmt_accept.packets > 0);
      });

      await t.step("replacing the ruleset leaves foreign tables alone", async () => {
        await sh(inNs(NS.host, "nft", "add", "table", "ip", "someone_else"));
        await nft.apply(renderFirewall(config()).text);
        const tables = await sh(inNs(NS.host, "nft", "list", "tables"));
        ok(tables.includes("table ip someone_else"), tables);
      });
    } finally {
      await dropLab();
      await Deno.remove(www, { recursive: true });
    }
  },
});

/**
 * Host networking on the real kernel, inside network namespaces this test creates and deletes:
 * the link reconcile (bridges, taps, addresses, isolation) with drift repair and foreign links
 * left alone; and a hosted kattach in bridged mode that deploys the fixture `web` on a VLAN
 * whose page answers on the allocated address from inside the namespace, with its tap's counters
 * under `instance stats`; and the link counters read from sysfs and through `ip -n`.
 */
import { testContext } from "../kattach/_test_context.ts";
import assert from "node:assert/strict";
import { LinkCache, type NftHost, realNetlink, realNft } from "../host/mod.ts";
import { applyNetwork, ensureGuestLinks, readHostState, startNetwork } from "../kattach/network.ts";
import { Store } from "../kattach/store.ts";
import type {
  FirewallStatus,
  GuestStats,
  Instance,
  NetworkApplyResult,
  NetworkSettings,
  NetworkStatus,
  SystemStatus,
} from "../ipc/mod.ts";
import {
  diffLinks,
  hostStateFromDump,
  type NetworkConfig,
  planLinks,
  renderBatch,
} from "../netmgr/mod.ts";
import { buildFixtures, FIXTURES_OUT, REPO_ROOT, TestKattach } from "./_harness.ts";
import { run } from "./_util.ts";

async function sh(...argv: string[]): Promise<string> {
  const r = await run(argv, { timeoutMs: 30_000 });
  if (r.code !== 0) throw new Error(`${argv.join(" ")} exited ${r.code}: ${r.stderr}`);
  return r.stdout;
}

/** A fresh namespace with lo up; removed (with every link in it) by the returned function. */
async function namespace(prefix: string): Promise<[string, () => Promise<void>]> {
  const ns = `${prefix}-${Deno.pid}-${crypto.randomUUID().slice(0, 6)}`;
  await sh("ip", "netns", "add", ns);
  await sh("ip", "-n", ns, "link", "set", "lo", "up");
  return [ns, async () => void await run(["ip", "netns", "del", ns])];
}

/** The links enslaved to `bridge` in namespace `ns`, by name, sorted (from the kernel). */
async function portsOf(ns: string, bridge: string): Promise<string[]> {
  const shown = JSON.parse(await sh("ip", "-n", ns, "-j", "link", "show", "master", bridge));
  return shown.map((l: { ifname: string }) => l.ifname).sort();
}

/** The firewall's anti-spoofing set (tap . MAC . address) in namespace `ns`, as nft lists it. */
function portIpSet(ns: string): Promise<string> {
  return sh("ip", "netns", "exec", ns, "nft", "list", "set", "bridge", "kaos", "port_ip");
}

Deno.test("links on the real kernel: create, no-op second run, drift repaired, foreign links untouched", async () => {
  const [ns, drop] = await namespace("kaosnet-links");
  try {
    const host = realNetlink({ netns: ns });
    assert.equal(host.reader, "rtnetlink", "the in-process reader runs here (FFI allowed)");
    const ipOnly = realNetlink({ netns: ns, reader: "ip" });
    // The in-process dump and the four `ip -j` reads report the same host.
    const sameReads = async () => {
      assert.equal(await ipOnly.dump(), null);
      assert.deepEqual(await readHostState(host), await readHostState(ipOnly));
    };
    // Foreign: a veth pair, and a bridge with a KaOS-like name but no kaos: alias.
    await sh("ip", "-n", ns, "link", "add", "vfor0", "type", "veth", "peer", "name", "vfor1");
    await sh("ip", "-n", ns, "link", "add", "kbr99", "type", "bridge");
    const config: NetworkConfig = {
      uplink: "vfor0",
      vlans: [
        {
          id: 10,
          cidr: "10.0.10.0/24",
          gateway: "10.0.10.1",
          uplink: "none",
          nat: false,
          isolate: false,
        },
        {
          id: 20,
          cidr: "10.0.20.0/24",
          gateway: "10.0.20.1",
          uplink: "none",
          nat: false,
          isolate: true,
        },
      ],
      routes: [],
      nics: [
        { instance: "web-1", index: 0, mac: "0a:4b:53:00:00:01", vlan: 10 },
        { instance: "web-2", index: 0, mac: "0a:4b:53:00:00:02", vlan: 20 },
      ],
    };
    const reconcile = async () => {
      const d = diffLinks(planLinks(config), await readHostState(host));
      if (d.lines.length > 0) {
        const r = await host.applyBatch(renderBatch(d.lines));
        assert.equal(r.code, 0, `ip -batch: ${r.stderr}\n${renderBatch(d.lines)}`);
      }
      return d.lines;
    };
    const before = await sh("ip", "-n", ns, "-j", "-d", "link", "show", "kbr99");

    assert.ok((await reconcile()).length > 0);
    assert.deepEqual(await reconcile(), [], "a second run changes nothing");
    const links = (await readHostState(host)).links;
    assert.equal(links.get("kbr10")?.mac, "0a:4b:42:00:00:0a");
    assert.equal(links.get("kt0a4b53000001")?.master, "kbr10");
    assert.equal(links.get("kt0a4b53000002")?.isolated, true);
    assert.equal(links.get("kt0a4b53000001")?.isolated, false);
    assert.ok(links.get("kt0a4b53000001")?.up);
    assert.deepEqual((await readHostState(host)).addresses.get("kbr20"), ["10.0.20.1/24"]);
    await sameReads();

    // Drift by hand: a tap deleted, a bridge down, a stray address on a KaOS bridge.
    await sh("ip", "-n", ns, "link", "del", "kt0a4b53000001");
    await sh("ip", "-n", ns, "link", "set", "kbr20", "down");
    await sh("ip", "-n", ns, "addr", "add", "10.0.10.200/24", "dev", "kbr10");
    await sameReads();
    assert.deepEqual(await reconcile(), [
      "address del 10.0.10.200/24 dev kbr10",
      "tuntap add dev kt0a4b53000001 mode tap vnet_hdr",
      "link set dev kt0a4b53000001 alias kaos:tap:web-1:0 master kbr10",
      "link set dev kbr20 up",
      "link set dev kt0a4b53000001 up",
    ]);
    assert.deepEqual(await reconcile(), []);
    assert.equal((await readHostState(host)).links.get("kt0a4b53000001")?.master, "kbr10");

    // Everything gone from the configuration: only KaOS' links go.
    config.vlans = [];
    config.nics = [];
    await reconcile();
    const left = [...(await readHostState(host)).links.keys()].sort();
    assert.deepEqual(left, ["kbr99", "lo", "vfor0", "vfor1"]);
    assert.equal(await sh("ip", "-n", ns, "-j", "-d", "link", "show", "kbr99"), before);
  } finally {
    await drop();
  }
});

Deno.test("a deploy's starts on the real kernel: one ip batch and one nft apply, side by side; every tap on its bridge and in the firewall before ensureGuestLinks resolves", async () => {
  const [ns, drop] = await namespace("kaosnet-starts");
  const dir = await Deno.makeTempDir({ prefix: "kaos-net-starts-" });
  const store = Store.open(`${dir}/kaos.db`);
  try {
    // What ran when (ms): the link batches and the nft applies, through the real host.
    const t0 = performance.now();
    const batches: { from: number; to: number; text: string }[] = [];
    const applies: { from: number; to: number }[] = [];
    const links = realNetlink({ netns: ns });
    const host = {
      ...links,
      vhostNet: () => links.vhostNet(),
      async applyBatch(text: string) {
        const from = performance.now() - t0;
        const r = await links.applyBatch(text);
        batches.push({ from, to: performance.now() - t0, text });
        return r;
      },
    };
    const real = realNft(["ip", "netns", "exec", ns, "nft"]);
    // (swapped below for an nft that cannot run: a namespace that does not exist)
    let inner = real;
    const nft: NftHost = {
      ...real,
      async apply(script) {
        const from = performance.now() - t0;
        await inner.apply(script);
        applies.push({ from, to: performance.now() - t0 });
      },
    };
    const { k, lines } = testContext(store, dir, { firewallHost: { nft, mgmtPort: 1289 } });
    store.tx(() => {
      store.insertVlan({
        id: 10,
        name: "front",
        cidr: "10.0.10.0/24",
        gateway: "10.0.10.1",
        poolStart: "10.0.10.2",
        poolEnd: "10.0.10.254",
        uplink: "none",
        nat: false,
        isolate: false,
      });
      store.insertVmImage({
        name: "web",
        modules: [],
        configGroups: [],
        vlans: [10],
        memoryMiB: 64,
        cpus: 1,
      });
    });
    startNetwork(k, { mode: "bridged", host });
    const boot = await applyNetwork(k, { reason: "boot" });
    assert.equal(boot.error, null, lines.join("\n"));
    // A deploy's records, then its starts together.
    const names = ["web-1", "web-2", "web-3"];
    store.tx(() =>
      names.forEach((name, i) =>
        store.insertInstance({
          name,
          vmimage: "web",
          state: "defined",
          autostart: false,
          restartPolicy: "never",
          nics: [{ index: 0, vlan: 10, mac: `0a:4b:53:00:00:0${i + 1}`, ip: `10.0.10.${i + 2}` }],
        })
      )
    );
    const [b, a] = [batches.length, applies.length];
    await Promise.all(names.map((name) => ensureGuestLinks(k, store.getInstance(name)!)));
    assert.equal(batches.length, b + 1, "one ip batch for the three taps");
    assert.equal(applies.length, a + 1, "one nft apply for the three taps");
    const [batch, apply] = [batches[b], applies[a]];
    assert.ok(
      apply.from < batch.to && batch.from < apply.to,
      `the ruleset is applied beside the link batch: ${JSON.stringify({ batch, apply })}`,
    );
    // What QEMU relies on once ensureGuestLinks has resolved: its tap on the bridge, up, and
    // the anti-spoofing set naming it with the guest's MAC and address (from the kernel).
    const taps = ["kt0a4b53000001", "kt0a4b53000002", "kt0a4b53000003"];
    assert.deepEqual(await portsOf(ns, "kbr10"), taps);
    const set = await portIpSet(ns);
    names.forEach((_, i) =>
      assert.match(
        set,
        new RegExp(`"${taps[i]}" \\. 0a:4b:53:00:00:0${i + 1} \\. 10\\.0\\.10\\.${i + 2}`),
      )
    );
    // A start of an instance already linked changes nothing on the host.
    await ensureGuestLinks(k, store.getInstance("web-2")!);
    assert.equal(batches.length, b + 1);
    assert.equal(applies.length, a + 1);

    // nft fails: the new tap is made, but a tap the kernel's ruleset does not name is not
    // filtered at all (`iifname != @ports accept`), so the start is refused, naming it.
    store.tx(() =>
      store.insertInstance({
        name: "web-4",
        vmimage: "web",
        state: "defined",
        autostart: false,
        restartPolicy: "never",
        nics: [{ index: 0, vlan: 10, mac: "0a:4b:53:00:00:04", ip: "10.0.10.5" }],
      })
    );
    inner = realNft(["ip", "netns", "exec", `${ns}-missing`, "nft"]);
    await assert.rejects(
      () => ensureGuestLinks(k, store.getInstance("web-4")!),
      /^UserError: Cannot start web-4: the firewall does not filter its tap kt0a4b53000004 \(firewall: /,
    );
    assert.deepEqual(await portsOf(ns, "kbr10"), [...taps, "kt0a4b53000004"]);
    assert.doesNotMatch(await portIpSet(ns), /kt0a4b53000004/);
    // The others' starts are not held up: their taps are in the ruleset in force.
    await ensureGuestLinks(k, store.getInstance("web-1")!);
    // nft back: the next start of web-4 applies the ruleset and goes ahead.
    inner = real;
    await ensureGuestLinks(k, store.getInstance("web-4")!);
    assert.match(await portIpSet(ns), /"kt0a4b53000004" \. 0a:4b:53:00:00:04 \. 10\.0\.10\.5/);
  } finally {
    store.close();
    await Deno.remove(dir, { recursive: true });
    await drop();
  }
});

Deno.test({
  name:
    "hosted kattach, bridged: deploy --no-start makes its instances' taps and firewall entries, and leaves other links to the next full reconcile",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await buildFixtures();
    const [ns, drop] = await namespace("kaosnet-deploy");
    let k: TestKattach | undefined;
    try {
      k = await TestKattach.start(undefined, {
        wrap: ["ip", "netns", "exec", ns],
        network: "bridged",
      });
      for (const m of ["vkaos", "web"]) {
        assert.equal((await k.aq("module", "import", `${FIXTURES_OUT}/${m}`)).code, 0);
      }
      await k.json("vlan", "add", "10", "front", "10.77.10.0/24");
      await k.json("vmimage", "create", "webv", "--modules", "web", "--vlan", "10");
      // An owned link no VLAN wants (a leftover), made behind kattach's back.
      await sh("ip", "-n", ns, "link", "add", "kbr30", "type", "bridge");
      await sh("ip", "-n", ns, "link", "set", "dev", "kbr30", "alias", "kaos:bridge:30");
      const deployed = await k.json<Instance[]>("deploy", "webv", "--count", "2", "--no-start");
      const taps = deployed.map((d) => `kt${d.nics[0].mac.replaceAll(":", "")}`);
      assert.deepEqual(await portsOf(ns, "kbr10"), [...taps].sort(), "the deploy made its taps");
      const set = await portIpSet(ns);
      for (const tap of taps) assert.match(set, new RegExp(`"${tap}" \\. `), set);
      assert.match(k.log, /network: deploy: 6 change\(s\)/);
      // The deploy touched no other link: the leftover waits for the next full reconcile.
      await sh("ip", "-n", ns, "link", "show", "kbr30");
      const status = await k.json<NetworkStatus>("network", "status");
      assert.deepEqual(status.pending, ["link del dev kbr30"]);
      const full = await k.json<NetworkApplyResult>("network", "apply");
      assert.deepEqual([full.applied, full.error], [["link del dev kbr30"], null]);
      assert.notEqual((await run(["ip", "-n", ns, "link", "show", "kbr30"])).code, 0);
    } finally {
      await k?.dispose();
      await drop();
    }
  },
});

Deno.test({
  name:
    "hosted kattach, bridged: instance del removes its own tap, firewall entries, published port, records and files only; a firewall that fails midway is said, and network apply finishes it",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await buildFixtures();
    const [ns, drop] = await namespace("kaosnet-del");
    // nft through a wrapper that refuses while the flag file exists (a failure midway).
    const bin = await Deno.makeTempDir({ prefix: "kaos-net-del-bin-" });
    const flag = `${bin}/refuse`;
    const realNftPath = (await sh("sh", "-c", "command -v nft")).trim();
    await Deno.writeTextFile(
      `${bin}/nft`,
      `#!/bin/sh\n[ -e ${flag} ] && { echo "nft: refused by the test" >&2; exit 1; }\n` +
        `exec ${realNftPath} "$@"\n`,
      { mode: 0o755 },
    );
    let k: TestKattach | undefined;
    try {
      k = await TestKattach.start(undefined, {
        wrap: ["ip", "netns", "exec", ns],
        network: "bridged",
        env: { PATH: `${bin}:${Deno.env.get("PATH")}` },
      });
      for (const m of ["vkaos", "web"]) {
        assert.equal((await k.aq("module", "import", `${FIXTURES_OUT}/${m}`)).code, 0);
      }
      await k.json("vlan", "add", "10", "front", "10.77.10.0/24");
      await k.json("vmimage", "create", "webv", "--modules", "web", "--vlan", "10");
      await k.json("vmimage", "create", "webu", "--modules", "web");
      const deployed = await k.json<Instance[]>("deploy", "webv", "--count", "3", "--no-start");
      const [t1, t2, t3] = deployed.map((d) => `kt${d.nics[0].mac.replaceAll(":", "")}`);
      await k.json("deploy", "webu", "--no-start");
      await k.json("firewall", "forward", "add", "webv-1", "80", "--host-port", "8080");
      const ruleset = () => sh("ip", "netns", "exec", ns, "nft", "list", "ruleset");
      assert.match(await ruleset(), /8080/);
      // An owned link no VLAN wants, behind kattach's back: only a full reconcile removes it.
      await sh("ip", "-n", ns, "link", "add", "kbr30", "type", "bridge");
      await sh("ip", "-n", ns, "link", "set", "dev", "kbr30", "alias", "kaos:bridge:30");
      const files = (name: string) => `${k!.stateDir}/instances/${name}`;
      for (const name of ["webv-1", "webv-2", "webu-1"]) {
        await Deno.mkdir(files(name), { recursive: true });
        await Deno.writeTextFile(`${files(name)}/serial.log`, "boot\n");
      }
      const gone = async (path: string) => await Deno.stat(path).then(() => false, () => true);

      // On the VLAN, with a published port: its tap, its set entries, its DNAT, its records and
      // files go; the other instances' taps and the stray bridge stay.
      const del = await k.json<{ deleted: string; unpublished: { hostPort: number }[] }>(
        ...["instance", "del", "webv-1"],
      );
      assert.deepEqual([del.deleted, del.unpublished.map((u) => u.hostPort)], ["webv-1", [8080]]);
      assert.deepEqual(await portsOf(ns, "kbr10"), [t2, t3].sort());
      const set = await portIpSet(ns);
      assert.doesNotMatch(set, new RegExp(t1));
      assert.match(set, new RegExp(`"${t2}" \\. `));
      assert.doesNotMatch(await ruleset(), /8080/);
      assert.equal((await k.aq("instance", "show", "webv-1")).code, 1);
      assert.ok(await gone(files("webv-1")));
      await sh("ip", "-n", ns, "link", "show", "kbr30");
      assert.match(k.log, /network: instance del webv-1: 1 change\(s\)/);
      assert.doesNotMatch(k.log, /network: instance\.del/, "no full reconcile");

      // A user-mode NIC only: nothing on the host is named by it; no ruleset is applied.
      const before = await k.json<FirewallStatus>("firewall", "status");
      await k.json("instance", "del", "webu-1");
      assert.ok(await gone(files("webu-1")));
      const after = await k.json<FirewallStatus>("firewall", "status");
      assert.equal(after.current?.id, before.current?.id);
      assert.doesNotMatch(k.log, /network: instance del webu-1/);

      // nft fails midway: the records, the files and the tap are gone, and the answer says that
      // the ruleset in force still names it; `network apply` then applies it (and the full
      // reconcile removes the stray bridge).
      await Deno.writeTextFile(flag, "");
      const failed = await k.aq("instance", "del", "webv-2");
      assert.equal(failed.code, 1, failed.stderr);
      assert.match(
        failed.stderr,
        /^Error: Deleted webv-2, but the host network could not be updated \(firewall: /m,
      );
      assert.match(
        failed.stderr,
        new RegExp(
          `network apply\` finishes it \\(a full reconcile: it deletes what is left of its tap ${t2} `,
        ),
      );
      assert.equal((await k.aq("instance", "show", "webv-2")).code, 1);
      assert.ok(await gone(files("webv-2")));
      assert.deepEqual(await portsOf(ns, "kbr10"), [t3]);
      assert.match(await portIpSet(ns), new RegExp(t2), "the kernel keeps the ruleset it had");
      await Deno.remove(flag);
      const apply = await k.json<NetworkApplyResult>("network", "apply");
      assert.deepEqual([apply.applied, apply.error], [["link del dev kbr30"], null]);
      assert.doesNotMatch(await portIpSet(ns), new RegExp(t2));
      assert.match(await portIpSet(ns), new RegExp(t3));
      assert.deepEqual((await k.json<NetworkStatus>("network", "status")).pending, []);
    } finally {
      await k?.dispose();
      await drop();
      await Deno.remove(bin, { recursive: true });
    }
  },
});

Deno.test("the link cache follows the kernel: changes behind its back, a lost burst re-read", async () => {
  const [ns, drop] = await namespace("kaosnet-cache");
  const cached = realNetlink({ netns: ns, cache: true });
  const small = new LinkCache({ netns: ns, bufferBytes: 4096 });
  try {
    assert.match(cached.reader, /^rtnetlink, cached/);
    const fresh = realNetlink({ netns: ns });
    // Both caches against a fresh dump (addresses sorted: their order is the kernel's choice).
    const norm = (st: Awaited<ReturnType<typeof readHostState>>) => ({
      links: st.links,
      addresses: new Map([...st.addresses].map(([k, v]) => [k, [...v].sort()])),
    });
    const same = async (what: string) => {
      const want = norm(await readHostState(fresh));
      assert.deepEqual(norm(await readHostState(cached)), want, what);
      const viaSmall = hostStateFromDump(small.read());
      assert.deepEqual(norm(viaSmall), want, `${what} (4 KiB buffer)`);
    };
    await same("empty");
    const ip = (...args: string[]) => sh("ip", "-n", ns, ...args);
    await ip("link", "add", "kbr10", "type", "bridge");
    await ip("link", "set", "kbr10", "alias", "kaos:bridge:10", "up");
    await ip("tuntap", "add", "dev", "kt0a4b53000001", "mode", "tap");
    await ip("link", "set", "kt0a4b53000001", "alias", "kaos:tap:a:0", "master", "kbr10", "up");
    await ip("tuntap", "add", "dev", "kt0a4b53000002", "mode", "tap");
    await ip("link", "set", "kt0a4b53000002", "master", "kbr10");
    await ip("link", "set", "kt0a4b53000002", "type", "bridge_slave", "isolated", "on");
    await ip("addr", "add", "10.0.10.1/24", "dev", "kbr10");
    await ip("addr", "add", "10.0.10.200/24", "dev", "kbr10");
    await same("made");
    assert.equal((await readHostState(cached)).links.get("kt0a4b53000002")?.isolated, true);
    await ip("link", "set", "kt0a4b53000001", "nomaster");
    await same("a tap moved off its bridge");
    assert.equal((await readHostState(cached)).links.get("kt0a4b53000001")?.master, null);
    await ip("link", "del", "kt0a4b53000002");
    await ip("addr", "del", "10.0.10.200/24", "dev", "kbr10");
    await ip("link", "set", "kbr10", "down");
    await same("a tap deleted, an address deleted, a bridge down");
    // The kernel announces no alias change of a link that is down: the cache asks for it.
    await ip("link", "set", "kbr10", "alias", "not-kaos");
    await ip("link", "set", "kt0a4b53000001", "alias", "kaos:tap:b:0");
    await same("aliases changed on a down bridge and a down tap");
    assert.equal((await readHostState(cached)).links.get("kbr10")?.alias, "not-kaos");
    await ip("link", "set", "kt0a4b53000001", "name", "ktrenamed");
    await same("a tap renamed");
    // A burst larger than the 4 KiB buffer: the small cache loses notifications and dumps again.
    const dumps = small.stats.dumps;
    const lines = Array.from({ length: 40 }, (_, i) => [
      `link add kbrst${i} type bridge`,
      `link set dev kbrst${i} up`,
    ]).flat();
    const burst = await run(["ip", "-n", ns, "-batch", "-"], {
      timeoutMs: 30_000,
      stdin: lines.join("\n") + "\n",
    });
    assert.equal(burst.code, 0, burst.stderr);
    await same("a burst of 40 bridges");
    assert.ok(small.stats.dumps > dumps, "the overflowed cache read the whole dump again");
    assert.ok(small.stats.events > 0 && small.stats.asked > 0, JSON.stringify(small.stats));
    await ip("link", "del", "kbr10");
    await same("a bridge deleted (its address with it)");
  } finally {
    cached.close();
    small.close();
    await drop();
  }
});

Deno.test("without --allow-ffi the links are read through ip -j, and the reader says why", async () => {
  const [ns, drop] = await namespace("kaosnet-noffi");
  const dir = await Deno.makeTempDir({ prefix: "kaos-noffi-" });
  try {
    await sh("ip", "-n", ns, "link", "add", "kbr10", "type", "bridge");
    const probe = `${dir}/probe.ts`;
    await Deno.writeTextFile(
      probe,
      `import { realNetlink } from "${REPO_ROOT}/host/mod.ts";
import { readHostState } from "${REPO_ROOT}/kattach/network.ts";
const h = realNetlink();
const state = await readHostState(h);
console.log(JSON.stringify({ reader: h.reader, dump: await h.dump(), links: [...state.links.keys()] }));
`,
    );
    const out = JSON.parse(
      await sh(
        ...[
          "ip",
          "netns",
          "exec",
          ns,
          Deno.execPath(),
          "run",
          "--config",
          `${REPO_ROOT}/deno.json`,
        ],
        ...["--allow-read", "--allow-run", "--allow-env", "--allow-write", probe],
      ),
    );
    assert.match(out.reader, /^ip -j \(in-process rtnetlink not used: .*--allow-ffi/);
    assert.equal(out.dump, null);
    assert.deepEqual(out.links.sort(), ["kbr10", "lo"]);
  } finally {
    await drop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({
  name: "hosted kattach, bridged, in a namespace: web on a VLAN answers on its allocated address",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await buildFixtures();
    const [ns, drop] = await namespace("kaosnet-host");
    let k: TestKattach | undefined;
    try {
      k = await TestKattach.start(undefined, {
        wrap: ["ip", "netns", "exec", ns],
        network: "bridged",
      });
      assert.match(k.log, /network: bridged/);
      assert.match(k.log, /network: links are read through rtnetlink, cached /);
      for (const m of ["vkaos", "web"]) {
        assert.equal((await k.aq("module", "import", `${FIXTURES_OUT}/${m}`)).code, 0);
      }
      await k.json("vlan", "add", "10", "front", "10.77.10.0/24");
      await k.json("network", "set", "--dns", "10.77.10.1");
      await k.json("config-group", "add", "web", "site", "title=Bridged KaOS");
      await k.json("vmimage", "create", "web", "--modules", "web", "--config-groups", "site");
      await k.json(
        ...["vmimage", "create", "webv", "--modules", "web", "--config-groups", "site"],
        ...["--vlan", "10"],
      );
      // The VLAN's bridge holds the gateway: the host is the router of an internal switch.
      const addr = await sh("ip", "-n", ns, "-4", "-o", "addr", "show", "dev", "kbr10");
      assert.match(addr, /inet 10\.77\.10\.1\/24/);

      const [web] = await k.json<Instance[]>("deploy", "webv", "--wait");
      assert.equal(web.state, "running", k.log);
      const shown = await k.json<Instance>("instance", "show", web.name);
      const nic = shown.network![0];
      assert.deepEqual(
        [nic.mode, nic.tap, nic.bridge, nic.address, nic.gateway, nic.state, nic.restartNeeded],
        [
          "tap",
          `kt${web.nics[0].mac.replaceAll(":", "")}`,
          "kbr10",
          "10.77.10.2/24",
          "10.77.10.1",
          "up",
          false,
        ],
      );
      assert.deepEqual(shown.forwards, []);
      assert.deepEqual(shown.health?.map((h) => h.status), ["ready", "ready"]);
      // QEMU opened the persistent tap by name, without scripts.
      const argv = Deno.readTextFileSync(`/proc/${web.pid}/cmdline`).split("\0");
      assert.ok(
        argv.includes(`tap,id=net0,ifname=${nic.tap},script=no,downscript=no`) ||
          argv.includes(`tap,id=net0,ifname=${nic.tap},script=no,downscript=no,vhost=on`),
        argv.join(" "),
      );

      // The page, from inside the namespace, on the address KaOS allocated.
      const page = await sh(
        ...["ip", "netns", "exec", ns, Deno.execPath(), "eval"],
        `console.log(await (await fetch("http://10.77.10.2/", { signal: AbortSignal.timeout(10_000) })).text())`,
      );
      assert.match(page, /<h1>Bridged KaOS<\/h1>/);
      assert.match(page, /instance webv-1/);
      // The guest took its DNS from the config disk.
      assert.match(
        await Deno.readTextFile(`${k.stateDir}/instances/${web.name}/serial.log`),
        /dns 10\.77\.10\.1/,
      );

      // instance stats reads the tap's kernel counters, turned round to the guest's view: it sent
      // the page out through its tap (the tap's rx) and received the request (the tap's tx).
      const stats = await k.json<GuestStats>("instance", "stats", web.name);
      const kernel = JSON.parse(await sh("ip", "-n", ns, "-j", "-s", "link", "show", nic.tap!))[0]
        .stats64 as Record<"rx" | "tx", { bytes: number; packets: number }>;
      const [counted] = stats.net;
      assert.deepEqual([counted.mode, counted.tap, counted.vlan, counted.why], [
        "tap",
        nic.tap,
        10,
        null,
      ]);
      const c = counted.counters!;
      assert.ok(c.txBytes >= page.length && c.txPackets > 0 && c.rxPackets > 0, JSON.stringify(c));
      // Read before iproute2's look, which comes after: never more than the kernel's figures.
      assert.ok(
        c.txBytes <= kernel.rx.bytes && c.txPackets <= kernel.rx.packets,
        JSON.stringify(kernel),
      );
      assert.ok(
        c.rxBytes <= kernel.tx.bytes && c.rxPackets <= kernel.tx.packets,
        JSON.stringify(kernel),
      );
      const statsText = (await k.aq("instance", "stats", web.name)).stdout;
      assert.match(statsText, new RegExp(`^ {2}net0 +10 +${nic.tap} +\\d`, "m"));

      // A change the guest learns only at boot is flagged; the links are in sync.
      await k.json("network", "set", "--dns", "10.77.10.53");
      const stale = await k.aq("instance", "show", web.name);
      assert.match(stale.stdout, /restart needed/);
      const status = await k.json<NetworkStatus>("network", "status");
      assert.deepEqual(status.pending, []);
      assert.deepEqual(status.vlans.map((v) => [v.bridge, v.state, v.taps]), [["kbr10", "up", 1]]);
      // The kernel's view of the links KaOS owns (the veth uplink, unmarked, is not among them).
      assert.deepEqual(status.links.map((l) => [l.name, l.kind, l.master, l.up]), [
        ["kbr10", "bridge", null, true],
        [nic.tap, "tap", "kbr10", true],
      ]);
      const again = await k.json<NetworkApplyResult>("network", "apply");
      assert.deepEqual([again.applied, again.error], [[], null]);

      // Behind kattach's back (its link cache hears of it through rtnetlink notifications): the
      // tap moved off its bridge, the bridge down, a stray address on it; the next reconcile
      // repairs all three, and the one after finds nothing to do.
      await sh("ip", "-n", ns, "link", "set", nic.tap!, "nomaster");
      await sh("ip", "-n", ns, "link", "set", "kbr10", "down");
      await sh("ip", "-n", ns, "addr", "add", "10.77.10.250/24", "dev", "kbr10");
      const drifted = await k.json<NetworkStatus>("network", "status");
      assert.deepEqual(drifted.links.map((l) => [l.name, l.master, l.up]), [
        ["kbr10", null, false],
        [nic.tap, null, true],
      ]);
      const repaired = await k.json<NetworkApplyResult>("network", "apply");
      assert.deepEqual([repaired.applied, repaired.error], [[
        "address del 10.77.10.250/24 dev kbr10",
        `link set dev ${nic.tap} master kbr10`,
        "link set dev kbr10 up",
      ], null]);
      const port = JSON.parse(await sh("ip", "-n", ns, "-j", "link", "show", nic.tap!))[0];
      assert.equal(port.master, "kbr10");
      const settled = await k.json<NetworkApplyResult>("network", "apply");
      assert.deepEqual([settled.applied, settled.error], [[], null]);

      // A user-mode instance alongside: restricted slirp, its forward still serves the page.
      const [user] = await k.json<Instance[]>("deploy", "web", "--wait");
      assert.equal(user.state, "running", k.log);
      const uargv = Deno.readTextFileSync(`/proc/${user.pid}/cmdline`).split("\0");
      assert.ok(
        uargv.some((a) => a.startsWith("user,id=net0,restrict=on,hostfwd=")),
        uargv.join(" "),
      );
      // QEMU's user-mode network keeps no counters and has no host link: said, never shown as 0.
      const ustats = await k.json<GuestStats>("instance", "stats", user.name);
      assert.deepEqual(ustats.net.map((n) => [n.mode, n.counters, n.why]), [
        ["user", null, "not counted (user-mode network)"],
      ]);
      assert.match(
        (await k.aq("instance", "stats", user.name)).stdout,
        /^ {2}net0: not counted \(user-mode network\)$/m,
      );

      // Deleting the instance removes its tap.
      await k.json("instance", "stop", web.name);
      await k.json("instance", "del", web.name);
      const gone = await run(["ip", "-n", ns, "link", "show", nic.tap!]);
      assert.notEqual(gone.code, 0, "the tap is gone with its instance");
    } finally {
      await k?.dispose();
      await drop();
    }
  },
});

Deno.test({
  name:
    "hosted kattach, bridged: an uplink not on the host is stored with a warning; status says so",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const [ns, drop] = await namespace("kaosnet-uplink");
    let k: TestKattach | undefined;
    try {
      k = await TestKattach.start(undefined, {
        wrap: ["ip", "netns", "exec", ns],
        network: "bridged",
      });
      const missing = /^the uplink usb0 does not exist on this host: /;
      // Stored (a USB NIC may come later), with the warning in the output and in --json.
      const set = await k.json<NetworkSettings & { warnings: string[] }>(
        ...["network", "set", "--uplink", "usb0"],
      );
      assert.equal(set.uplink, "usb0");
      assert.equal(set.warnings.length, 1, JSON.stringify(set));
      assert.match(set.warnings[0], missing);
      const text = await k.aq("network", "set", "--uplink", "usb0");
      assert.equal(text.code, 0, text.stderr);
      assert.match(text.stdout, /^Uplink: +usb0$/m);
      assert.match(text.stdout, /^Warning: the uplink usb0 does not exist on this host: /m);
      // network status and system status say it is missing.
      const net = await k.json<NetworkStatus>("network", "status");
      assert.equal(net.uplinkPresent, false);
      assert.ok(net.warnings.some((w) => missing.test(w)), JSON.stringify(net.warnings));
      assert.match((await k.aq("network", "status")).stdout, /^Uplink: +usb0 \(missing\)$/m);
      const sys = await k.json<SystemStatus>("system", "status");
      assert.ok(sys.warnings.some((w) => missing.test(w)), JSON.stringify(sys.warnings));
      assert.match(
        (await k.aq("system", "status")).stdout,
        /^Warning: the uplink usb0 does not exist on this host: /m,
      );
      // A name Linux refuses is refused outright, naming the word, and changes nothing.
      const bad = await k.aq("network", "set", "--uplink", "usb 0");
      assert.equal(bad.code, 1);
      assert.match(bad.stderr, /"usb 0" is not a valid .*\(--uplink\)/);
      assert.equal((await k.json<NetworkStatus>("network", "status")).settings.uplink, "usb0");
      // The interface appears: no warning any more, anywhere.
      await sh("ip", "-n", ns, "link", "add", "usb0", "type", "veth", "peer", "name", "usb0p");
      const present = await k.json<NetworkStatus>("network", "status");
      assert.equal(present.uplinkPresent, true);
      assert.ok(!present.warnings.some((w) => missing.test(w)), JSON.stringify(present.warnings));
      const quiet = await k.json<SystemStatus>("system", "status");
      assert.ok(!quiet.warnings.some((w) => missing.test(w)), JSON.stringify(quiet.warnings));
      const again = await k.json<{ warnings: string[] }>("network", "set", "--uplink", "usb0");
      assert.deepEqual(again.warnings, []);
    } finally {
      await k?.dispose();
      await drop();
    }
  },
});

Deno.test("link counters on the real kernel: sysfs inside the namespace and ip -n agree with iproute2", async () => {
  const [ns, drop] = await namespace("kaosnet-count");
  const [peer, dropPeer] = await namespace("kaosnet-peer");
  try {
    // No IPv6 (its autoconfiguration would send packets of its own): only what the test sends.
    for (const n of [ns, peer]) {
      await sh("ip", "netns", "exec", n, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1");
      await sh("ip", "netns", "exec", n, "sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1");
    }
    await sh("ip", "-n", ns, "link", "add", "kcnt0", "type", "veth", "peer", "name", "kcnt1");
    await sh("ip", "-n", ns, "link", "set", "kcnt1", "netns", peer);
    await sh("ip", "-n", ns, "addr", "add", "10.99.0.1/24", "dev", "kcnt0");
    await sh("ip", "-n", peer, "addr", "add", "10.99.0.2/24", "dev", "kcnt1");
    await sh("ip", "-n", ns, "link", "set", "kcnt0", "up");
    await sh("ip", "-n", peer, "link", "set", "kcnt1", "up");
    // A refused TCP connection across the pair: ARP, a SYN out, a RST back (no ping here).
    const refused = await run([
      ...["ip", "netns", "exec", ns, "bash", "-c"],
      "exec 3<>/dev/tcp/10.99.0.2/9",
    ], { timeoutMs: 30_000 });
    assert.match(refused.stderr, /Connection refused/);
    const s = JSON.parse(await sh("ip", "-n", ns, "-j", "-s", "link", "show", "kcnt0"))[0].stats64;
    const want = {
      rxBytes: s.rx.bytes,
      rxPackets: s.rx.packets,
      txBytes: s.tx.bytes,
      txPackets: s.tx.packets,
    };
    assert.ok(want.txPackets >= 2 && want.rxPackets >= 2, JSON.stringify(want));
    const host = realNetlink({ netns: ns });
    assert.deepEqual(await host.counters("kcnt0"), want);
    assert.equal(await host.counters("kcnt9"), null);
    await assert.rejects(() => host.counters("../x"), /not a link name/);
    // What kattach does: sysfs, read by a process inside the namespace.
    const inside = await sh(
      ...["ip", "netns", "exec", ns, Deno.execPath(), "eval"],
      `const { sysfsCounters } = await import("${REPO_ROOT}/host/netlink.ts");` +
        `console.log(JSON.stringify([await sysfsCounters("kcnt0"), await sysfsCounters("kcnt9")]))`,
    );
    assert.deepEqual(JSON.parse(inside), [want, null]);
  } finally {
    await drop();
    await dropPeer();
  }
});

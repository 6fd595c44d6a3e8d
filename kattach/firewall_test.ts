/**
 * The firewall's orchestration against a fake nftables: generations, commit-confirmed (confirm,
 * the age of the confirming connection, rollback by timer and at the next start), fallbacks
 * when nft refuses, and user-mode networking leaving the host alone.
 */
import { deepStrictEqual as assertEquals, ok, rejects, throws } from "node:assert/strict";
import { FakeNft } from "../host/mod.ts";
import type { ActionContext } from "../ipc/mod.ts";
import { renderMinimalFirewall } from "../netmgr/mod.ts";
import { firewallHandlers as h } from "./actions/firewall.ts";
import { instanceHandlers } from "./actions/instance.ts";
import type { Kattach } from "./context.ts";
import {
  applyFirewall,
  bootFirewall,
  renderFromStore,
  rollbackFirewall,
  stopFirewall,
} from "./firewall.ts";
import { Store } from "./store.ts";
import {
  insertRule,
  lastConfirmedGeneration,
  latestGeneration,
  listMgmt,
} from "./store_firewall.ts";

const ctx = (origin?: ActionContext["origin"]): ActionContext => ({
  progress() {},
  signal: new AbortController().signal,
  origin,
});

async function withKattach(
  fn: (k: Kattach, nft: FakeNft, restart: () => Kattach, relinked: string[]) => Promise<void>,
  options: { managed?: boolean } = {},
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "kaos-fw-" });
  const store = Store.open(`${dir}/kaos.db`);
  const nft = new FakeNft();
  const relinked: string[] = [];
  const make = (): Kattach => ({
    store,
    stateDir: dir,
    mode: "hosted",
    startedAt: Date.now(),
    accel: { kind: "tcg", reason: "test" },
    log: () => {},
    firewallHost: options.managed === false ? undefined : {
      nft,
      mgmtPort: 1289,
      onUplinkRestored: (reason) => Promise.resolve(void relinked.push(reason)),
    },
  });
  const ks: Kattach[] = [make()];
  try {
    await fn(ks[0], nft, () => {
      ks.push(make());
      return ks.at(-1)!;
    }, relinked);
  } finally {
    for (const k of ks) stopFirewall(k);
    store.close();
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("boot applies a confirmed generation and sets the sysctls deliberately", async () => {
  await withKattach(async (k, nft) => {
    await bootFirewall(k);
    assertEquals(nft.applied.length, 1);
    assertEquals(nft.current, renderFromStore(k).text);
    const g = latestGeneration(k.store)!;
    assertEquals([g.id, g.state, g.reason], [1, "confirmed", "boot"]);
    assertEquals(nft.sysctls.get("net/bridge/bridge-nf-call-iptables"), "0");
    assertEquals(nft.sysctls.get("net/ipv4/ip_forward"), "0");
    // Nothing changed: nothing applied again.
    const again = await h["firewall.forward.list"](k, {}, ctx());
    assertEquals(again, []);
  });
});

Deno.test("a management change is pending until confirmed from a newer connection", async () => {
  await withKattach(async (k, nft) => {
    await bootFirewall(k);
    const before = Date.now() - 1;
    const r = await h["firewall.mgmt.add"](k, { cidr: "192.168.1.0/24", confirmWithin: 60 }, ctx());
    assertEquals(r.applied.generation?.state, "pending");
    ok(r.applied.message.includes("firewall confirm"), r.applied.message);
    ok(nft.current!.includes("192.168.1.0/24"));
    throws(
      () => h["firewall.confirm"](k, {}, ctx({ via: "ssh", openedAt: before })),
      /opened before it was applied/,
    );
    const g = h["firewall.confirm"](k, {}, ctx({ via: "ssh", openedAt: Date.now() })) as {
      id: number;
      state: string;
    };
    assertEquals([g.id, g.state], [2, "confirmed"]);
    throws(() => h["firewall.confirm"](k, {}, ctx()), /Nothing to confirm/);
  });
});

Deno.test("an unconfirmed change is rolled back: configuration and ruleset", async () => {
  await withKattach(async (k, nft) => {
    await bootFirewall(k);
    await h["firewall.mgmt.add"](k, { cidr: "10.9.0.0/16" }, ctx());
    h["firewall.confirm"](k, {}, ctx());
    const confirmedText = nft.current;
    await h["firewall.mgmt.add"](k, { cidr: "198.51.100.0/24" }, ctx());
    await h["firewall.rule.add"](k, { chain: "input", action: "drop", proto: "tcp" }, ctx());
    assertEquals(latestGeneration(k.store)!.state, "pending");
    // A change that does not touch management access keeps the deadline and stays pending.
    await rollbackFirewall(k, "test");
    assertEquals(listMgmt(k.store).map((m) => m.cidr), ["10.9.0.0/16"]);
    assertEquals(await h["firewall.rule.list"](k, {}, ctx()), []);
    assertEquals(nft.current, confirmedText);
    assertEquals(latestGeneration(k.store)!.state, "confirmed");
  });
});

Deno.test("the deadline is --confirm-within away; later changes keep it", async () => {
  await withKattach(async (k) => {
    await bootFirewall(k);
    await h["firewall.mgmt.add"](k, { cidr: "198.51.100.0/24", confirmWithin: 10 }, ctx());
    const pending = latestGeneration(k.store)!;
    assertEquals(pending.state, "pending");
    const ms = Date.parse(pending.deadline!) - Date.parse(pending.appliedAt);
    ok(ms >= 9_000 && ms <= 11_000, `deadline ${ms} ms after applying`);
    // A forward rule does not touch management access: still pending, same deadline.
    await h["firewall.rule.add"](k, { chain: "forward", action: "drop" }, ctx());
    const next = latestGeneration(k.store)!;
    assertEquals([next.state, next.deadline], ["pending", pending.deadline]);
  });
});

Deno.test("a kattach that restarts while a change is pending rolls it back at boot", async () => {
  await withKattach(async (k, nft, restart) => {
    await bootFirewall(k);
    await h["firewall.mgmt.add"](k, { cidr: "198.51.100.0/24" }, ctx());
    stopFirewall(k); // kattach dies: the timer goes with it, the pending state stays
    const k2 = restart();
    await bootFirewall(k2);
    assertEquals(listMgmt(k2.store), []);
    ok(!nft.current!.includes("198.51.100.0/24"));
    const states = k2.store.all("SELECT state FROM firewall_generation ORDER BY id").map((r) =>
      r.state
    );
    assertEquals(states, ["confirmed", "rolled-back", "confirmed"]);
  });
});

Deno.test("boot falls back to the last confirmed ruleset, then the minimal one", async () => {
  await withKattach(async (k, nft, restart) => {
    await bootFirewall(k);
    const good = nft.current;
    // A configuration the kernel will not load (the fake refuses its text), never applied.
    k.store.tx(() =>
      insertRule(k.store, {
        chain: "forward",
        action: "drop",
        proto: null,
        from: null,
        to: null,
        port: null,
        note: "poison",
      })
    );
    nft.refuse = "poison";
    await bootFirewall(restart());
    assertEquals(nft.current, good);
    nft.refuse = /./;
    await rejects(bootFirewall(restart()), /refused/);
    nft.refuse = "# KaOS firewall:";
    await bootFirewall(restart());
    assertEquals(nft.current, renderMinimalFirewall(1289));
  });
});

Deno.test("bad input changes nothing; nft refusing a change undoes it", async () => {
  await withKattach(async (k, nft) => {
    await bootFirewall(k);
    const n = nft.applied.length;
    await rejects(
      async () => await h["firewall.mgmt.add"](k, { cidr: "10.0.0.300/8" }, ctx()),
      /Invalid/,
    );
    await rejects(
      async () =>
        await h["firewall.rule.add"](k, { chain: "input", action: "accept", port: "22" }, ctx()),
      /--port needs --proto tcp/,
    );
    await rejects(
      async () =>
        await h["firewall.rule.add"](
          k,
          { chain: "forward", action: "accept", to: "vlan:7" },
          ctx(),
        ),
      /VLAN 7 does not exist/,
    );
    await rejects(
      async () => await h["firewall.forward.add"](k, { instance: "web-1", guestPort: 80 }, ctx()),
      /does not exist/,
    );
    await rejects(
      async () => await h["firewall.forward.add"](k, { instance: "web-1", guestPort: 1289 }, ctx()),
      /CLI's port/,
    );
    assertEquals(nft.applied.length, n);
    nft.refuse = "192.0.2.0/24";
    await rejects(
      async () => await h["firewall.mgmt.add"](k, { cidr: "192.0.2.0/24" }, ctx()),
      /nothing changed/,
    );
    assertEquals(listMgmt(k.store), []);
    assertEquals(lastConfirmedGeneration(k.store)!.id, 1);
  });
});

Deno.test("user-mode networking renders but never touches the host", async () => {
  await withKattach(async (k, nft) => {
    await bootFirewall(k);
    const r = await h["firewall.mgmt.add"](k, { cidr: "192.0.2.0/24" }, ctx());
    assertEquals(r.applied.applied, false);
    assertEquals(nft.applied, []);
    const shown = h["firewall.show"](k, {}, ctx()) as { text: string };
    ok(shown.text.includes("192.0.2.0/24"));
  }, { managed: false });
});

Deno.test("concurrent changes apply one at a time and the last one in force is the current one", async () => {
  await withKattach(async (k, nft) => {
    await bootFirewall(k);
    await Promise.all(
      [1, 2, 3, 4, 5].map((i) =>
        h["firewall.rule.add"](k, { chain: "forward", action: "drop", note: `r${i}` }, ctx())
      ),
    );
    // Each apply renders what the store holds then: later ones find it in force already.
    assertEquals(nft.current, renderFromStore(k).text);
    for (const i of [1, 2, 3, 4, 5]) ok(nft.current!.includes(`: r${i}"`), `rule r${i}`);
    const texts = k.store.all("SELECT ruleset FROM firewall_generation").map((r) => r.ruleset);
    assertEquals(new Set(texts).size, texts.length);
    assertEquals(nft.applied.length, texts.length);
  });
});

Deno.test("an uplink change is commit-confirmed; its rollback reconciles the links again", async () => {
  await withKattach(async (k, nft, _restart, relinked) => {
    await bootFirewall(k);
    k.store.setNetworkSettings({ uplink: "eth1" });
    const r = await applyFirewall(k, { reason: "network set --uplink eth1" });
    assertEquals(r.generation?.state, "pending");
    ok(nft.current!.includes('oifname "eth1"'));
    await rollbackFirewall(k, "test");
    assertEquals(k.store.networkSettings().uplink, "eth0");
    ok(nft.current!.includes('oifname "eth0"'));
    assertEquals(relinked, ["firewall rollback (test)"]);
  });
});

Deno.test("published ports and rules follow instances and VLANs from the store", async () => {
  await withKattach(async (k, nft) => {
    k.store.tx(() => {
      for (const [id, nat] of [[10, true], [20, false]] as const) {
        k.store.insertVlan({
          id,
          name: `v${id}`,
          cidr: `10.0.${id}.0/24`,
          gateway: `10.0.${id}.1`,
          poolStart: `10.0.${id}.2`,
          poolEnd: `10.0.${id}.254`,
          uplink: "none",
          nat,
          isolate: id === 20,
        });
      }
      k.store.insertVlanRoute(20, 10);
      k.store.insertVmImage({
        name: "web",
        modules: [],
        configGroups: [],
        vlans: [],
        memoryMiB: 64,
        cpus: 1,
      });
      k.store.insertInstance({
        name: "web-1",
        vmimage: "web",
        state: "stopped",
        autostart: false,
        restartPolicy: "never",
        nics: [{ index: 0, vlan: 10, mac: "0a:4b:53:00:00:01", ip: "10.0.10.2" }],
      });
    });
    await bootFirewall(k);
    const text = () => nft.current!;
    ok(text().includes('"kt0a4b53000001" . 0a:4b:53:00:00:01 . 10.0.10.2'), text());
    ok(text().includes('"kbr10" . "kbr20"') && text().includes('"kbr20" . "kbr10"'), text());
    assertEquals(nft.sysctls.get("net/ipv4/ip_forward"), "1");

    const f = await h["firewall.forward.add"](k, {
      instance: "web-1",
      guestPort: 80,
      hostPort: 8080,
    }, ctx());
    assertEquals([f.forward.ip, f.forward.hostPort, f.applied.generation?.state], [
      "10.0.10.2",
      8080,
      "confirmed",
    ]);
    ok(text().includes("tcp . 8080 : 10.0.10.2 . 80"), text());
    // instance show lists it (its `forwards` are the user-mode NIC's only).
    const shownInstance = await instanceHandlers["instance.show"](k, { name: "web-1" }, ctx());
    assertEquals([shownInstance.published, shownInstance.forwards], [
      [{ id: f.forward.id, proto: "tcp", hostPort: 8080, guestPort: 80 }],
      [],
    ]);
    await rejects(
      async () =>
        await h["firewall.forward.add"](
          k,
          { instance: "web-1", guestPort: 81, hostPort: 8080 },
          ctx(),
        ),
      /goes to web-1:80 already/,
    );
    const r = await h["firewall.rule.add"](
      k,
      {
        chain: "forward",
        action: "accept",
        proto: "tcp",
        from: "vlan:20",
        to: "web-1",
        port: "80-81",
      },
      ctx(),
    );
    assertEquals([r.rule.from, r.rule.to, r.rule.port], ["vlan:20", "web-1", "80-81"]);
    ok(
      text().includes('iifname "kbr20" ip daddr 10.0.10.2/32 meta l4proto tcp th dport 80-81'),
      text(),
    );

    // The instance goes: its published port goes with it, its rule stays but is out of force.
    k.store.tx(() => k.store.deleteInstance("web-1"));
    const shown = h["firewall.show"](k, {}, ctx()) as { text: string; warnings: string[] };
    ok(!shown.text.includes("8080"), shown.text);
    ok(
      shown.warnings.some((w) => w.includes("rule 1 is not in force: web-1")),
      shown.warnings.join(),
    );
  });
});

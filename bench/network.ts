/**
 * Host networking figures (no pass/fail), inside a network namespace of the benchmark's own.
 *
 * Firewall: for 10 / 1,000 / 4,094 VLANs × 20 / 1,000 NICs, the render time and size, `nft -c`
 * time and the time to apply (replace KaOS' tables) with `nft -f`; beside a baseline measured in
 * the same run: `nft -f` of an empty `table inet kaos` / `table bridge kaos` pair through the
 * same path. Then the rollback latency of a pending generation (restore the management access,
 * render from the store, apply) on the largest host. Goal: applying the 4,094-VLAN / 1,000-NIC
 * ruleset in ≤ 150 ms.
 *
 *   scripts/deno run -A bench/network.ts [--runs N]
 */
import { realNft } from "../host/mod.ts";
import { applyFirewall, bootFirewall, rollbackFirewall } from "../kattach/firewall.ts";
import type { Kattach } from "../kattach/actions/_types.ts";
import { Store } from "../kattach/store.ts";
import { insertMgmt } from "../kattach/store_firewall.ts";
import { parseCliOrExit } from "../lib/cli_args.ts";
import { renderFirewall, syntheticFirewall } from "../netmgr/mod.ts";

const usage = "usage: scripts/deno run -A bench/network.ts [--runs N]   (as root)";
const cli = parseCliOrExit(Deno.args, { usage, options: { runs: { type: "string" } } });
const runs = Number(cli.values.runs ?? "5");
if (!Number.isInteger(runs) || runs < 1) {
  console.error(`Error: --runs takes a positive whole number\n${usage}`);
  Deno.exit(2);
}

const NS = `kbench${Deno.pid}`;
const inNs = ["ip", "netns", "exec", NS];
const GOAL_MS = 150;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

async function timed(fn: () => Promise<unknown> | unknown): Promise<number> {
  const t = performance.now();
  await fn();
  return performance.now() - t;
}

async function times(n: number, fn: () => Promise<unknown> | unknown): Promise<number> {
  const xs: number[] = [];
  for (let i = 0; i < n; i++) xs.push(await timed(fn));
  return median(xs);
}

const ms = (x: number) => `${x.toFixed(1).padStart(7)} ms`;

async function firewallFigures(): Promise<void> {
  const nft = realNft([...inNs, "nft"]);
  const empty = "table inet kaos {}\ndelete table inet kaos\ntable bridge kaos {}\n" +
    "delete table bridge kaos\ntable inet kaos {\n}\ntable bridge kaos {\n}\n";
  await nft.apply(empty);
  const baseline = await times(runs, () => nft.apply(empty));
  console.log(
    `firewall (median of ${runs}; baseline: nft -f of an empty table pair ${ms(baseline).trim()})`,
  );
  console.log("VLANS  NICS   RENDER      SIZE      NFT -C      APPLY   APPLY-BASELINE");
  for (const vlans of [10, 1000, 4094]) {
    for (const nics of [20, 1000]) {
      const input = syntheticFirewall(vlans, nics);
      let text = "";
      const render = await times(runs, () => text = renderFirewall(input).text);
      const check = await times(runs, () => nft.check(text));
      await nft.apply(text); // the tables exist: each measured apply replaces them
      const apply = await times(runs, () => nft.apply(text));
      const goal = vlans === 4094 && nics === 1000
        ? `   goal ≤ ${GOAL_MS} ms: ${apply <= GOAL_MS ? "met" : "NOT met"}`
        : "";
      console.log(
        `${String(vlans).padStart(5)} ${String(nics).padStart(5)} ${ms(render)} ` +
          `${(text.length / 1024).toFixed(0).padStart(6)} KiB ${ms(check)} ${ms(apply)} ` +
          `${ms(apply - baseline)}${goal}`,
      );
      await nft.apply(empty);
    }
  }
}

/** A store holding the largest synthetic host: 4,094 VLANs, 1,000 instances with one NIC each. */
function bigStore(path: string): Store {
  const store = Store.open(path);
  const input = syntheticFirewall(4094, 1000);
  store.tx(() => {
    for (const v of input.vlans) {
      const base = v.cidr.replace(/\.0\/22$/, "");
      store.insertVlan({
        id: v.id,
        name: `v${v.id}`,
        cidr: v.cidr,
        gateway: v.gateway,
        poolStart: `${base}.2`,
        poolEnd: `${base.replace(/\.(\d+)$/, (_, x) => `.${Number(x) + 3}`)}.254`,
        uplink: "none",
        nat: v.nat,
        isolate: v.isolate,
      });
    }
    store.insertVmImage({
      name: "bench",
      modules: [],
      configGroups: [],
      vlans: [],
      memoryMiB: 64,
      cpus: 1,
    });
    input.ports.forEach((p, n) =>
      store.insertInstance({
        name: `bench-${n + 1}`,
        vmimage: "bench",
        state: "stopped",
        autostart: false,
        restartPolicy: "never",
        nics: [{ index: 0, vlan: p.vlan, mac: p.mac, ip: p.ip }],
      })
    );
  });
  return store;
}

async function rollbackFigures(): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "kaos-bench-net-" });
  const store = bigStore(`${dir}/kaos.db`);
  const k: Kattach = {
    store,
    stateDir: dir,
    mode: "hosted",
    startedAt: Date.now(),
    accel: { kind: "tcg", reason: "bench" },
    log: () => {},
    firewallHost: { nft: realNft([...inNs, "nft"]), mgmtPort: 1289 },
  };
  try {
    await bootFirewall(k);
    const xs: number[] = [];
    for (let i = 0; i < runs; i++) {
      store.tx(() => insertMgmt(store, `198.51.100.${i}/32`, "bench"));
      await applyFirewall(k, { reason: "bench: lockout", confirmWithin: 600 });
      xs.push(await timed(() => rollbackFirewall(k, "bench")));
    }
    console.log(
      `rollback of a pending generation, 4094 VLANs × 1000 NICs (restore, render, apply): ` +
        `median ${ms(median(xs)).trim()} of ${runs}`,
    );
  } finally {
    store.close();
    await Deno.remove(dir, { recursive: true });
  }
}

const add = await new Deno.Command("ip", { args: ["netns", "add", NS] }).output();
if (add.code !== 0) {
  console.error(`Error: cannot create network namespace ${NS} (run as root)`);
  Deno.exit(1);
}
try {
  await firewallFigures();
  await rollbackFigures();
} finally {
  await new Deno.Command("ip", { args: ["netns", "del", NS] }).output();
}

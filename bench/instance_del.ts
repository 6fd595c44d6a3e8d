/**
 * `instance del` in bridged mode (no pass/fail; issue 13), run inside a network namespace of the
 * benchmark's own (as a bridged kattach runs: nft, the sysctls and the link reads are the
 * process' own, no `ip netns exec` per command), which it empties and deletes at the end: a store of `--vlans` VLANs (default 4,094) and `--instances` stopped instances
 * (default 1,000, one NIC on a VLAN each), their links made and the firewall applied, driven
 * in-process through kattach's action dispatch (kattach/actions/mod.ts `dispatchAction`: the
 * handler and what follows it), the links read through kattach's link cache. Each round:
 *
 * - `deploy --no-start`'s network step for one new instance on a VLAN (its records, then
 *   `linkInstances`: its tap, and the firewall that names it);
 * - `instance del` of that instance (its tap, a published port, its files), as kattach runs it;
 * - beside it, the same run: the previous path on another such instance (the records' delete and
 *   the files, then a full reconcile: every VLAN's and instance's links planned and diffed, the
 *   firewall rendered and applied), as `dispatchAction` ran it before session 9;
 * - the same two for an instance with a user-mode NIC only (nothing the links or the ruleset
 *   name).
 *
 * After each deletion of an instance on a VLAN the bench checks, outside the timing, that its tap
 * is gone from the namespace and that neither its tap nor its published port is in the kernel's
 * ruleset any more. Medians of `--runs` rounds, the load average before and after.
 *
 *   scripts/deno run -A bench/instance_del.ts [--runs N] [--vlans N] [--instances N]   (as root)
 */
import { realNetlink, realNft } from "../host/mod.ts";
import { testContext } from "../kattach/_test_context.ts";
import { dispatchAction } from "../kattach/actions/mod.ts";
import { bootFirewall } from "../kattach/firewall.ts";
import { removeInstanceDir } from "../kattach/instance_runtime.ts";
import { applyNetwork, linkInstances, readHostState, startNetwork } from "../kattach/network.ts";
import { instanceRoot } from "../kattach/storage.ts";
import { insertForward, listForwards } from "../kattach/store_firewall.ts";
import { resolveInstance } from "../kattach/store_instances.ts";
import { Supervisor, supervisorOf } from "../kattach/supervisor.ts";
import { parseCliOrExit } from "../lib/cli_args.ts";
import { tapName } from "../netmgr/mod.ts";
import { bigStore, emptyNamespace, median, sh, timed } from "./_net.ts";

const usage =
  "usage: scripts/deno run -A bench/instance_del.ts [--runs N] [--vlans N] [--instances N]   (as root)";
const cli = parseCliOrExit(Deno.args, {
  usage,
  options: { runs: { type: "string" }, vlans: { type: "string" }, instances: { type: "string" } },
});
const whole = (flag: string, text: string | undefined, fallback: number, max: number): number => {
  const n = Number(text ?? fallback);
  if (!Number.isInteger(n) || n < 1 || n > max) {
    console.error(`Error: --${flag} takes a whole number from 1 to ${max}\n${usage}`);
    Deno.exit(2);
  }
  return n;
};
const runs = whole("runs", cli.values.runs, 5, 50);
const vlans = whole("vlans", cli.values.vlans, 4094, 4094);
const instances = whole("instances", cli.values.instances, 1000, 10_000);

// The bench runs inside its namespace, as a bridged kattach does (nft, the sysctls and the link
// reads in the process' own namespace): it makes the namespace, runs itself there, empties it.
const inside = Deno.env.get("KAOS_BENCH_NETNS");
if (inside === undefined) {
  const ns = `kbdel${Deno.pid}`;
  await sh(["ip", "netns", "add", ns]);
  try {
    const { code } = await new Deno.Command("ip", {
      args: [
        "netns",
        "exec",
        ns,
        Deno.execPath(),
        "run",
        "-A",
        new URL(import.meta.url).pathname,
        ...Deno.args,
      ],
      env: { KAOS_BENCH_NETNS: ns },
      stdout: "inherit",
      stderr: "inherit",
    }).spawn().status;
    if (code !== 0) console.error(`bench: exit ${code}`);
  } finally {
    await emptyNamespace(ns);
    await new Deno.Command("ip", { args: ["netns", "del", ns] }).output();
  }
  Deno.exit(0);
}
const load = () => Deno.readTextFileSync("/proc/loadavg").split(" ").slice(0, 3).join(" ");
const ms = (x: number) => `${x.toFixed(1)} ms`;

const dir = await Deno.makeTempDir({ prefix: "kaos-bench-del-" });
const store = bigStore(`${dir}/kaos.db`, { vlans, nics: instances });
const { k, lines } = testContext(store, dir, { firewallHost: { nft: realNft(), mgmtPort: 1289 } });
const cached = realNetlink({ cache: true });
const fresh = realNetlink();
startNetwork(k, { mode: "bridged", host: cached });
const sup = new Supervisor(k);

// The instances the rounds add: on VLAN 10's top /24 (the synthetic guests sit low), MACs of
// their own; user-mode ones have a NIC without a VLAN.
const [o1, o2, o3] = store.getVlan(Math.min(10, vlans))!.cidr.split(".").map(Number);
let added = 0;
function addInstance(onVlan: boolean): { name: string; tap: string | null; hostPort: number } {
  added++;
  const name = `del${onVlan ? "v" : "u"}-${added}`;
  const mac = `0a:4b:53:f0:${(added >> 8).toString(16).padStart(2, "0")}:${
    (added & 0xff).toString(16).padStart(2, "0")
  }`;
  const hostPort = 30000 + added;
  store.tx(() => {
    store.insertInstance({
      name,
      vmimage: "bench",
      state: "stopped",
      autostart: false,
      restartPolicy: "never",
      nics: [{
        index: 0,
        vlan: onVlan ? Math.min(10, vlans) : null,
        mac,
        ip: onVlan ? `${o1}.${o2}.${o3 + 3}.${10 + added}` : null,
      }],
    });
    if (onVlan) insertForward(store, { instance: name, proto: "tcp", hostPort, guestPort: 80 });
  });
  // Files to remove, as a stopped instance has.
  Deno.mkdirSync(`${dir}/instances/${name}`, { recursive: true });
  Deno.writeTextFileSync(`${dir}/instances/${name}/serial.log`, "bench\n".repeat(100));
  return { name, tap: onVlan ? tapName(mac) : null, hostPort };
}

const ctx = { progress: () => {}, signal: new AbortController().signal };
const now = (name: string) => dispatchAction(k, "instance.del", { name }, ctx);

/** What `instance del` did before session 9: the handler's work, then a full reconcile. */
async function previous(name: string): Promise<void> {
  const root = instanceRoot(k, name);
  store.tx(() => {
    resolveInstance(store, name);
    supervisorOf(k).forget(name);
    listForwards(store, { filter: name });
    store.deleteInstance(name);
  });
  await removeInstanceDir(root, name);
  const r = await applyNetwork(k, { reason: "instance.del" });
  if (r.error) throw new Error(r.error);
}

/** Nothing of a deleted instance on a VLAN is left on the host (outside the timing). */
async function checkGone(i: { name: string; tap: string | null; hostPort: number }) {
  if ((await readHostState(fresh)).links.has(i.tap!)) throw new Error(`${i.tap} is still there`);
  const ruleset = await new Deno.Command("nft", { args: ["list", "ruleset"], stdout: "piped" })
    .output();
  const text = new TextDecoder().decode(ruleset.stdout);
  if (text.includes(i.tap!) || text.includes(`${i.hostPort} `)) {
    throw new Error(`the ruleset still names ${i.name} (${i.tap}, port ${i.hostPort})`);
  }
  if (store.getInstance(i.name)) {
    throw new Error(`${i.name} is still in the store`);
  }
  try {
    Deno.statSync(`${dir}/instances/${i.name}`);
    throw new Error(`${i.name}'s files are still there`);
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
}

try {
  // The users of the round's user-mode instances exist from the start (no link of theirs).
  const users = Array.from({ length: 2 * (runs + 1) }, () => addInstance(false));
  console.log(
    `instance del, bridged, ${vlans} VLANs × ${instances} instances (in-process, a namespace of ` +
      `its own); making the links (load ${load()})…`,
  );
  await bootFirewall(k);
  const coldMs = await timed(async () => {
    const r = await applyNetwork(k, { reason: "bench: cold" });
    if (r.error) throw new Error(r.error);
  });
  await readHostState(cached); // the cache's one whole dump, as at kattach's start
  console.log(`  cold reconcile ${ms(coldMs)}; rounds (load ${load()})`);

  const f = { noStart: [] as number[], now: [] as number[], prev: [] as number[] };
  const u = { now: [] as number[], prev: [] as number[] };
  const logged: number[] = [];
  const loadBefore = load();
  for (let round = 0; round <= runs; round++) { // round 0 warms up, not counted
    const a = addInstance(true);
    const noStart = await timed(async () => {
      const r = await linkInstances(k, [a.name], { reason: "deploy" });
      if (r?.error) throw new Error(r.error);
    });
    const b = addInstance(true);
    await linkInstances(k, [b.name], { reason: "deploy" });
    // Each path goes first in every other round (what the one before leaves counts alike).
    let tNow = 0, tPrev = 0, uNow = 0, uPrev = 0;
    let said: RegExpMatchArray | undefined;
    const steps = [
      async () => {
        lines.length = 0;
        tNow = await timed(() => now(a.name));
        said = lines.map((l) => l.match(/^network: instance del .*? in ([\d.]+) ms/))
          .find((m) => m !== null) ?? undefined;
        await checkGone(a);
        uNow = await timed(() => now(users[2 * round].name));
      },
      async () => {
        tPrev = await timed(() => previous(b.name));
        await checkGone(b);
        uPrev = await timed(() => previous(users[2 * round + 1].name));
      },
    ];
    for (const step of round % 2 === 0 ? steps : steps.reverse()) await step();
    if (round === 0) continue;
    f.noStart.push(noStart);
    f.now.push(tNow);
    f.prev.push(tPrev);
    u.now.push(uNow);
    u.prev.push(uPrev);
    if (said) logged.push(Number(said[1]));
  }
  const x = (a: number[], b: number[]) => (median(a) / median(b)).toFixed(2);
  console.log(
    `  medians of ${runs} rounds (load ${loadBefore} → ${load()}):\n` +
      `  on a VLAN (a tap, a published port, files): instance del ${ms(median(f.now))}` +
      `${logged.length ? ` (its links + firewall step, as logged: ${ms(median(logged))})` : ""}; ` +
      `baseline the previous path (records, files, full reconcile + firewall) ` +
      `${ms(median(f.prev))} (${x(f.now, f.prev)}×)\n` +
      `  user-mode NIC only (files): instance del ${ms(median(u.now))}; baseline the previous ` +
      `path ${ms(median(u.prev))} (${x(u.now, u.prev)}×)\n` +
      `  deploy --no-start's network step for one instance on a VLAN (linkInstances: its tap + ` +
      `the firewall): ${ms(median(f.noStart))}`,
  );
  console.log(
    `  per round (ms): now ${f.now.map((t) => t.toFixed(0)).join(", ")}; previous ${
      f.prev.map((t) => t.toFixed(0)).join(", ")
    }`,
  );
} finally {
  await sup.detach();
  cached.close();
  store.close();
  await Deno.remove(dir, { recursive: true });
}

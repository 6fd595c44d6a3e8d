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
 * Links (kattach/network.ts applyNetwork, the real path: read the links in-process through
 * rtnetlink, plan, diff, `ip -batch`) for 4,094 bridges + 1,000 taps: the cold reconcile beside a
 * bare `ip -batch` of the same lines into another fresh namespace; the no-op reconcile beside the
 * four `ip -j` / `bridge -j` reads the previous design made, run bare, and beside the same
 * reconcile reading through those `ip -j` reads; adding one instance beside a bare `ip -batch` of
 * its lines; a start's own link work (ensureGuestLinks) beside the previous start path. The
 * reconcile figures are through kattach's link cache, beside a whole dump per reconcile (the previous
 * design). Goal: a no-op reconcile of that host in ≤ 100 ms. Deleting the two namespaces of
 * about 5,000 links each at the end keeps the kernel's rtnl lock busy for minutes: every `ip`
 * command on the machine waits meanwhile (docs/network.md).
 *
 * Deploy → ready (`deploy --wait` of the fixture `web`, one instance, through IPC) on a bridged
 * VLAN against user-mode NICs: one hosted kattach `--network bridged` in a namespace of the
 * benchmark's own, two VM images that differ only in `--vlan`; a warm-up deploy of each, then
 * `--runs` rounds alternating the two; medians side by side. Goal: bridged no slower. Then a
 * deploy of 10 without --wait (deploy → every QEMU spawned), bridged against user-mode NICs, with
 * where each side's time goes: the IPC call against kattach's handler, and the handler's phases
 * from kattach's log (the starts' reconcile, each instance's files, spawn, QMP socket, attached;
 * the last instance's, medians of the rounds). `--only deploy10`: that deploy of 10 alone.
 *
 *   scripts/deno run -A bench/network.ts [--runs N] [--only firewall|links|deploy|deploy10]
 */
import { realNetlink, realNft } from "../host/mod.ts";
import { type DeployedInstance, IpcClient } from "../ipc/mod.ts";
import { kattachArgv } from "../lib/hosted_kattach.ts";
import { KATTACH_V8_FLAGS_OPTION } from "../lib/v8_flags.ts";
import { applyFirewall, bootFirewall, rollbackFirewall } from "../kattach/firewall.ts";
import type { Kattach } from "../kattach/actions/_types.ts";
import {
  applyNetwork,
  ensureGuestLinks,
  networkConfig,
  readHostState,
  startNetwork,
} from "../kattach/network.ts";
import { insertMgmt } from "../kattach/store_firewall.ts";
import { parseCliOrExit } from "../lib/cli_args.ts";
import {
  diffLinks,
  planLinks,
  renderBatch,
  renderFirewall,
  syntheticFirewall,
} from "../netmgr/mod.ts";
import { killStateGuests } from "./_guests.ts";
import { alternating, bigStore, emptyNamespace, median, sh, timed, times } from "./_net.ts";
import { connectKattach } from "./_util.ts";

const usage =
  "usage: scripts/deno run -A bench/network.ts [--runs N] [--only firewall|links|deploy|deploy10]   (as root)";
const cli = parseCliOrExit(Deno.args, {
  usage,
  options: { runs: { type: "string" }, only: { type: "string" } },
});
const only = cli.values.only;
if (only !== undefined && !["firewall", "links", "deploy", "deploy10"].includes(only)) {
  console.error(`Error: --only takes firewall, links, deploy or deploy10\n${usage}`);
  Deno.exit(2);
}
const runs = Number(cli.values.runs ?? "5");
if (!Number.isInteger(runs) || runs < 1) {
  console.error(`Error: --runs takes a positive whole number\n${usage}`);
  Deno.exit(2);
}

const NS = `kbench${Deno.pid}`;
const inNs = ["ip", "netns", "exec", NS];
const GOAL_MS = 150;

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

async function rollbackFigures(): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "kaos-bench-net-" });
  const store = bigStore(`${dir}/kaos.db`, { vlans: 4094, nics: 1000 });
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

const NOOP_GOAL_MS = 100;

async function linkFigures(): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "kaos-bench-links-" });
  const store = bigStore(`${dir}/kaos.db`, { vlans: 4094, nics: 1000 });
  const base = `kblnk${Deno.pid}`; // the bare baseline's own fresh namespace
  await sh(["ip", "netns", "add", base]);
  const host = realNetlink({ netns: NS });
  const k: Kattach = {
    store,
    stateDir: dir,
    mode: "hosted",
    startedAt: Date.now(),
    accel: { kind: "tcg", reason: "bench" },
    log: () => {},
  };
  startNetwork(k, { mode: "bridged", host });
  try {
    // The same lines as the cold reconcile will apply, run bare into the other namespace.
    const empty = await readHostState(host);
    const cold = diffLinks(planLinks(networkConfig(store)), empty).lines;
    const bare = await timed(() =>
      sh(["ip", "-n", base, "-force", "-batch", "-"], renderBatch(cold))
    );
    let applied = 0;
    const reconcile = await timed(async () => {
      const r = await applyNetwork(k, { reason: "bench: cold" });
      if (r.error) throw new Error(r.error);
      applied = r.applied.length;
    });
    console.log(
      `links: cold reconcile of 4094 bridges + 1000 taps (${applied} ip lines): ` +
        `${ms(reconcile).trim()}; baseline bare ip -batch of the same lines ${ms(bare).trim()}`,
    );

    // Each figure alternates with the others run by run, so load swings hit them alike.
    const ipHost = realNetlink({ netns: NS, reader: "ip" });
    // kattach's reader: the link cache kept current by rtnetlink notifications.
    const cached = realNetlink({ netns: NS, cache: true });
    const kCache: Kattach = { ...k };
    startNetwork(kCache, { mode: "bridged", host: cached });
    await readHostState(cached); // its one whole dump, at kattach's start
    // kattach's whole path: the links, then the firewall (rendered, found unchanged, not applied).
    const kFw: Kattach = { ...k, firewallHost: { nft: realNft([...inNs, "nft"]), mgmtPort: 1289 } };
    startNetwork(kFw, { mode: "bridged", host: cached });
    await bootFirewall(kFw);
    const kIp: Kattach = { ...k };
    startNetwork(kIp, { mode: "bridged", host: ipHost });
    const noopOf = (kk: Kattach) => async () => {
      const r = await applyNetwork(kk, { reason: "bench: no-op" });
      if (r.applied.length !== 0 || r.error) throw new Error("not a no-op");
    };
    const cfg = networkConfig(store);
    const state = await readHostState(host);
    const f = await alternating(runs, {
      noopCached: noopOf(kCache),
      cacheRead: () => readHostState(cached),
      noop: noopOf(k),
      dump: () => readHostState(host),
      config: () => networkConfig(store),
      planDiff: () => diffLinks(planLinks(cfg), state),
      bareReads: () =>
        Promise.all([
          sh(["ip", "-n", NS, "-j", "link", "show"]),
          sh(["ip", "-n", NS, "-j", "-br", "-4", "addr", "show"]),
          sh(["bridge", "-n", NS, "-j", "-d", "link", "show"]),
          sh(["ip", "-n", NS, "-j", "-d", "link", "show", "type", "vlan"]),
        ]),
      noopIp: noopOf(kIp),
      noopFw: noopOf(kFw),
    });
    console.log(
      `links: no-op reconcile (link cache + plan + diff; reader: ${cached.reader}): ` +
        `median ${ms(f.noopCached).trim()} of ${runs}` +
        `   goal ≤ ${NOOP_GOAL_MS} ms: ${f.noopCached <= NOOP_GOAL_MS ? "met" : "NOT met"}` +
        `\n       of which the cache read (drain + state) ${ms(f.cacheRead).trim()}, the store ` +
        `read ${ms(f.config).trim()}, plan + diff ${ms(f.planDiff).trim()}` +
        `\n       baseline: the same reconcile with a whole rtnetlink dump per run (the previous ` +
        `design) ${ms(f.noop).trim()}, of which the dump + parse ${ms(f.dump).trim()}; reading ` +
        `through the four ip -j reads ${ms(f.noopIp).trim()} (the reads bare ${
          ms(f.bareReads).trim()
        })` +
        `\n       with the firewall after the links, as kattach runs it (4,094 VLANs × 1,000 NICs, ` +
        `rendered and found unchanged; through the cache): ${ms(f.noopFw).trim()}`,
    );

    // Adding one instance (one tap): a full reconcile through the cache and through a whole
    // dump, alternating; then its start's own reconcile (ensureGuestLinks) beside the previous
    // start path (a full reconcile with a whole dump, then a second dump to check the taps).
    const adds = { cached: [] as number[], dump: [] as number[], bare: [] as number[] };
    const starts = { own: [] as number[], previous: [] as number[] };
    let extra = 0;
    // Addresses for the extra NICs from the top /24 of VLAN 10's /22 (the synthetic guests sit low).
    const [o1, o2, o3] = store.getVlan(10)!.cidr.split(".").map(Number);
    const addInstance = () => {
      extra++;
      const name = `extra-${extra}`;
      const mac = `0a:4b:53:ff:${(extra >> 8).toString(16).padStart(2, "0")}:${
        (extra & 0xff).toString(16).padStart(2, "0")
      }`;
      store.tx(() =>
        store.insertInstance({
          name,
          vmimage: "bench",
          state: "defined",
          autostart: false,
          restartPolicy: "never",
          nics: [{ index: 0, vlan: 10, mac, ip: `${o1}.${o2}.${o3 + 3}.${10 + extra}` }],
        })
      );
      return store.getInstance(name)!;
    };
    const addOf = async (kk: Kattach, into: number[]) => {
      addInstance();
      let lines: string[] = [];
      into.push(
        await timed(async () => {
          const r = await applyNetwork(kk, { reason: "bench: one instance" });
          if (r.error || r.applied.length === 0) throw new Error(r.error ?? "nothing applied");
          lines = r.applied;
        }),
      );
      return lines;
    };
    for (let i = 0; i < runs; i++) {
      await addOf(kCache, adds.cached);
      const lines = await addOf(k, adds.dump);
      adds.bare.push(
        await timed(() => sh(["ip", "-n", base, "-force", "-batch", "-"], renderBatch(lines))),
      );
      const own = addInstance();
      starts.own.push(await timed(() => ensureGuestLinks(kCache, own)));
      addInstance();
      starts.previous.push(
        await timed(async () => {
          const r = await applyNetwork(k, { reason: "bench: start, previous path" });
          if (r.error) throw new Error(r.error);
          await readHostState(host);
        }),
      );
    }
    console.log(
      `links: adding one instance (one tap, a full reconcile through the cache): median ` +
        `${ms(median(adds.cached)).trim()} of ${runs}; baseline the same with a whole dump ` +
        `${ms(median(adds.dump)).trim()}; bare ip -batch of its lines ${
          ms(median(adds.bare)).trim()
        }` +
        `\n       a start's link work (ensureGuestLinks: its own tap, through the cache): ` +
        `${ms(median(starts.own)).trim()}; baseline the previous start path (full reconcile + ` +
        `a second dump) ${ms(median(starts.previous)).trim()}`,
    );
    cached.close();
  } finally {
    store.close();
    await Deno.remove(dir, { recursive: true });
    await emptyNamespace(base);
    await emptyNamespace(NS);
    await new Deno.Command("ip", { args: ["netns", "del", base] }).output();
  }
}

const ROOT = new URL("..", import.meta.url).pathname.replace(/\/$/, "");

/**
 * Starts a hosted kattach, bridged, inside namespace `ns`; resolves once its IPC answers.
 * KLOG=1 shows its log; KPROF=DIR writes its CPU profile to DIR (at its exit).
 */
async function startBridgedKattach(ns: string, state: string): Promise<Deno.ChildProcess> {
  const kprof = Deno.env.get("KPROF");
  const child = new Deno.Command("ip", {
    args: [
      "netns",
      "exec",
      ns,
      ...kattachArgv({
        state,
        sshPort: 0,
        network: "bridged",
        ...(kprof
          ? {
            denoOptions: [
              KATTACH_V8_FLAGS_OPTION,
              ...["--cpu-prof", "--cpu-prof-interval=100", `--cpu-prof-dir=${kprof}`],
            ],
          }
          : {}),
      }),
    ],
    stdin: "null",
    stdout: Deno.env.get("KLOG") ? "inherit" : "null",
    stderr: Deno.env.get("KLOG") ? "inherit" : "null",
  }).spawn();
  (await connectKattach(state, 60_000)).close();
  return child;
}

/** Deploy → ready of one instance, bridged against user-mode, `runs` rounds alternating. */
async function readyFigures(c: IpcClient): Promise<void> {
  /** deploy --wait of one instance → ready, in ms; the instance is killed and deleted after. */
  const once = async (vmimage: string): Promise<number> => {
    const t0 = performance.now();
    const [d] = await c.call("deploy", { vmimage, count: 1, wait: true }) as DeployedInstance[];
    const ms = performance.now() - t0;
    await c.call("instance.kill", { name: d.name }).catch(() => {});
    await c.call("instance.del", { name: d.name });
    if (d.outcome !== "ready") {
      throw new Error(`${vmimage}: ${d.name} ${d.outcome}: ${d.reason ?? "(no reason)"}`);
    }
    return ms;
  };
  const warm = { bridged: await once("webb"), user: await once("webu") };
  const f = await alternating(runs, { bridged: () => once("webb"), user: () => once("webu") });
  console.log(
    `deploy → ready, web, one instance (hosted kattach --network bridged in a namespace; ` +
      `median of ${runs}, alternating): bridged VLAN ${ms(f.bridged).trim()}, user-mode NIC ` +
      `${ms(f.user).trim()} (${(f.bridged / f.user).toFixed(2)}×)   goal bridged no slower: ` +
      `${f.bridged <= f.user ? "met" : "NOT met"}` +
      `\n       first deploys (not counted): bridged ${ms(warm.bridged).trim()}, user ` +
      `${ms(warm.user).trim()}`,
  );
}

/** One deploy of 10: the IPC call's time, the load before and after, and kattach's own trace. */
interface DeployTrace extends HandlerTrace {
  call: number;
  load: [string, string];
}

/** What kattach's log says of one deploy (ms since the handler began; NaN when not logged). */
interface HandlerTrace {
  /** The handler's answer, and when its starts were all done. */
  answered: number;
  started: number;
  /** The starts' reconcile (links + firewall), as logged, and its `ip` lines. */
  reconcile: number;
  lines: number;
  /**
   * The last instance's files, links (made beside the files; NaN when not logged), state
   * committed, spawn begun/done, QMP socket, attached.
   */
  files: number;
  links: number;
  committed: number;
  spawnFrom: number;
  spawned: number;
  socket: number;
  attached: number;
}

/** Reads the lines added to kattach's log file since the last skip() or read(). */
class LogTail {
  #path: string;
  #offset = 0;
  constructor(path: string) {
    this.#path = path;
  }
  /** Forgets what is in the file so far. */
  skip(): void {
    this.#offset = Deno.statSync(this.#path).size;
  }
  /** The lines written since. */
  read(): string[] {
    const bytes = Deno.readFileSync(this.#path).subarray(this.#offset);
    this.#offset += bytes.length;
    return new TextDecoder().decode(bytes).split("\n");
  }
}

/** Parses one deploy's lines of kattach's log (the handler's and the supervisor's timelines). */
function traceDeploy(lines: string[], vmimage: string): HandlerTrace {
  const num = (re: RegExp, line: string | undefined) => Number(line?.match(re)?.[1] ?? NaN);
  const answer = lines.find((l) => l.includes(`deploy: ${vmimage} × 10: started in`));
  const net = lines.find((l) => / network: start (of \d+ instances|\S)/.test(l));
  const starts = lines.filter((l) => l.includes("supervisor: started ")).map((l) => ({
    files: num(/files (\d+)/, l),
    links: num(/links (\d+)/, l),
    committed: num(/starting committed (\d+)/, l),
    spawnFrom: num(/spawn (\d+)-/, l),
    spawned: num(/spawn \d+-(\d+)/, l),
    socket: num(/QMP socket (\d+)/, l),
    attached: num(/attached (\d+)/, l),
  }));
  const last = (f: (s: (typeof starts)[number]) => number) => Math.max(...starts.map(f));
  return {
    answered: num(/answered (\d+) ms/, answer),
    started: num(/started in (\d+) ms/, answer),
    reconcile: num(/change\(s\) in ([\d.]+) ms/, net),
    lines: num(/: (\d+) change\(s\)/, net),
    files: last((s) => s.files),
    links: last((s) => s.links),
    committed: last((s) => s.committed),
    spawnFrom: last((s) => s.spawnFrom),
    spawned: last((s) => s.spawned),
    socket: last((s) => s.socket),
    attached: last((s) => s.attached),
  };
}

/** The deploy-of-10 figures side by side: medians of the rounds, then each round's loads. */
function printDeployTrace(t: Record<"bridged" | "user", DeployTrace[]>, rounds: number): void {
  const m = (side: DeployTrace[], f: (d: DeployTrace) => number) => median(side.map(f));
  const rows: [string, (d: DeployTrace) => number][] = [
    ["deploy call (IPC, deploy → every QEMU spawned)", (d) => d.call],
    ["  kattach's handler (begun → answered)", (d) => d.answered],
    ["  outside the handler (IPC, queueing)", (d) => d.call - d.answered],
    ["  starts' reconcile (links + firewall)", (d) => d.reconcile],
    ["  last instance's files ready", (d) => d.files],
    ["  last instance's links ready (beside its files)", (d) => d.links],
    ["  last 'starting' committed", (d) => d.committed],
    ["  last spawn begun", (d) => d.spawnFrom],
    ["  last spawn done", (d) => d.spawned],
    ["  last QMP socket", (d) => d.socket],
    ["  last attached", (d) => d.attached],
    ["  every start done (handler)", (d) => d.started],
  ];
  console.log(
    `deploy of 10 → every QEMU spawned (no --wait; medians of ${rounds} rounds, alternating; ` +
      `ms since the handler began unless said):`,
  );
  console.log(`  ${"".padEnd(48)} ${"bridged VLAN".padStart(13)} ${"user-mode".padStart(12)}`);
  for (const [what, f] of rows) {
    console.log(
      `  ${what.padEnd(48)} ${ms(m(t.bridged, f)).padStart(13)} ${ms(m(t.user, f)).padStart(12)}`,
    );
  }
  const b = m(t.bridged, (d) => d.call);
  const u = m(t.user, (d) => d.call);
  console.log(
    `  ratio bridged / user-mode: ${(b / u).toFixed(2)}×; starts' reconcile: ` +
      `${t.bridged.map((d) => d.lines).join(", ")} ip lines`,
  );
  for (let i = 0; i < rounds; i++) {
    console.log(
      `  round ${i + 1}: bridged ${ms(t.bridged[i].call).trim()} (load ${
        t.bridged[i].load.join(" → ")
      }), user-mode ${ms(t.user[i].call).trim()} (load ${t.user[i].load.join(" → ")})`,
    );
  }
}

/** The 1-minute load average. */
function loadavg(): string {
  return Deno.readTextFileSync("/proc/loadavg").split(" ")[0];
}

async function deployFigures(): Promise<void> {
  await sh([`${ROOT}/fixtures/build-modules`]);
  const ns = `kbdep${Deno.pid}`;
  const dir = await Deno.makeTempDir({ prefix: "kaos-bench-deploy-net-" });
  const state = `${dir}/state`;
  await sh(["ip", "netns", "add", ns]);
  await sh(["ip", "-n", ns, "link", "set", "lo", "up"]);
  let kattach: Deno.ChildProcess | undefined;
  let client: IpcClient | undefined;
  try {
    kattach = await startBridgedKattach(ns, state);
    client = await IpcClient.connect(`${state}/run`);
    const c = client;
    await c.call("module.import", { path: `${ROOT}/fixtures/out/vkaos` });
    await c.call("module.import", { path: `${ROOT}/fixtures/out/web` });
    await c.call("vlan.add", { id: 10, name: "bench", cidr: "10.78.10.0/24" });
    await c.call("vmimage.create", {
      name: "webb",
      modules: ["web"],
      configGroups: [],
      vlans: [10],
    });
    await c.call("vmimage.create", { name: "webu", modules: ["web"], configGroups: [], vlans: [] });
    if (only !== "deploy10") await readyFigures(c);
    // A deploy of 10 without waiting (deploy → every QEMU spawned): the bridged starts share one
    // reconcile (ensureGuestLinks) before their QEMUs; the user-mode deploy is the baseline.
    const log = new LogTail(`${state}/log/kattach.log`);
    const ten = async (vmimage: string): Promise<DeployTrace> => {
      log.skip();
      const load0 = loadavg();
      const t0 = performance.now();
      const ds = await c.call("deploy", { vmimage, count: 10 }) as DeployedInstance[];
      const call = performance.now() - t0;
      const load1 = loadavg();
      for (const d of ds) await c.call("instance.kill", { name: d.name }).catch(() => {});
      for (const d of ds) await c.call("instance.del", { name: d.name });
      const bad = ds.filter((d) => d.outcome !== "started" && d.outcome !== "ready");
      if (bad.length > 0) {
        throw new Error(
          `${vmimage}: ${bad[0].name} ${bad[0].outcome}: ${bad[0].reason ?? "(no reason)"}`,
        );
      }
      return { call, load: [load0, load1], ...traceDeploy(log.read(), vmimage) };
    };
    // A first deploy of each, not counted: a kattach's first deploy pays once for what later
    // ones find done (the state directory's grants, the lazily loaded code).
    await ten("webb");
    await ten("webu");
    // With the deploy → ready figures, 3 rounds at most (each boots 20 guests' QEMUs); alone, `--runs`.
    const rounds10 = only === "deploy10" ? runs : Math.max(1, Math.min(runs, 3));
    const t: Record<"bridged" | "user", DeployTrace[]> = { bridged: [], user: [] };
    for (let i = 0; i < rounds10; i++) {
      t.bridged.push(await ten("webb"));
      t.user.push(await ten("webu"));
    }
    printDeployTrace(t, rounds10);
  } finally {
    client?.close();
    killStateGuests(state);
    if (kattach) {
      kattach.kill("SIGTERM");
      await kattach.status;
    }
    await new Deno.Command("ip", { args: ["netns", "del", ns] }).output();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

const add = await new Deno.Command("ip", { args: ["netns", "add", NS] }).output();
if (add.code !== 0) {
  console.error(`Error: cannot create network namespace ${NS} (run as root)`);
  Deno.exit(1);
}
try {
  if (only === undefined || only === "firewall") {
    await firewallFigures();
    await rollbackFigures();
  }
  if (only === undefined || only === "links") await linkFigures();
  if (only === undefined || only === "deploy" || only === "deploy10") await deployFigures();
} finally {
  await new Deno.Command("ip", { args: ["netns", "del", NS] }).output();
}

/**
 * Host networking: reconciles the links KaOS owns (a bridge per VLAN, 802.1Q sub-interfaces of
 * the uplink, a tap per guest NIC) with the configuration, one `ip -batch` per run, and tells
 * the guests their addresses. Runs in the `network` boot phase, after every committed change that
 * affects links, and on `network apply`. In `user` mode (hosted, the default) host links are left
 * alone and guests use QEMU's user-mode networking.
 */
import { ensureGuestUser, type Netlink } from "../host/mod.ts";
import type {
  Instance,
  NetworkApplyResult,
  NetworkMode,
  NetworkStatus,
  Nic,
  NicCounters,
  NicStatus,
  OwnedLink,
  VlanLinkState,
} from "../ipc/mod.ts";
import {
  bridgeName,
  type DesiredState,
  diffLinks,
  hostIsRouter,
  type HostLink,
  type HostState,
  hostStateFromDump,
  isKaosLink,
  type NetworkConfig,
  onlyLinks,
  parseCidr,
  parseHostState,
  planLinks,
  renderBatch,
  tapName,
  vlanLinkName,
} from "../netmgr/mod.ts";
import { UserError } from "../lib/errors.ts";
import { guestNics, SLIRP } from "../vmimage/mod.ts";
import type { Kattach } from "./context.ts";
import { applyFirewall, firewallNames } from "./firewall.ts";
import type { Store } from "./store.ts";

/** How kattach runs the host network. */
export interface NetworkOptions {
  mode: NetworkMode;
  host: Netlink;
}

interface Runtime extends NetworkOptions {
  last: NetworkApplyResult | null;
  /** The last run scheduled; runs never overlap. */
  tail: Promise<unknown>;
  /** A run scheduled but not started yet: callers join it. */
  queued: Promise<NetworkApplyResult> | null;
  /** Warnings a start's reconcile logged already (a deploy of 100 logs each once). */
  warned: Set<string>;
  /** Starts' reconcile scheduled but not started yet: later starts add their instance to it. */
  startsQueued: { names: Set<string>; run: Promise<StartsRun> } | null;
}

interface StartsRun {
  result: NetworkApplyResult;
  links: Map<string, HostLink>;
}

const runtimes = new WeakMap<Kattach, Runtime>();

/** Sets how this kattach runs the network (the `network` boot phase, before any apply). */
export function startNetwork(k: Kattach, options: NetworkOptions): void {
  runtimes.set(k, {
    ...options,
    last: null,
    tail: Promise.resolve(),
    queued: null,
    warned: new Set(),
    startsQueued: null,
  });
  if (options.mode === "bridged") k.log(`network: links are read through ${options.host.reader}`);
}

/** `bridged` when kattach manages host links, else `user` (also before the network phase). */
export function networkMode(k: Kattach): NetworkMode {
  return runtimes.get(k)?.mode ?? "user";
}

/** The host interface, in bridged mode. */
export function netlinkOf(k: Kattach): Netlink | undefined {
  const rt = runtimes.get(k);
  return rt?.mode === "bridged" ? rt.host : undefined;
}

/**
 * What the link planner needs from the store; with `instances`, only their NICs and the VLANs
 * those are on (the starts' reconcile of their own taps).
 */
export function networkConfig(
  store: Store,
  options: { instances?: string[] } = {},
): NetworkConfig {
  const only = options.instances;
  const nics = (only === undefined
    ? store.all(
      "SELECT instance, idx, mac, vlan FROM nic WHERE vlan IS NOT NULL ORDER BY instance, idx",
    )
    : only.length === 0
    ? []
    : store.all(
      `SELECT instance, idx, mac, vlan FROM nic WHERE instance IN (${
        only.map(() => "?").join(", ")
      }) AND vlan IS NOT NULL ORDER BY instance, idx`,
      only,
    )).map((r) => ({
      instance: String(r.instance),
      index: Number(r.idx),
      mac: String(r.mac),
      vlan: Number(r.vlan),
    }));
  return {
    uplink: store.networkSettings().uplink,
    vlans: only === undefined ? store.listVlanSwitches() : vlansOf(store, nics),
    routes: store.listVlanRoutes(),
    nics,
  };
}

/** The switch settings of the VLANs these NICs are on (a few rows, not all 4,094). */
function vlansOf(store: Store, nics: { vlan: number }[]): NetworkConfig["vlans"] {
  const ids = [...new Set(nics.map((n) => n.vlan))];
  if (ids.length === 0) return [];
  return store.all(
    `SELECT id, cidr, gateway, uplink, nat, isolate FROM vlan WHERE id IN (${
      ids.map(() => "?").join(", ")
    }) ORDER BY id`,
    ids,
  ).map((r) => ({
    id: Number(r.id),
    cidr: String(r.cidr),
    gateway: String(r.gateway),
    uplink: r.uplink as NetworkConfig["vlans"][number]["uplink"],
    nat: r.nat === 1,
    isolate: r.isolate === 1,
  }));
}

/**
 * Reads the host's links, bridge ports, VLAN links and IPv4 addresses: one in-process rtnetlink
 * dump where the host offers it, else (or when the dump fails: `onFallback` hears why) the four
 * `ip -j` / `bridge -j` reads at once.
 */
export async function readHostState(
  host: Netlink,
  onFallback?: (why: string) => void,
): Promise<HostState> {
  try {
    const dump = await host.dump();
    if (dump) return hostStateFromDump(dump);
  } catch (err) {
    onFallback?.(`rtnetlink read failed (${err instanceof Error ? err.message : err})`);
  }
  const [links, addresses, ports, vlans] = await Promise.all([
    host.links(),
    host.addresses(),
    host.ports(),
    host.vlans(),
  ]);
  return parseHostState({ links, addresses, ports, vlans });
}

/** What is said while the uplink is not on the host (`network set`, `network status`, `system status`). */
function missingUplink(name: string): string {
  return `the uplink ${name} does not exist on this host: tagged VLANs and NAT have no way out ` +
    "until it appears (an interface plugged in later, e.g. a USB NIC: `network apply` then) or " +
    "another is named (`network set --uplink IFACE`)";
}

/**
 * A warning when kattach manages the host's links and the uplink (`uplink`, default the stored
 * one) is not on the host; undefined when it is, and in user mode (the uplink is not used there).
 * Never throws (a failed read of the links is the warning).
 */
export async function uplinkWarning(k: Kattach, uplink?: string): Promise<string | undefined> {
  const rt = runtimes.get(k);
  if (!rt || rt.mode !== "bridged") return undefined;
  const name = uplink ?? k.store.networkSettings().uplink;
  try {
    const host = await readHostState(rt.host, fallbackLog(k));
    return host.links.has(name) ? undefined : missingUplink(name);
  } catch (err) {
    // Said, not thrown: `network set` has committed by now, and `system status` goes on.
    return `the host's links could not be read to look for the uplink ${name}: ${
      err instanceof Error ? err.message : err
    }`;
  }
}

function fallbackLog(k: Kattach): (why: string) => void {
  return (why) => k.log(`network: ${why}; read through ip -j instead`);
}

/**
 * Makes the host's links match the configuration (one `ip -batch`); a no-op in user mode.
 * Calls while a run is in progress share one run queued behind it, which reads the store
 * afresh, so every caller sees a reconcile that started after its change was committed.
 * Never throws: the outcome (and any error) is returned, logged and kept for `network status`.
 */
export function applyNetwork(k: Kattach, options: { reason: string }): Promise<NetworkApplyResult> {
  const rt = runtimes.get(k);
  if (!rt || rt.mode !== "bridged") {
    return Promise.resolve({
      mode: "user",
      reason: options.reason,
      at: new Date().toISOString(),
      applied: [],
      warnings: [],
      error: null,
      milliseconds: 0,
    });
  }
  if (rt.queued) return rt.queued;
  const run = async (): Promise<NetworkApplyResult> => {
    rt.queued = null; // later callers queue a run of their own, behind this one
    const result = await reconcile(k, rt, options.reason);
    rt.last = result;
    return result;
  };
  const next = serial(rt, run);
  rt.queued = next;
  return next;
}

/** Runs `fn` after every run scheduled so far (runs never overlap). */
function serial<T>(rt: Runtime, fn: () => Promise<T>): Promise<T> {
  const next = rt.tail.then(fn, fn);
  rt.tail = next;
  return next;
}

/**
 * The host's state as far as `want` names it (its links and the uplink) and the links in
 * `gone` (a deleted instance's taps): a diff against it changes only those links, deleting the
 * owned ones of `gone` that `want` leaves out (no other owned link is deleted or touched).
 */
function onlyNamed(host: HostState, want: DesiredState, gone: string[] = []): HostState {
  return onlyLinks(host, new Set([...want.links.map((l) => l.name), want.uplink, ...gone]));
}

/**
 * What a reconcile covers: every link (no `instances`), or the links of `instances` only plus
 * the owned links named in `gone`, which it deletes (an `instance del`'s taps); `firewall: false`
 * leaves the firewall alone (nothing the ruleset names changed).
 */
interface Scope {
  instances?: string[];
  gone?: string[];
  firewall?: boolean;
  seen?: { host?: HostState };
}

async function reconcile(
  k: Kattach,
  rt: Runtime,
  reason: string,
  scope: Scope = {},
): Promise<NetworkApplyResult> {
  const instance = scope.instances;
  const gone = scope.gone ?? [];
  const t0 = performance.now();
  const at = new Date().toISOString();
  let applied: string[] = [];
  let warnings: string[] = [];
  let error: string | null = null;
  // A start's firewall goes alongside its links: its sets name the new taps by name (nft needs no
  // link to exist) and no QEMU has them open before both are done (ensureGuestLinks); a deleted
  // instance's taps carry nothing any more. A full run applies it after the links, which may
  // delete links that the ruleset still names.
  const noFirewall: ReturnType<typeof followFirewall> = Promise.resolve({
    warnings: [],
    error: null,
  });
  const startsFirewall = scope.firewall === false
    ? noFirewall
    : instance === undefined
    ? undefined
    : followFirewall(k, reason);
  try {
    // Taps belong to the user QEMU runs as (kaos-qemu when kattach is root): it opens them.
    const owner = await ensureGuestUser((line) => k.log(line));
    const config = {
      ...networkConfig(k.store, instance === undefined ? {} : { instances: instance }),
      ...(owner ? { tapOwner: owner } : {}),
    };
    const want = planLinks(config);
    const host = await readHostState(rt.host, fallbackLog(k));
    if (scope.seen) scope.seen.host = host;
    const diff = diffLinks(want, instance === undefined ? host : onlyNamed(host, want, gone));
    warnings = diff.warnings;
    applied = diff.lines;
    if (diff.lines.length > 0) {
      const r = await rt.host.applyBatch(renderBatch(diff.lines));
      if (r.code !== 0) error = `ip -batch: ${r.stderr.trim() || `exit ${r.code}`}`;
    }
  } catch (err) {
    error = err instanceof Error ? err.message : String(err);
  }
  const fw = await (startsFirewall ?? followFirewall(k, reason));
  warnings = [...warnings, ...fw.warnings];
  if (fw.error) error = error ? `${error}; ${fw.error}` : fw.error;
  const ms = Math.round((performance.now() - t0) * 10) / 10;
  const result: NetworkApplyResult = {
    mode: "bridged",
    reason,
    at,
    applied,
    warnings,
    error,
    milliseconds: ms,
  };
  if (applied.length > 0 || error) {
    k.log(
      `network: ${reason}: ${applied.length} change(s) in ${ms} ms${error ? `; ${error}` : ""}`,
    );
    // The lines themselves when few (a boot of a big host would flood the log).
    if (applied.length <= 32) { for (const line of applied) k.log(`network:   ip ${line}`); }
  }
  // A warning is logged when it appears, not at every run (`network status` shows them all).
  for (const w of warnings) {
    if (!rt.last?.warnings.includes(w) && !(instance && rt.warned.has(w))) k.log(`network: ${w}`);
    if (instance) rt.warned.add(w);
  }
  return result;
}

/**
 * The firewall after (or, for starts, beside) the links: its sets name the taps and bridges. It
 * applies only when its ruleset changed, and keeps commit-confirmed for management-access
 * changes. Never throws: a failure is its `error`.
 */
async function followFirewall(
  k: Kattach,
  reason: string,
): Promise<{ warnings: string[]; error: string | null }> {
  if (!k.firewallHost) return { warnings: [], error: null };
  try {
    return { warnings: (await applyFirewall(k, { reason })).warnings, error: null };
  } catch (err) {
    return { warnings: [], error: `firewall: ${err instanceof Error ? err.message : String(err)}` };
  }
}

/** What `network status` reports: settings, per-VLAN link state and pending changes. */
export async function networkStatus(k: Kattach): Promise<NetworkStatus> {
  const rt = runtimes.get(k);
  const config = networkConfig(k.store);
  const settings = k.store.networkSettings();
  const taps = new Map<number, number>();
  for (const n of config.nics) taps.set(n.vlan, (taps.get(n.vlan) ?? 0) + 1);
  const base = (v: NetworkConfig["vlans"][number]): Omit<VlanLinkState, "state"> => ({
    id: v.id,
    name: k.store.getVlan(v.id)?.name ?? String(v.id),
    bridge: bridgeName(v.id),
    uplink: v.uplink,
    vlanLink: v.uplink === "tagged" ? vlanLinkName(v.id) : null,
    hostAddress: hostIsRouter(v, config.routes) ? `${v.gateway}/${parseCidr(v.cidr).prefix}` : null,
    taps: taps.get(v.id) ?? 0,
  });
  if (!rt || rt.mode !== "bridged") {
    return {
      mode: "user",
      settings,
      uplinkPresent: null,
      routes: config.routes,
      vlans: config.vlans.map((v) => ({ ...base(v), state: "unmanaged" })),
      pending: [],
      links: [],
      warnings: [
        "user-mode networking: host links are not managed (kattach --hosted --network bridged manages them)",
      ],
      lastApply: null,
    };
  }
  const host = await readHostState(rt.host, fallbackLog(k));
  const diff = diffLinks(planLinks(config), host);
  return {
    mode: "bridged",
    settings,
    uplinkPresent: host.links.has(settings.uplink),
    routes: config.routes,
    vlans: config.vlans.map((v) => {
      const l = host.links.get(bridgeName(v.id));
      return { ...base(v), state: !l ? "missing" : l.up ? "up" : "down" };
    }),
    pending: diff.lines,
    links: [...host.links.values()]
      .filter((l) => isKaosLink(l.name, l.alias ?? undefined))
      .sort((a, b) => a.name.localeCompare(b.name))
      .map(ownedLink),
    warnings: [
      ...(host.links.has(settings.uplink) ? [] : [missingUplink(settings.uplink)]),
      ...diff.warnings,
    ],
    lastApply: rt.last,
  };
}

function ownedLink(l: HostLink): OwnedLink {
  return {
    name: l.name,
    kind: l.kind,
    alias: l.alias ?? "",
    master: l.master,
    parent: l.parent,
    vlanId: l.vlanId,
    up: l.up,
  };
}

/** How one guest NIC is connected. */
export interface GuestNicPlan {
  index: number;
  mac: string;
  vlan: number | null;
  /** A tap on the VLAN's bridge (bridged mode) or QEMU user-mode networking. */
  mode: "tap" | "user";
  tap: string | null;
  bridge: string | null;
  /** `IP/PREFIX` given to the guest (tap NICs only; user-mode NICs use DHCP). */
  address: string | null;
  /** The default route; on the first tap NIC only (one default route per guest). */
  gateway: string | null;
}

/** How each NIC of an instance is connected, and the DNS servers its guest gets. */
export interface GuestNetwork {
  nics: GuestNicPlan[];
  dns: string[];
}

/**
 * The address (`IP/PREFIX`) a guest has on one NIC, as guestNetwork() and the guest's
 * configuration disk give it: the allocated address on a tap (bridged networking, a VLAN that
 * exists, an address), else QEMU's user-mode address. `cidrOf` gives a VLAN's subnet.
 */
export function nicAddress(
  nic: Pick<Nic, "vlan" | "ip">,
  o: { bridged: boolean; cidrOf: (vlan: number) => string | undefined },
): string {
  const cidr = nic.vlan === null ? undefined : o.cidrOf(nic.vlan);
  if (!o.bridged || cidr === undefined || nic.ip === null) return SLIRP.guest;
  return `${nic.ip}/${parseCidr(cidr).prefix}`;
}

/**
 * Fills in each NIC's `address` (see nicAddress) on the given instances, in place: one query
 * for the VLANs' subnets, however many instances (`instance list`, deploy results): the rows of
 * their VLANs when they are `few` or fewer, else every VLAN's.
 */
export function withNicAddresses<T extends Pick<Instance, "nics">>(
  k: Kattach,
  insts: T[],
  few = 64,
): T[] {
  const cidrs = new Map<number, string>();
  // For one instance (instance show, a start's answer): a row or two, not 4,094.
  const ids = new Set(insts.flatMap((i) => i.nics.map((n) => n.vlan).filter((v) => v !== null)));
  const rows = ids.size <= few
    ? k.store.all("SELECT id, cidr FROM vlan WHERE id IN (SELECT value FROM json_each(?))", [
      JSON.stringify([...ids]),
    ])
    : k.store.all("SELECT id, cidr FROM vlan");
  for (const r of rows) cidrs.set(Number(r.id), String(r.cidr));
  const o = { bridged: networkMode(k) === "bridged", cidrOf: (v: number) => cidrs.get(v) };
  for (const inst of insts) for (const n of inst.nics) n.address = nicAddress(n, o);
  return insts;
}

/** How each NIC of an instance is connected, and the DNS servers its guest gets. */
export function guestNetwork(k: Kattach, inst: Pick<Instance, "nics">): GuestNetwork {
  const bridged = networkMode(k) === "bridged";
  let gatewayGiven = false;
  const nics = inst.nics.map((n): GuestNicPlan => {
    const vlan = n.vlan === null ? undefined : k.store.getVlan(n.vlan);
    if (!bridged || !vlan || n.ip === null) {
      return {
        index: n.index,
        mac: n.mac,
        vlan: n.vlan,
        mode: "user",
        tap: null,
        bridge: null,
        address: null,
        gateway: null,
      };
    }
    const gateway = gatewayGiven ? null : vlan.gateway;
    gatewayGiven = true;
    return {
      index: n.index,
      mac: n.mac,
      vlan: vlan.id,
      mode: "tap",
      tap: tapName(n.mac),
      bridge: bridgeName(vlan.id),
      address: `${n.ip}/${parseCidr(vlan.cidr).prefix}`,
      gateway,
    };
  });
  return { nics, dns: bridged ? k.store.networkSettings().dns : [] };
}

/**
 * Before QEMU starts: reconciles this instance's own links only (its taps, their bridges and
 * VLAN links, the gateway addresses on those bridges; no other link is read into the plan or
 * touched) and, beside them, the firewall (its port sets must name the taps before the guest
 * sends); then checks that every tap of the instance is on its bridge (QEMU would otherwise make
 * a loose tap of that name) and named by the ruleset in the kernel. With the link cache
 * (kattach's reader) no dump of the host's links is made. A UserError naming what is wrong.
 */
export async function ensureGuestLinks(k: Kattach, inst: Pick<Instance, "name" | "nics">) {
  const rt = runtimes.get(k);
  const taps = guestNetwork(k, inst).nics.filter((n) => n.tap);
  if (!rt || rt.mode !== "bridged" || taps.length === 0) return;
  const { result: r, links } = await scopedRun(k, rt, [inst.name]);
  for (const n of taps) {
    const l = links.get(n.tap!);
    if (!l || l.master !== n.bridge) {
      throw new UserError(
        `Cannot start ${inst.name}: its tap ${n.tap} is not on ${n.bridge}${
          r.error ? ` (${r.error})` : ""
        }`,
        { hint: "see `network status` and the kattach log" },
      );
    }
  }
  // A tap the kernel's ruleset does not name is not filtered at all (no anti-spoofing): when
  // the firewall could not be applied, the guest does not start.
  const unfiltered = taps.filter((n) => !firewallNames(k, n.tap!)).map((n) => n.tap);
  if (unfiltered.length > 0) {
    throw new UserError(
      `Cannot start ${inst.name}: the firewall does not filter its tap ${unfiltered.join(", ")}${
        r.error ? ` (${r.error})` : ""
      }`,
      { hint: "see `firewall status` and the kattach log" },
    );
  }
}

/**
 * After a deploy: makes its instances' links (their taps, the bridges and VLAN links those are
 * on, the gateway addresses there) as their starts do, and touches no other link: a deploy
 * whose instances started finds them made (nothing to apply), one with `--no-start` gets its
 * taps here. Drift elsewhere waits for the next full reconcile. In user mode nothing happens
 * (null). Never throws: the outcome (and any error) is returned and logged, as applyNetwork's.
 */
export async function linkInstances(
  k: Kattach,
  names: string[],
  options: { reason: string },
): Promise<NetworkApplyResult | null> {
  const rt = runtimes.get(k);
  if (!rt || rt.mode !== "bridged" || names.length === 0) return null;
  return (await scopedRun(k, rt, names, options.reason)).result;
}

/**
 * After `instance del` (its records gone): deletes its taps, `taps` (named by the caller from its
 * NICs), and no other link; beside them, when the ruleset named the instance (`firewall`: its
 * taps are in the port sets, its published ports in the DNAT map), applies the firewall, which
 * no longer names it. No full reconcile: nothing else is planned, diffed or rendered. A tap that
 * is already gone, or a link of that name that is not KaOS', is left as it is. In user mode
 * nothing happens (null). Never throws: the outcome (and any error) is returned and logged, as
 * applyNetwork's.
 */
export async function unlinkInstance(
  k: Kattach,
  name: string,
  options: { taps: string[]; firewall: boolean },
): Promise<NetworkApplyResult | null> {
  const rt = runtimes.get(k);
  if (!rt || rt.mode !== "bridged") return null;
  if (options.taps.length === 0 && !options.firewall) return null;
  return await serial(rt, () =>
    reconcile(k, rt, `instance del ${name}`, {
      instances: [],
      gone: options.taps,
      firewall: options.firewall,
    }));
}

/**
 * The reconcile of some instances' own links that `names` join: the one scheduled and not
 * started yet (a deploy's starts arrive together: one batch for all their taps), else a new one
 * (said as `reason`, else as the starts of its instances).
 */
function scopedRun(
  k: Kattach,
  rt: Runtime,
  names: string[],
  reason?: string,
): Promise<StartsRun> {
  if (rt.startsQueued) {
    for (const name of names) rt.startsQueued.names.add(name);
    return rt.startsQueued.run;
  }
  const joined = new Set(names);
  const run = serial(rt, async (): Promise<StartsRun> => {
    rt.startsQueued = null; // later starts queue a run of their own, behind this one
    const instances = [...joined].sort();
    const seen: { host?: HostState } = {};
    const said = reason ??
      (instances.length <= 3
        ? `start ${instances.join(", ")}`
        : `start of ${instances.length} instances (${instances.slice(0, 3).join(", ")}, …)`);
    const result = await reconcile(k, rt, said, { instances, seen });
    // What was read before is still true when nothing was applied (no second read then).
    const host = result.applied.length === 0 && seen.host
      ? seen.host
      : await readHostState(rt.host, fallbackLog(k));
    return { result, links: host.links };
  });
  rt.startsQueued = { names: joined, run };
  return run;
}

/** Why a user-mode NIC has no counters (QEMU's slirp keeps none and has no host link). */
export const USER_MODE_NOT_COUNTED = "not counted (user-mode network)";

/**
 * `instance stats`' traffic of each NIC as its guest sees it: a tap NIC's from its tap's kernel
 * counters through the host interface, turned round (the tap receives what the guest sends);
 * a user-mode NIC is not counted (never 0); a tap that is missing says so.
 */
export async function nicCounters(
  nics: GuestNicPlan[],
  host: Netlink | undefined,
): Promise<NicCounters[]> {
  return await Promise.all(nics.map(async (n): Promise<NicCounters> => {
    const base = { index: n.index, vlan: n.vlan, mode: n.mode, tap: n.tap };
    if (n.mode === "user" || n.tap === null || !host) {
      return { ...base, counters: null, why: USER_MODE_NOT_COUNTED };
    }
    const c = await host.counters(n.tap);
    if (!c) return { ...base, counters: null, why: `not counted (its tap ${n.tap} is missing)` };
    return {
      ...base,
      counters: {
        rxBytes: c.txBytes,
        rxPackets: c.txPackets,
        txBytes: c.rxBytes,
        txPackets: c.rxPackets,
      },
      why: null,
    };
  }));
}

/** What a guest was told at its start (addresses, gateway, DNS), kept to spot later changes. */
export function recordGuestNetwork(store: Store, instance: string, net: GuestNetwork): void {
  store.run("UPDATE instance_runtime SET net_given = ? WHERE instance = ?", [
    JSON.stringify(given(net)),
    instance,
  ]);
}

/**
 * True when the guest's addresses, gateway or DNS differ from what it got at its start (it
 * learns them only at boot: a restart applies them). False when it never started.
 */
export function guestNetworkStale(store: Store, instance: string, now: GuestNetwork): boolean {
  const row = store.get("SELECT net_given FROM instance_runtime WHERE instance = ?", [instance]);
  const before = row ? String(row.net_given) : "";
  return before !== "" && before !== JSON.stringify(given(now));
}

function given(net: GuestNetwork) {
  return {
    nics: net.nics.map((n) => [n.mac, n.mode, n.address, n.gateway]),
    dns: net.dns,
  };
}

/**
 * `instance show`'s view of an instance's NICs: connection, tap state, staleness, and the
 * address, gateway and DNS servers the guest is told (its configuration disk: guestNics), user-mode
 * NICs included (QEMU's fixed 10.0.2.15/24, gateway 10.0.2.2, DNS 10.0.2.3).
 */
export async function nicStatus(
  k: Kattach,
  inst: Pick<Instance, "name" | "nics">,
): Promise<{ network: NicStatus[]; dns: string[] }> {
  const net = guestNetwork(k, inst);
  const told = guestNics(net.nics, net.dns);
  const host = netlinkOf(k);
  const links = host && net.nics.some((n) => n.tap)
    ? (await readHostState(host, fallbackLog(k))).links
    : new Map();
  const stale = guestNetworkStale(k.store, inst.name, net);
  return {
    network: net.nics.map((n, i) => {
      const l = n.tap ? links.get(n.tap) : undefined;
      return {
        index: n.index,
        vlan: n.vlan,
        mode: n.mode,
        tap: n.tap,
        bridge: n.bridge,
        mac: n.mac,
        address: told.nics[i].address ?? null,
        gateway: told.nics[i].gateway ?? null,
        state: !n.tap
          ? "-"
          : !l
          ? "missing"
          : l.master !== n.bridge
          ? "detached"
          : l.up
          ? "up"
          : "down",
        restartNeeded: stale,
      };
    }),
    dns: told.dns,
  };
}

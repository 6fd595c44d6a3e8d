/**
 * The firewall's orchestration: builds the renderer's input from the store, applies the rendered
 * ruleset as a numbered generation, and keeps management access safe with commit-confirmed. A
 * generation whose management access (sources, input rules, the uplink, the SSH port) differs
 * from the last confirmed one is pending: unless `firewall confirm` comes in time, the
 * management-access configuration of the last confirmed generation is restored and applied
 * again. The pending state lives in the store, so a kattach that dies while pending rolls back
 * at its next start. Only when `k.firewallHost` is set (the appliance, or hosted mode with
 * bridged networking) is the host's ruleset touched.
 */
import { type FirewallApplied, type FirewallGeneration, type Origin } from "../ipc/mod.ts";
import { UserError } from "../lib/errors.ts";
import {
  bridgeName,
  type FirewallInput,
  type FirewallRule,
  parseCidr,
  type RenderedFirewall,
  renderFirewall,
  renderMinimalFirewall,
  type RuleEnd,
  tapName,
} from "../netmgr/mod.ts";
import type { Kattach } from "./context.ts";
import {
  type GenerationRow,
  insertGeneration,
  insertMgmt,
  insertRule,
  lastConfirmedGeneration,
  latestGeneration,
  listForwards,
  listMgmt,
  listRules,
  pendingGeneration,
  pruneGenerations,
  setGenerationState,
} from "./store_firewall.ts";
import type { MgmtSource, UserRule } from "../ipc/mod.ts";

/** Seconds a management-access change waits for `firewall confirm` by default. */
export const DEFAULT_CONFIRM_WITHIN_S = 60;

/** The management-access part of the configuration, as a generation keeps it. */
interface Access {
  mgmtPort: number;
  mgmt: MgmtSource[];
  inputRules: UserRule[];
  uplink: string | null;
}

/** In-memory state per running kattach: what is in the kernel now, and the rollback timer. */
interface Live {
  appliedText?: string;
  timer?: ReturnType<typeof setTimeout>;
  /** Applies, rollbacks and boots run one at a time, in order. */
  queue: Promise<unknown>;
}
const live = new WeakMap<Kattach, Live>();
function liveOf(k: Kattach): Live {
  let s = live.get(k);
  if (!s) live.set(k, s = { queue: Promise.resolve() });
  return s;
}

/**
 * True when the ruleset in the kernel names this tap (its anti-spoofing entries are in force:
 * a tap outside the `ports` set is not filtered), or when kattach manages no firewall.
 */
export function firewallNames(k: Kattach, tap: string): boolean {
  if (!k.firewallHost) return true;
  return liveOf(k).appliedText?.includes(`"${tap}"`) ?? false;
}

/** Runs `fn` after every earlier firewall operation of this kattach has finished. */
function serialized<T>(k: Kattach, fn: () => Promise<T>): Promise<T> {
  const state = liveOf(k);
  const run = state.queue.then(fn, fn);
  state.queue = run.catch(() => {});
  return run;
}

/** The renderer's input from the store, and what had to be left out. */
export function firewallInput(k: Kattach): { input: FirewallInput; warnings: string[] } {
  const store = k.store;
  const warnings: string[] = [];
  const vlans = store.listVlanSwitches();
  const vlanIds = new Set(vlans.map((v) => v.id));
  // The NICs on VLANs, by instance and index (not whole instances: this runs at every reconcile).
  const nics = store.all(
    "SELECT instance, idx, mac, vlan, ip FROM nic WHERE vlan IS NOT NULL ORDER BY instance, idx",
  ).map((r) => ({
    instance: String(r.instance),
    mac: String(r.mac),
    vlan: Number(r.vlan),
    ip: r.ip === null ? null : String(r.ip),
  }));
  // An instance's address: its first NIC on a VLAN that has one.
  const ipOf = new Map<string, string>();
  for (const n of nics) if (n.ip !== null && !ipOf.has(n.instance)) ipOf.set(n.instance, n.ip);
  const end = (text: string | null, rule: UserRule): RuleEnd | null | "skip" => {
    if (text === null) return null;
    const vlan = text.match(/^vlan:(\d+)$/);
    if (vlan) {
      if (vlanIds.has(Number(vlan[1]))) return { vlan: Number(vlan[1]) };
      warnings.push(`rule ${rule.id} is not in force: VLAN ${vlan[1]} no longer exists`);
      return "skip";
    }
    if (text.includes("/")) return { cidr: text };
    const ip = ipOf.get(text);
    if (ip) return { cidr: `${ip}/32` };
    warnings.push(`rule ${rule.id} is not in force: ${text} has no address on a VLAN`);
    return "skip";
  };
  const rules: FirewallRule[] = [];
  for (const r of listRules(store)) {
    const from = end(r.from, r);
    const to = end(r.to, r);
    if (from === "skip" || to === "skip") continue;
    const [pf, pt] = r.port === null ? [] : r.port.split("-").map(Number);
    rules.push({
      id: r.id,
      chain: r.chain,
      action: r.action,
      proto: r.proto,
      from,
      to,
      ports: pf === undefined ? null : { from: pf, to: pt ?? pf },
      note: r.note,
    });
  }
  const forwards = [];
  for (const f of listForwards(store)) {
    if (f.ip === null) {
      warnings.push(`published port ${f.id} is not in force: ${f.instance} has no VLAN address`);
      continue;
    }
    forwards.push({ proto: f.proto, hostPort: f.hostPort, ip: f.ip, guestPort: f.guestPort });
  }
  const input: FirewallInput = {
    uplink: uplinkOf(k),
    mgmtPort: mgmtPortOf(k),
    mgmt: listMgmt(store).map((m) => m.cidr),
    vlans: vlans.map((v) => ({
      id: v.id,
      cidr: v.cidr,
      gateway: v.gateway,
      bridge: bridgeName(v.id),
      nat: v.nat,
      isolate: v.isolate,
    })),
    routes: store.listVlanRoutes(),
    ports: nics.map((n) => ({ tap: tapName(n.mac), mac: n.mac, ip: n.ip, vlan: n.vlan })),
    forwards,
    rules,
  };
  return { input, warnings };
}

/** The rendered ruleset and every warning about it. */
export function renderFromStore(
  k: Kattach,
): { text: string; warnings: string[]; forwarding: boolean } {
  const { input, warnings } = firewallInput(k);
  // Every reconcile renders; most find the same input as the last time (a no-op reconcile of
  // 4,094 VLANs × 1,000 NICs: rendering took about 3× as long as comparing the JSON).
  const json = JSON.stringify(input);
  const last = lastRender.get(k);
  const r = last?.json === json ? last.rendered : renderFirewall(input);
  lastRender.set(k, { json, rendered: r });
  return { text: r.text, warnings: [...r.warnings, ...warnings], forwarding: r.forwarding };
}

/** The last input rendered per kattach, as JSON, and what it rendered to. */
const lastRender = new WeakMap<Kattach, { json: string; rendered: RenderedFirewall }>();

/** Options of {@linkcode applyFirewall}. */
export interface ApplyFirewallOptions {
  /** Why (kept with the generation): "boot", "firewall mgmt add 10.0.0.0/8", … */
  reason: string;
  /** A management-access change: its confirm deadline in seconds (restarts the clock). */
  confirmWithin?: number;
}

/**
 * Renders the firewall from the store and, when kattach manages the host's networking, applies
 * it as a new generation (nothing happens when the kernel has this ruleset already). Throws
 * when nft refuses it; the kernel keeps the previous ruleset then.
 */
export function applyFirewall(
  k: Kattach,
  options: ApplyFirewallOptions,
): Promise<FirewallApplied> {
  return serialized(k, () => applyNow(k, options));
}

async function applyNow(k: Kattach, options: ApplyFirewallOptions): Promise<FirewallApplied> {
  const { text, warnings, forwarding } = renderFromStore(k);
  const host = k.firewallHost;
  if (!host) {
    return {
      applied: false,
      generation: null,
      message: "user-mode networking: the host's ruleset is left alone",
      warnings,
    };
  }
  const state = liveOf(k);
  const access = accessOf(k);
  const key = accessKey(access);
  const confirmed = lastConfirmedGeneration(k.store);
  const touches =
    key !== (confirmed ? accessKey(JSON.parse(confirmed.access)) : baselineKey(access));
  const pending = pendingGeneration(k.store);
  if (state.appliedText === text && (touches === (pending !== undefined))) {
    return {
      applied: false,
      generation: latestGeneration(k.store) ?? null,
      message: "the firewall is up to date",
      warnings,
    };
  }
  await host.nft.apply(text);
  state.appliedText = text;
  await setSysctls(k, forwarding);

  const deadline = !touches
    ? null
    : pending && options.confirmWithin === undefined
    ? pending.deadline
    : new Date(Date.now() + 1000 * (options.confirmWithin ?? DEFAULT_CONFIRM_WITHIN_S))
      .toISOString();
  const id = k.store.tx(() => {
    if (pending) setGenerationState(k.store, pending.id, "superseded");
    const id = insertGeneration(k.store, {
      state: touches ? "pending" : "confirmed",
      reason: options.reason,
      ruleset: text,
      access: JSON.stringify(access),
      deadline,
    });
    pruneGenerations(k.store);
    return id;
  });
  clearTimeout(state.timer);
  state.timer = undefined;
  if (deadline !== null) arm(k, id, deadline);
  const g = strip(latestGeneration(k.store)!);
  k.log(
    `firewall: generation ${id} applied (${options.reason})` +
      (deadline ? `; pending, rolled back at ${deadline} unless confirmed` : ""),
  );
  return {
    applied: true,
    generation: g,
    message: deadline
      ? `This changes management access: run \`firewall confirm\` from a new connection by ` +
        `${deadline}, or generation ${confirmed?.id ?? "0 (the defaults)"} comes back.`
      : `Generation ${id} is in force.`,
    warnings,
  };
}

/** Confirms the pending generation; `origin` must be a connection opened after the change. */
export function confirmFirewall(k: Kattach, origin?: Origin): FirewallGeneration {
  const pending = pendingGeneration(k.store);
  if (!pending) {
    throw new UserError("Nothing to confirm: no firewall change is pending", {
      hint: "`firewall status` shows the generation in force",
      code: "not-found",
    });
  }
  if (origin?.openedAt !== undefined && origin.openedAt < Date.parse(pending.appliedAt)) {
    throw new UserError(
      `Cannot confirm generation ${pending.id} from a connection opened before it was applied`,
      {
        hint: "open a new SSH connection (that proves the new ruleset lets you in) and run " +
          "`firewall confirm` there",
        code: "conflict",
      },
    );
  }
  k.store.tx(() => setGenerationState(k.store, pending.id, "confirmed"));
  const state = liveOf(k);
  clearTimeout(state.timer);
  state.timer = undefined;
  k.log(`firewall: generation ${pending.id} confirmed`);
  return strip(latestGeneration(k.store)!);
}

/**
 * Rolls a pending generation back: restores the management-access configuration of the last
 * confirmed generation (the defaults when none was ever confirmed) and applies the firewall
 * again; if that fails, the last confirmed ruleset text, then the minimal one.
 */
export async function rollbackFirewall(k: Kattach, why: string): Promise<void> {
  const uplink = await serialized(k, async () => {
    const pending = pendingGeneration(k.store);
    if (!pending) return false;
    const uplinkRestored = restoreAccess(k, pending);
    k.log(`firewall: generation ${pending.id} rolled back (${why})`);
    await applyWithFallbacks(k, `rollback of generation ${pending.id} (${why})`);
    return uplinkRestored;
  });
  // The links follow the restored uplink (outside the queue: that reconcile applies the firewall).
  if (uplink) await k.firewallHost?.onUplinkRestored?.(`firewall rollback (${why})`);
}

/**
 * The boot phase: before the SSH service starts. A generation left pending by a previous run is
 * rolled back first; then the configured ruleset, else the last confirmed, else the minimal one.
 */
export function bootFirewall(k: Kattach): Promise<void> {
  return serialized(k, async () => {
    if (!k.firewallHost) return;
    const pending = pendingGeneration(k.store);
    if (pending) {
      restoreAccess(k, pending);
      k.log(`firewall: generation ${pending.id} was pending at start: rolled back`);
    }
    await applyWithFallbacks(k, pending ? `boot, rollback of generation ${pending.id}` : "boot");
  });
}

/** Stops the rollback timer (kattach stopping; the pending state stays in the store). */
export function stopFirewall(k: Kattach): void {
  const state = live.get(k);
  if (state) clearTimeout(state.timer);
}

async function applyWithFallbacks(k: Kattach, reason: string): Promise<void> {
  try {
    await applyNow(k, { reason });
    return;
  } catch (err) {
    k.log(`firewall: cannot apply the configured ruleset: ${(err as Error).message}`);
  }
  const host = k.firewallHost!;
  const confirmed = lastConfirmedGeneration(k.store);
  if (confirmed) {
    try {
      await host.nft.apply(confirmed.ruleset);
      liveOf(k).appliedText = confirmed.ruleset;
      k.log(`firewall: fell back to the last confirmed generation ${confirmed.id}`);
      return;
    } catch (err) {
      k.log(`firewall: generation ${confirmed.id} does not load either: ${(err as Error).message}`);
    }
  }
  const minimal = renderMinimalFirewall(mgmtPortOf(k));
  await host.nft.apply(minimal);
  liveOf(k).appliedText = minimal;
  k.log(`firewall: fell back to the minimal ruleset (TCP ${mgmtPortOf(k)} open, guests closed)`);
}

/** Restores the last confirmed management access; true when that changed the uplink. */
function restoreAccess(k: Kattach, pending: GenerationRow): boolean {
  const confirmed = lastConfirmedGeneration(k.store);
  const now = accessOf(k);
  const back: Access = confirmed
    ? JSON.parse(confirmed.access)
    : { mgmtPort: now.mgmtPort, mgmt: [], inputRules: [], uplink: now.uplink };
  k.store.tx(() => {
    k.store.run("DELETE FROM firewall_mgmt");
    for (const m of back.mgmt) insertMgmt(k.store, m.cidr, m.note, m.addedAt);
    k.store.run("DELETE FROM firewall_rule WHERE chain = 'input'");
    for (const r of back.inputRules) {
      const taken = k.store.get("SELECT id FROM firewall_rule WHERE id = ?", [r.id]);
      insertRule(k.store, taken ? { ...r, id: undefined } : r);
    }
    if (back.uplink !== null && back.uplink !== now.uplink) {
      k.store.setNetworkSettings({ uplink: back.uplink });
    }
    setGenerationState(k.store, pending.id, "rolled-back");
  });
  return back.uplink !== null && back.uplink !== now.uplink;
}

function arm(k: Kattach, id: number, deadline: string): void {
  const state = liveOf(k);
  const ms = Math.max(0, Date.parse(deadline) - Date.now());
  const timer = setTimeout(() => {
    state.timer = undefined;
    if (pendingGeneration(k.store)?.id !== id) return;
    rollbackFirewall(k, "not confirmed in time").catch((err) =>
      k.log(`firewall: rollback failed: ${err instanceof Error ? err.stack : err}`)
    );
  }, ms);
  Deno.unrefTimer(timer);
  state.timer = timer;
}

async function setSysctls(k: Kattach, forwarding: boolean): Promise<void> {
  const nft = k.firewallHost!.nft;
  // Bridged frames stay in the bridge family: they must never meet the inet forward policy.
  for (const key of ["arptables", "iptables", "ip6tables"]) {
    await nft.writeSysctl(`net/bridge/bridge-nf-call-${key}`, "0");
  }
  await nft.writeSysctl("net/ipv4/ip_forward", forwarding ? "1" : "0");
}

function accessOf(k: Kattach): Access {
  return {
    mgmtPort: mgmtPortOf(k),
    mgmt: listMgmt(k.store),
    inputRules: listRules(k.store).filter((r) => r.chain === "input"),
    uplink: uplinkOf(k),
  };
}

function accessKey(a: Access): string {
  return JSON.stringify({
    port: a.mgmtPort,
    mgmt: a.mgmt.map((m) => m.cidr).sort(),
    input: a.inputRules.map((r) => [r.action, r.proto, r.from, r.to, r.port]),
    uplink: a.uplink,
  });
}

/** Before anything was confirmed, the defaults: no sources, no input rules. */
function baselineKey(a: Access): string {
  return accessKey({ ...a, mgmt: [], inputRules: [] });
}

function mgmtPortOf(k: Kattach): number {
  return k.firewallHost?.mgmtPort ?? 1289;
}

function uplinkOf(k: Kattach): string | null {
  return k.store.networkSettings().uplink;
}

function strip(g: GenerationRow): FirewallGeneration {
  const { ruleset: _r, access: _a, ...rest } = g;
  return rest;
}

/** Checks a management source or rule address: an IPv4 CIDR (a bare address means /32). */
export function normalizeCidr(text: string): string {
  const s = text.includes("/") ? text : `${text}/32`;
  const c = parseCidr(s, { minPrefix: 0, maxPrefix: 32 });
  void c;
  return s;
}

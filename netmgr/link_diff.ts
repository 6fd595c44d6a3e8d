/**
 * The difference between the desired links and the host's, as the lines of one `ip -batch`.
 * Only links carrying KaOS' mark (name prefix and `kaos:` alias) are changed or deleted; a
 * foreign link in the way of a desired one is left alone and reported. A host that matches the
 * plan gives no lines, so a second run changes nothing.
 */
import type { DesiredLink, DesiredState } from "./link_plan.ts";
import type { HostLink, HostState } from "./link_state.ts";
import { isKaosLink } from "./names.ts";

/** The lines of the batch and what could not be done as configured. */
export interface LinkDiff {
  /** `ip -batch` lines in order: deletions, bridges, addresses, VLAN links, taps, links up. */
  lines: string[];
  warnings: string[];
}

const DELETE_ORDER: Record<string, number> = { tap: 0, vlan: 1, bridge: 2 };

/** Compares the plan with the host and returns the batch that makes the host match. */
export function diffLinks(want: DesiredState, host: HostState): LinkDiff {
  const warnings: string[] = [];
  const wanted = new Map(want.links.map((l) => [l.name, l]));
  const dels: HostLink[] = [];
  const gone = new Set<string>(); // owned links deleted (and so created afresh)
  for (const h of host.links.values()) {
    if (!isKaosLink(h.name, h.alias ?? undefined)) continue;
    const d = wanted.get(h.name);
    if (!d || !sameKind(d, h)) {
      dels.push(h);
      gone.add(h.name);
    }
  }
  dels.sort((a, b) => order(a) - order(b) || compare(a.name, b.name));
  const lines = dels.map((h) => `link del dev ${h.name}`);

  // A desired link whose name a foreign link holds is skipped, and so is what hangs on it.
  const blocked = new Set<string>();
  for (const d of want.links) {
    const h = host.links.get(d.name);
    if (h && !isKaosLink(h.name, h.alias ?? undefined)) {
      blocked.add(d.name);
      warnings.push(`${d.name} exists and is not KaOS' (no kaos: alias): left alone`);
    }
  }
  const uplink = host.links.get(want.uplink);
  const ups: string[] = [];
  const addrs: string[] = [];
  const phase: Record<DesiredLink["kind"], { creates: string[]; sets: string[] }> = {
    bridge: { creates: [], sets: [] },
    vlan: { creates: [], sets: [] },
    tap: { creates: [], sets: [] },
  };
  for (const d of want.links) {
    if (blocked.has(d.name)) continue;
    if (d.kind !== "bridge" && blocked.has(d.master)) {
      warnings.push(`${d.name} is not attached: its bridge ${d.master} is not KaOS'`);
      continue;
    }
    if (d.kind === "vlan" && !uplink) {
      warnings.push(
        `${d.name} is not created: the uplink ${want.uplink} does not exist (see \`network set --uplink\`)`,
      );
      continue;
    }
    const existing = gone.has(d.name) ? undefined : host.links.get(d.name);
    const p = phase[d.kind];
    if (!existing) {
      p.creates.push(...createLines(d));
      ups.push(`link set dev ${d.name} up`);
      continue;
    }
    p.sets.push(...updateLines(d, existing));
    if (!existing.up) ups.push(`link set dev ${d.name} up`);
  }
  for (const d of want.links) {
    if (d.kind !== "bridge" || blocked.has(d.name)) continue;
    const have = gone.has(d.name) ? [] : host.addresses.get(d.name) ?? [];
    const wantAddrs = want.addresses.get(d.name) ?? [];
    for (const a of have) if (!wantAddrs.includes(a)) addrs.push(`address del ${a} dev ${d.name}`);
    for (const a of wantAddrs) if (!have.includes(a)) addrs.push(`address add ${a} dev ${d.name}`);
  }
  lines.push(
    ...phase.bridge.creates,
    ...phase.bridge.sets,
    ...addrs,
    ...phase.vlan.creates,
    ...phase.vlan.sets,
    ...phase.tap.creates,
    ...phase.tap.sets,
    ...ups,
  );
  return { lines, warnings };
}

/** The text of one `ip -batch` run: one command per line. */
export function renderBatch(lines: readonly string[]): string {
  return lines.length === 0 ? "" : lines.join("\n") + "\n";
}

function sameKind(d: DesiredLink, h: HostLink): boolean {
  if (d.kind !== h.kind) return false;
  if (d.kind === "vlan") return h.parent === d.parent && h.vlanId === d.vlanId;
  return true;
}

function createLines(d: DesiredLink): string[] {
  switch (d.kind) {
    case "bridge":
      return [
        `link add name ${d.name} address ${d.mac} type bridge`,
        `link set dev ${d.name} alias ${d.alias}`,
      ];
    case "vlan":
      return [
        `link add link ${d.parent} name ${d.name} type vlan id ${d.vlanId}`,
        `link set dev ${d.name} alias ${d.alias} master ${d.master}`,
      ];
    case "tap":
      return [
        `tuntap add dev ${d.name} mode tap vnet_hdr${
          d.owner ? ` user ${d.owner.uid} group ${d.owner.gid}` : ""
        }`,
        `link set dev ${d.name} alias ${d.alias} master ${d.master}`,
        ...(d.isolated ? [`link set dev ${d.name} type bridge_slave isolated on`] : []),
      ];
  }
}

function updateLines(d: DesiredLink, h: HostLink): string[] {
  const out: string[] = [];
  const set: string[] = [];
  if (h.alias !== d.alias) set.push(`alias ${d.alias}`);
  if (d.kind === "bridge" && h.mac !== d.mac) set.push(`address ${d.mac}`);
  if (d.kind !== "bridge" && h.master !== d.master) set.push(`master ${d.master}`);
  if (set.length > 0) out.push(`link set dev ${d.name} ${set.join(" ")}`);
  if (d.kind === "tap") {
    const isolated = h.master === d.master ? h.isolated ?? false : false;
    if (isolated !== d.isolated) {
      out.push(`link set dev ${d.name} type bridge_slave isolated ${d.isolated ? "on" : "off"}`);
    }
  }
  return out;
}

function order(h: HostLink): number {
  return DELETE_ORDER[h.kind ?? ""] ?? 3;
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

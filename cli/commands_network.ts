/**
 * One-line commands of host networking: `vlan route add|del|list` and `network set`. They build
 * actions; kattach changes the store and reconciles the host's links.
 */
import type { NetworkApplyResult, NetworkSettings, NetworkStatus, VlanRoute } from "../ipc/mod.ts";
import { cmd, type Command, UsageError } from "./command.ts";
import { fields, table } from "./render.ts";

function renderRoutes(r: unknown): string {
  const routes = r as VlanRoute[];
  if (routes.length === 0) return "No routes between VLANs (each VLAN reaches only itself).\n";
  return table(["VLAN", "VLAN"], routes.map((x) => [x.a, x.b]));
}

function renderSettings(s: NetworkSettings): string {
  return fields([["Uplink", s.uplink], ["DNS", s.dns.join(", ") || "none"]]);
}

function renderApply(a: NetworkApplyResult): string {
  if (a.mode === "user") return "User-mode networking: host links are not managed.\n";
  const head = a.error
    ? `The links were not all applied: ${a.error}\n`
    : a.applied.length === 0
    ? `The host links match the configuration (no change, ${a.milliseconds} ms).\n`
    : `Applied ${a.applied.length} change(s) in ${a.milliseconds} ms:\n`;
  return head + a.applied.map((l) => `  ip ${l}\n`).join("") +
    a.warnings.map((w) => `Warning: ${w}\n`).join("");
}

/** The links KaOS owns on the host, counted by kind; 802.1Q links named with id, parent, bridge. */
function renderLinks(links: NetworkStatus["links"]): string {
  if (links.length === 0) return "none";
  const count = (kind: string) => links.filter((l) => l.kind === kind).length;
  const vlans = links.filter((l) => l.kind === "vlan").map((l) =>
    `${l.name} (802.1Q ${l.vlanId} on ${l.parent ?? "?"}, ${
      l.master ? `in ${l.master}` : "no bridge"
    })`
  );
  const other = links.length - count("bridge") - count("tap") - vlans.length;
  return [
    `${count("bridge")} bridge(s)`,
    `${count("tap")} tap(s)`,
    ...vlans,
    ...(other > 0 ? [`${other} other`] : []),
  ].join(", ");
}

function renderStatus(s: NetworkStatus): string {
  const uplink = s.uplinkPresent === null
    ? s.settings.uplink
    : `${s.settings.uplink} (${s.uplinkPresent ? "present" : "missing"})`;
  const last = s.lastApply;
  return fields([
    ["Mode", s.mode === "bridged" ? "bridged (KaOS manages host links)" : "user-mode (hosted)"],
    ["Uplink", uplink],
    ["DNS", s.settings.dns.join(", ") || "none"],
    ["Routes", s.routes.map((r) => `${r.a}<->${r.b}`).join(", ") || "none"],
    ["Pending", s.pending.length === 0 ? "none (in sync)" : `${s.pending.length} change(s)`],
    ["Links", renderLinks(s.links)],
    [
      "Last apply",
      last
        ? `${last.at} (${last.reason}): ${last.applied.length} change(s)${
          last.error ? `, error: ${last.error}` : ""
        }`
        : "-",
    ],
  ]) +
    (s.vlans.length === 0 ? "No VLANs.\n" : table(
      ["VLAN", "NAME", "BRIDGE", "UPLINK", "HOST ADDRESS", "TAPS", "STATE"],
      s.vlans.map((v) => [
        v.id,
        v.name,
        v.bridge,
        v.vlanLink ? `tagged (${v.vlanLink})` : "none",
        v.hostAddress ?? "-",
        v.taps,
        v.state,
      ]),
    )) +
    s.pending.map((l) => `  pending: ip ${l}\n`).join("") +
    s.warnings.map((w) => `Warning: ${w}\n`).join("");
}

/** Parses `--dns IP[,IP]` (`none` clears); undefined when the flag is absent. */
function dnsFlag(v: string | boolean | undefined): string[] | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== "string" || v === "") {
    throw new UsageError("--dns takes IP[,IP…] (at most 3) or none");
  }
  if (v === "none") return [];
  const ips = v.split(",").map((s) => s.trim());
  if (ips.length > 3 || ips.some((s) => s === "")) {
    throw new UsageError("--dns takes IP[,IP…] (at most 3) or none");
  }
  return ips;
}

/** The network commands. */
export const networkCommands: Command[] = [
  cmd({
    path: ["vlan", "route", "add"],
    summary: "Route between two VLANs (VLANs are isolated from each other by default)",
    args: [{ name: "VLAN" }, { name: "VLAN2" }],
    flags: [],
    build: (p) => ({ action: "vlan.route.add", params: { a: p.args.VLAN!, b: p.args.VLAN2! } }),
    render: (r) => "Added the route.\n" + renderRoutes(r),
  }),
  cmd({
    path: ["vlan", "route", "del"],
    summary: "Stop routing between two VLANs",
    args: [{ name: "VLAN" }, { name: "VLAN2" }],
    flags: [],
    destructive: true,
    build: (p) => ({ action: "vlan.route.del", params: { a: p.args.VLAN!, b: p.args.VLAN2! } }),
    render: (r) => "Deleted the route.\n" + renderRoutes(r),
  }),
  cmd({
    path: ["vlan", "route", "list"],
    summary: "List routes between VLANs",
    args: [],
    flags: [],
    build: () => ({ action: "vlan.route.list", params: {} }),
    render: renderRoutes,
  }),
  cmd({
    path: ["network", "set"],
    summary: "Set the host's uplink interface and the DNS servers given to guests",
    args: [],
    flags: [
      { name: "uplink", value: "IFACE", help: "the host's uplink (default eth0)" },
      { name: "dns", value: "IP[,IP]", help: "DNS servers for guests (none clears)" },
    ],
    build(p) {
      const dns = dnsFlag(p.flags.dns);
      if (p.flags.uplink === undefined && dns === undefined) {
        throw new UsageError("nothing to change: give --uplink or --dns");
      }
      return {
        action: "network.set",
        params: { uplink: p.flags.uplink as string | undefined, dns },
      };
    },
    render(r) {
      const s = r as NetworkSettings & { warnings: string[] };
      return "Changed the network settings.\n" + renderSettings(s) +
        s.warnings.map((w) => `Warning: ${w}\n`).join("");
    },
  }),
  cmd({
    path: ["network", "status"],
    summary: "Show the host network: mode, uplink, each VLAN's switch and pending changes",
    args: [],
    flags: [],
    build: () => ({ action: "network.status", params: {} }),
    render: (r) => renderStatus(r as NetworkStatus),
  }),
  cmd({
    path: ["network", "apply"],
    summary: "Reconcile the host links with the configuration now (normally automatic)",
    args: [],
    flags: [],
    build: () => ({ action: "network.apply", params: {} }),
    render: (r) => renderApply(r as NetworkApplyResult),
  }),
];

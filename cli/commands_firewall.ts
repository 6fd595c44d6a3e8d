/**
 * One-line commands of the firewall: `firewall mgmt|forward|rule …`, `firewall show|status|confirm`.
 */
import type {
  FirewallApplied,
  FirewallGeneration,
  FirewallStatus,
  MgmtSource,
  PublishedPort,
  UserRule,
} from "../ipc/mod.ts";
import type { Command, Parsed } from "./command.ts";
import { cmd, intArg, PAGE_FLAGS, pageParams, UsageError } from "./command.ts";
import { fields, table } from "./render.ts";

const str = (v: string | boolean | undefined) => (typeof v === "string" ? v : undefined);

function confirmWithin(p: Parsed): number | undefined {
  const v = p.flags["confirm-within"];
  return v === undefined ? undefined : intArg(v as string, "--confirm-within");
}

function oneOf<T extends string>(
  v: string | boolean | undefined,
  name: string,
  allowed: T[],
): T | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== "string" || !allowed.includes(v as T)) {
    const choices = `${allowed.slice(0, -1).join(", ")} or ${allowed.at(-1)}`;
    throw new UsageError(`--${name} takes ${choices}, not ${JSON.stringify(v)}`);
  }
  return v as T;
}

const CONFIRM_FLAG = {
  name: "confirm-within",
  value: "S",
  help: "seconds to `firewall confirm` a management-access change (default 60)",
};

function renderApplied(a: FirewallApplied): string {
  return `${a.message}\n` + a.warnings.map((w) => `Warning: ${w}\n`).join("");
}

function generationText(g: FirewallGeneration | null): string {
  if (!g) return "none";
  const when = g.state === "pending" ? `, rolled back at ${g.deadline} unless confirmed` : "";
  return `${g.id} (${g.state}${when}; ${g.reason}; ${g.appliedAt})`;
}

const MGMT_HEAD = ["SOURCE", "NOTE", "ADDED"];
const mgmtRows = (ms: MgmtSource[]) => ms.map((m) => [m.cidr, m.note || "-", m.addedAt]);
const forwardRow = (
  f: PublishedPort,
) => [f.id, f.proto, f.hostPort, `${f.instance}:${f.guestPort}`, f.ip ?? "(no VLAN address)"];
const FORWARD_HEAD = ["ID", "PROTO", "HOST PORT", "TO", "ADDRESS"];
const ruleRow = (r: UserRule) => [
  r.id,
  r.chain,
  r.action,
  r.proto ?? "any",
  r.from ?? "any",
  r.to ?? "any",
  r.port ?? "-",
  r.note || "-",
];
const RULE_HEAD = ["ID", "CHAIN", "ACTION", "PROTO", "FROM", "TO", "PORT", "NOTE"];

/** The firewall one-line commands. */
export const firewallCommands: Command[] = [
  cmd({
    path: ["firewall", "mgmt", "add"],
    summary: "Allow a source to reach the AppQueue CLI (TCP 1289); commit-confirmed",
    args: [{ name: "CIDR" }],
    flags: [{ name: "note", value: "TEXT", help: "what the source is" }, CONFIRM_FLAG],
    build: (p) => ({
      action: "firewall.mgmt.add",
      params: { cidr: p.args.CIDR!, note: str(p.flags.note), confirmWithin: confirmWithin(p) },
    }),
    render(r) {
      const x = r as { mgmt: MgmtSource[]; applied: FirewallApplied };
      return table(MGMT_HEAD, mgmtRows(x.mgmt)) + renderApplied(x.applied);
    },
  }),
  cmd({
    path: ["firewall", "mgmt", "del"],
    summary: "Remove a management source; commit-confirmed",
    args: [{ name: "CIDR" }],
    flags: [CONFIRM_FLAG],
    destructive: true,
    build: (p) => ({
      action: "firewall.mgmt.del",
      params: { cidr: p.args.CIDR!, confirmWithin: confirmWithin(p) },
    }),
    render(r) {
      const x = r as { mgmt: MgmtSource[]; applied: FirewallApplied };
      return table(MGMT_HEAD, mgmtRows(x.mgmt)) + renderApplied(x.applied);
    },
  }),
  cmd({
    path: ["firewall", "mgmt", "list"],
    summary: "List the management sources (none: any source outside the guest VLANs)",
    args: [],
    flags: [],
    build: () => ({ action: "firewall.mgmt.list", params: {} }),
    render: (r) => table(MGMT_HEAD, mgmtRows(r as MgmtSource[])),
  }),
  cmd({
    path: ["firewall", "forward", "add"],
    summary: "Publish an instance's port on the host",
    args: [{ name: "INSTANCE" }, { name: "GUEST-PORT" }],
    flags: [
      { name: "host-port", value: "N", help: "the host's port (default: the guest port)" },
      { name: "proto", value: "tcp|udp", help: "default tcp" },
    ],
    build: (p) => ({
      action: "firewall.forward.add",
      params: {
        instance: p.args.INSTANCE!,
        guestPort: intArg(p.args["GUEST-PORT"], "GUEST-PORT"),
        hostPort: p.flags["host-port"] === undefined
          ? undefined
          : intArg(p.flags["host-port"] as string, "--host-port"),
        proto: oneOf(p.flags.proto, "proto", ["tcp", "udp"]),
      },
    }),
    render(r) {
      const x = r as { forward: PublishedPort; applied: FirewallApplied };
      return table(FORWARD_HEAD, [forwardRow(x.forward)]) + renderApplied(x.applied);
    },
  }),
  cmd({
    path: ["firewall", "forward", "list"],
    summary: "List published ports",
    args: [],
    flags: PAGE_FLAGS,
    pageable: true,
    build: (p) => ({ action: "firewall.forward.list", params: pageParams(p) }),
    render: (r) => table(FORWARD_HEAD, (r as PublishedPort[]).map(forwardRow)),
  }),
  cmd({
    path: ["firewall", "forward", "del"],
    summary: "Stop publishing a port (by its id)",
    args: [{ name: "ID" }],
    flags: [],
    destructive: true,
    build: (p) => ({ action: "firewall.forward.del", params: { id: intArg(p.args.ID, "ID") } }),
    render(r) {
      const x = r as { deleted: string; applied: FirewallApplied };
      return `Deleted ${x.deleted}.\n` + renderApplied(x.applied);
    },
  }),
  cmd({
    path: ["firewall", "rule", "add"],
    summary: "Add a rule before the defaults of the input or forward chain",
    args: [],
    flags: [
      {
        name: "chain",
        value: "input|forward",
        required: true,
        help: "input: to the host; forward: through it",
      },
      {
        name: "action",
        value: "accept|drop|reject",
        required: true,
        help: "what to do with a match",
      },
      { name: "proto", value: "tcp|udp|icmp", help: "default any" },
      { name: "from", value: "CIDR|vlan:ID", help: "source (default any)" },
      { name: "to", value: "CIDR|vlan:ID|INSTANCE", help: "destination (default any)" },
      { name: "port", value: "N[-M]", help: "destination port(s), with --proto tcp|udp" },
      { name: "note", value: "TEXT", help: "why the rule exists" },
      CONFIRM_FLAG,
    ],
    build(p) {
      const chain = oneOf(p.flags.chain, "chain", ["input", "forward"]);
      const action = oneOf(p.flags.action, "action", ["accept", "drop", "reject"]);
      if (!chain || !action) throw new UsageError("--chain and --action are required");
      return {
        action: "firewall.rule.add",
        params: {
          chain,
          action,
          proto: oneOf(p.flags.proto, "proto", ["tcp", "udp", "icmp"]),
          from: str(p.flags.from),
          to: str(p.flags.to),
          port: str(p.flags.port),
          note: str(p.flags.note),
          confirmWithin: confirmWithin(p),
        },
      };
    },
    render(r) {
      const x = r as { rule: UserRule; applied: FirewallApplied };
      return table(RULE_HEAD, [ruleRow(x.rule)]) + renderApplied(x.applied);
    },
  }),
  cmd({
    path: ["firewall", "rule", "list"],
    summary: "List user rules in the order they apply",
    args: [],
    flags: [],
    build: () => ({ action: "firewall.rule.list", params: {} }),
    render: (r) => table(RULE_HEAD, (r as UserRule[]).map(ruleRow)),
  }),
  cmd({
    path: ["firewall", "rule", "del"],
    summary: "Delete a user rule (by its id); commit-confirmed for input rules",
    args: [{ name: "ID" }],
    flags: [CONFIRM_FLAG],
    destructive: true,
    build: (p) => ({
      action: "firewall.rule.del",
      params: { id: intArg(p.args.ID, "ID"), confirmWithin: confirmWithin(p) },
    }),
    render(r) {
      const x = r as { deleted: string; applied: FirewallApplied };
      return `Deleted ${x.deleted}.\n` + renderApplied(x.applied);
    },
  }),
  cmd({
    path: ["firewall", "show"],
    summary: "Print the ruleset rendered from the configuration (nftables text)",
    args: [],
    flags: [],
    build: () => ({ action: "firewall.show", params: {} }),
    render(r) {
      const x = r as { text: string; warnings: string[] };
      return x.text + x.warnings.map((w) => `# Warning: ${w}\n`).join("");
    },
  }),
  cmd({
    path: ["firewall", "status"],
    summary: "Show the generation in force, pending confirmation, warnings and counters",
    args: [],
    flags: [],
    build: () => ({ action: "firewall.status", params: {} }),
    render(r) {
      const s = r as FirewallStatus;
      return fields([
        ["Managed", s.managed ? "yes" : "no (user-mode networking: the host is left alone)"],
        ["Generation", generationText(s.current)],
        ["Last confirmed", generationText(s.lastConfirmed)],
        [
          "Management",
          `TCP ${s.mgmtPort} from ${
            s.mgmt.map((m) => m.cidr).join(", ") || "any source outside the guest VLANs"
          }`,
        ],
        ["Published ports", s.forwards],
        ["User rules", s.rules],
        [
          "Counters",
          Object.entries(s.counters).map(([k, v]) => `${k}=${v}`).join(" ") || "-",
        ],
      ]) + s.warnings.map((w) => `Warning: ${w}\n`).join("");
    },
  }),
  cmd({
    path: ["firewall", "confirm"],
    summary: "Keep the pending firewall change (from a connection opened after it)",
    args: [],
    flags: [],
    build: () => ({ action: "firewall.confirm", params: {} }),
    render: (r) => `Confirmed generation ${(r as FirewallGeneration).id}.\n`,
  }),
];

/**
 * Firewall actions: management sources, published ports, user rules, the rendered ruleset, its
 * generations and commit-confirmed. Spread into the registry in actions.ts.
 */
import { z } from "zod";
import { lazySchema } from "../lib/lazy_schema.ts";
import { InstanceName, ListWindow } from "./schemas.ts";

const None = lazySchema(() => z.strictObject({}));
const Port = lazySchema(() =>
  z.number().int().min(1, "ports run from 1 to 65535").max(
    65535,
    "ports run from 1 to 65535",
  )
);
/** Seconds a management-access change waits for `firewall confirm` before it is rolled back. */
const ConfirmWithin = lazySchema(() =>
  z.number().int().min(10, "--confirm-within takes 10 to 3600 seconds").max(
    3600,
    "--confirm-within takes 10 to 3600 seconds",
  )
);
/** Free text stored with a rule or source; printable, no quotes (it ends up in the ruleset). */
const Note = lazySchema(() =>
  z.string().max(120).regex(
    /^[ -!#-[\]-~]*$/,
    "notes are at most 120 printable characters without quotes or backslashes",
  )
);

/** A management source: who may reach the AppQueue CLI's port. */
export const MgmtSource = lazySchema(() =>
  z.strictObject({
    cidr: z.string(),
    note: z.string(),
    addedAt: z.string(),
  })
);
export type MgmtSource = z.infer<typeof MgmtSource>;

/** A published port: host port → an instance's address and port. */
export const PublishedPort = lazySchema(() =>
  z.strictObject({
    id: z.number().int(),
    instance: z.string(),
    proto: z.enum(["tcp", "udp"]),
    hostPort: Port,
    guestPort: Port,
    /** The instance's address the port goes to (null: it has none on a VLAN now). */
    ip: z.string().nullable(),
    createdAt: z.string(),
  })
);
export type PublishedPort = z.infer<typeof PublishedPort>;

/** A user rule as the operator wrote it. */
export const UserRule = lazySchema(() =>
  z.strictObject({
    id: z.number().int(),
    chain: z.enum(["input", "forward"]),
    action: z.enum(["accept", "drop", "reject"]),
    proto: z.enum(["tcp", "udp", "icmp"]).nullable(),
    /** A CIDR or `vlan:ID`. */
    from: z.string().nullable(),
    /** A CIDR, `vlan:ID` or an instance name. */
    to: z.string().nullable(),
    /** `N` or `N-M`. */
    port: z.string().nullable(),
    note: z.string(),
    createdAt: z.string(),
  })
);
export type UserRule = z.infer<typeof UserRule>;

/** One applied ruleset. */
export const FirewallGeneration = lazySchema(() =>
  z.strictObject({
    id: z.number().int(),
    state: z.enum(["pending", "confirmed", "superseded", "rolled-back"]),
    reason: z.string(),
    appliedAt: z.string(),
    /** When a pending generation is rolled back unless confirmed. */
    deadline: z.string().nullable(),
    confirmedAt: z.string().nullable(),
  })
);
export type FirewallGeneration = z.infer<typeof FirewallGeneration>;

/** What applying the firewall after a change did. */
export const FirewallApplied = lazySchema(() =>
  z.strictObject({
    /** false: the host's ruleset was left alone (user-mode networking) or nothing changed. */
    applied: z.boolean(),
    /** The generation now in force, or null. */
    generation: FirewallGeneration.nullable(),
    message: z.string(),
    warnings: z.array(z.string()),
  })
);
export type FirewallApplied = z.infer<typeof FirewallApplied>;

/** What `firewall status` shows. */
export const FirewallStatus = lazySchema(() =>
  z.strictObject({
    /** Whether kattach manages the host's ruleset (bridged networking). */
    managed: z.boolean(),
    current: FirewallGeneration.nullable(),
    lastConfirmed: FirewallGeneration.nullable(),
    warnings: z.array(z.string()),
    mgmtPort: z.number().int(),
    mgmt: z.array(MgmtSource),
    forwards: z.number().int(),
    rules: z.number().int(),
    /** Named counters of table inet kaos and table bridge kaos ("inet/input_drop": packets). */
    counters: z.record(z.string(), z.number()),
  })
);
export type FirewallStatus = z.infer<typeof FirewallStatus>;

/** The firewall actions: name → a builder of its schemas (actions.ts builds each at first use). */
export const firewallActions = {
  "firewall.mgmt.add": () => ({
    params: z.strictObject({
      cidr: z.string().max(64),
      note: Note.optional(),
      confirmWithin: ConfirmWithin.optional(),
    }),
    result: z.strictObject({ mgmt: z.array(MgmtSource), applied: FirewallApplied }),
  }),
  "firewall.mgmt.del": () => ({
    params: z.strictObject({ cidr: z.string().max(64), confirmWithin: ConfirmWithin.optional() }),
    result: z.strictObject({ mgmt: z.array(MgmtSource), applied: FirewallApplied }),
  }),
  "firewall.mgmt.list": () => ({ params: None, result: z.array(MgmtSource) }),
  "firewall.forward.add": () => ({
    params: z.strictObject({
      instance: InstanceName,
      guestPort: Port,
      hostPort: Port.optional(),
      proto: z.enum(["tcp", "udp"]).optional(),
    }),
    result: z.strictObject({ forward: PublishedPort, applied: FirewallApplied }),
  }),
  "firewall.forward.list": () => ({
    params: z.strictObject(ListWindow),
    result: z.array(PublishedPort),
  }),
  "firewall.forward.del": () => ({
    params: z.strictObject({ id: z.number().int().min(1) }),
    result: z.strictObject({ deleted: z.string(), applied: FirewallApplied }),
  }),
  "firewall.rule.add": () => ({
    params: z.strictObject({
      chain: z.enum(["input", "forward"]),
      action: z.enum(["accept", "drop", "reject"]),
      proto: z.enum(["tcp", "udp", "icmp"]).optional(),
      from: z.string().max(64).optional(),
      to: z.string().max(64).optional(),
      port: z.string().max(11).optional(),
      note: Note.optional(),
      confirmWithin: ConfirmWithin.optional(),
    }),
    result: z.strictObject({ rule: UserRule, applied: FirewallApplied }),
  }),
  "firewall.rule.list": () => ({ params: None, result: z.array(UserRule) }),
  "firewall.rule.del": () => ({
    params: z.strictObject({
      id: z.number().int().min(1),
      confirmWithin: ConfirmWithin.optional(),
    }),
    result: z.strictObject({ deleted: z.string(), applied: FirewallApplied }),
  }),
  "firewall.show": () => ({
    params: None,
    result: z.strictObject({ text: z.string(), warnings: z.array(z.string()) }),
  }),
  "firewall.status": () => ({ params: None, result: FirewallStatus }),
  "firewall.confirm": () => ({ params: None, result: FirewallGeneration }),
} as const;

/**
 * The store extension of the firewall (migration 6): management sources, published ports, user
 * rules and the applied ruleset generations (numbered, text kept, pending with a deadline until
 * confirmed).
 */
import {
  type FirewallGeneration,
  type MgmtSource,
  type PublishedPort,
  type UserRule,
} from "../ipc/mod.ts";
import { likeContains, type ListPage, type Row, type Store } from "./store.ts";

function now(): string {
  return new Date().toISOString();
}

const str = (v: unknown) => (v === null || v === undefined ? null : String(v));

// ---- management sources ----

/** Management sources, by address. */
export function listMgmt(store: Store): MgmtSource[] {
  return store.all("SELECT * FROM firewall_mgmt ORDER BY cidr").map((r) => ({
    cidr: String(r.cidr),
    note: String(r.note),
    addedAt: String(r.added_at),
  }));
}

/** Adds a management source. */
export function insertMgmt(store: Store, cidr: string, note: string, addedAt = now()): void {
  store.run("INSERT INTO firewall_mgmt (cidr, note, added_at) VALUES (?, ?, ?)", [
    cidr,
    note,
    addedAt,
  ]);
}

/** Removes a management source; false when there was none. */
export function deleteMgmt(store: Store, cidr: string): boolean {
  const had = store.get("SELECT cidr FROM firewall_mgmt WHERE cidr = ?", [cidr]) !== undefined;
  store.run("DELETE FROM firewall_mgmt WHERE cidr = ?", [cidr]);
  return had;
}

// ---- published ports ----

/**
 * Published ports, by id, with the instance's current address (first NIC on a VLAN); a page of
 * them, `filter` matching a part of the instance's name.
 */
export function listForwards(store: Store, page: ListPage = {}): PublishedPort[] {
  return store.all(
    `SELECT f.*, (SELECT ip FROM nic WHERE nic.instance = f.instance AND ip IS NOT NULL
                  AND vlan IS NOT NULL ORDER BY idx LIMIT 1) AS ip
       FROM firewall_forward f WHERE ?3 IS NULL OR f.instance LIKE ?3 ESCAPE '\\'
       ORDER BY f.id LIMIT ?1 OFFSET ?2`,
    [page.limit ?? -1, page.offset ?? 0, likeContains(page.filter)],
  ).map((r) => ({
    id: Number(r.id),
    instance: String(r.instance),
    proto: String(r.proto) as PublishedPort["proto"],
    hostPort: Number(r.host_port),
    guestPort: Number(r.guest_port),
    ip: str(r.ip),
    createdAt: String(r.created_at),
  }));
}

/** Adds a published port; returns its id. */
export function insertForward(
  store: Store,
  f: { instance: string; proto: "tcp" | "udp"; hostPort: number; guestPort: number },
): number {
  store.run(
    "INSERT INTO firewall_forward (instance, proto, host_port, guest_port, created_at) VALUES (?, ?, ?, ?, ?)",
    [f.instance, f.proto, f.hostPort, f.guestPort, now()],
  );
  return Number(store.get("SELECT last_insert_rowid() AS id")!.id);
}

/** Removes a published port; false when there was none. */
export function deleteForward(store: Store, id: number): boolean {
  const had = store.get("SELECT id FROM firewall_forward WHERE id = ?", [id]) !== undefined;
  store.run("DELETE FROM firewall_forward WHERE id = ?", [id]);
  return had;
}

// ---- user rules ----

/** A user rule as stored (with its id), for writing back on rollback. */
export type RuleRow = UserRule;

/** User rules in order (their id is their position). */
export function listRules(store: Store): UserRule[] {
  return store.all("SELECT * FROM firewall_rule ORDER BY id").map(ruleFromRow);
}

/** Adds a user rule (with `id` when restoring one); returns its id. */
export function insertRule(
  store: Store,
  r: Omit<UserRule, "id" | "createdAt"> & {
    id?: number;
    createdAt?: string;
  },
): number {
  const [pf, pt] = r.port === null ? [null, null] : r.port.split("-").map(Number);
  store.run(
    "INSERT INTO firewall_rule (id, chain, action, proto, src, dst, port_from, port_to, note, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    [
      r.id ?? null,
      r.chain,
      r.action,
      r.proto,
      r.from,
      r.to,
      pf,
      pt ?? pf,
      r.note,
      r.createdAt ?? now(),
    ],
  );
  return Number(store.get("SELECT last_insert_rowid() AS id")!.id);
}

/** Removes a user rule; false when there was none. */
export function deleteRule(store: Store, id: number): boolean {
  const had = store.get("SELECT id FROM firewall_rule WHERE id = ?", [id]) !== undefined;
  store.run("DELETE FROM firewall_rule WHERE id = ?", [id]);
  return had;
}

function ruleFromRow(r: Row): UserRule {
  const pf = r.port_from === null ? null : Number(r.port_from);
  const pt = r.port_to === null ? pf : Number(r.port_to);
  return {
    id: Number(r.id),
    chain: String(r.chain) as UserRule["chain"],
    action: String(r.action) as UserRule["action"],
    proto: str(r.proto) as UserRule["proto"],
    from: str(r.src),
    to: str(r.dst),
    port: pf === null ? null : pf === pt ? String(pf) : `${pf}-${pt}`,
    note: String(r.note),
    createdAt: String(r.created_at),
  };
}

// ---- generations ----

/** A generation with its ruleset text and the management-access configuration it carried. */
export interface GenerationRow extends FirewallGeneration {
  ruleset: string;
  /** JSON of the management-access configuration (restored when a later one is rolled back). */
  access: string;
}

function generationFromRow(r: Row): GenerationRow {
  return {
    id: Number(r.id),
    state: String(r.state) as FirewallGeneration["state"],
    reason: String(r.reason),
    appliedAt: String(r.applied_at),
    deadline: str(r.deadline),
    confirmedAt: str(r.confirmed_at),
    ruleset: String(r.ruleset),
    access: String(r.access),
  };
}

/** Records an applied ruleset; returns its number. */
export function insertGeneration(
  store: Store,
  g: {
    state: "pending" | "confirmed";
    reason: string;
    ruleset: string;
    access: string;
    deadline: string | null;
  },
): number {
  const t = now();
  store.run(
    "INSERT INTO firewall_generation (state, reason, ruleset, access, applied_at, deadline, confirmed_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
    [g.state, g.reason, g.ruleset, g.access, t, g.deadline, g.state === "confirmed" ? t : null],
  );
  return Number(store.get("SELECT last_insert_rowid() AS id")!.id);
}

/** Changes a generation's state (confirming stamps confirmed_at). */
export function setGenerationState(
  store: Store,
  id: number,
  state: FirewallGeneration["state"],
): void {
  store.run(
    "UPDATE firewall_generation SET state = ?, confirmed_at = CASE WHEN ? = 'confirmed' THEN ? ELSE confirmed_at END WHERE id = ?",
    [state, state, now(), id],
  );
}

/** The newest generation, or undefined. */
export function latestGeneration(store: Store): GenerationRow | undefined {
  const r = store.get("SELECT * FROM firewall_generation ORDER BY id DESC LIMIT 1");
  return r && generationFromRow(r);
}

/** The newest confirmed generation, or undefined. */
export function lastConfirmedGeneration(store: Store): GenerationRow | undefined {
  const r = store.get(
    "SELECT * FROM firewall_generation WHERE state = 'confirmed' ORDER BY id DESC LIMIT 1",
  );
  return r && generationFromRow(r);
}

/** The pending generation, or undefined. */
export function pendingGeneration(store: Store): GenerationRow | undefined {
  const r = store.get(
    "SELECT * FROM firewall_generation WHERE state = 'pending' ORDER BY id DESC LIMIT 1",
  );
  return r && generationFromRow(r);
}

/** Keeps the newest `keep` generations (and every confirmed one among the last kept). */
export function pruneGenerations(store: Store, keep = 50): void {
  store.run(
    `DELETE FROM firewall_generation WHERE id <= (SELECT MAX(id) FROM firewall_generation) - ?
       AND id <> COALESCE((SELECT MAX(id) FROM firewall_generation WHERE state = 'confirmed'), 0)`,
    [keep],
  );
}

/**
 * The configuration store: the only code that opens the SQLite database. WAL with
 * synchronous=FULL, foreign keys on, numbered migrations, one writer, every write a transaction.
 */
import {
  DatabaseSync,
  type SQLInputValue,
  type SQLOutputValue,
  type StatementSync,
} from "node:sqlite";
import {
  ConfigGroup,
  Instance,
  InstanceState,
  Module,
  type ModuleFile,
  NetworkSettings,
  Nic,
  type StoreCheck,
  Vlan,
  VlanRoute,
  VmImage,
} from "../ipc/schemas.ts";
import { broadcast, parseCidr } from "../netmgr/mod.ts";
import { type Migration, migrations } from "./migrations.ts";

/** A row as node:sqlite returns it. */
export type Row = Record<string, SQLInputValue>;

/** The configuration database of one KaOS host. */
/** The most prepared statements the store keeps (its SQL texts are a fixed set, well below). */
const MAX_CACHED_STATEMENTS = 500;
/** The most parsed modules kept (an appliance has a handful; stale versions drop out at a clear). */
const MAX_CACHED_MODULES = 64;

/** `value` and everything in it frozen. */
function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === "object" && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}

export class Store {
  #db: DatabaseSync;
  /**
   * Prepared statements by SQL text, reused: preparing one per query left thousands of native
   * statements waiting for the garbage collector (kattach's RSS grew under load; tests/soak_test.ts).
   */
  #statements = new Map<string, StatementSync>();
  /** Modules parsed from their rows, by the rows' content ({@linkcode Store.#moduleFromRow}). */
  #modules = new Map<string, Module>();
  #inTx = false;
  #refusal: Error | undefined;
  #integrity: StoreCheck | undefined;

  #path: string;

  private constructor(db: DatabaseSync, path: string) {
    this.#db = db;
    this.#path = path;
  }

  /**
   * Opens (creating if needed) the database at `path` and brings its schema up to date: every
   * pending migration in one transaction (one durable commit; a failing one leaves the database
   * as it was). `migrations` replaces the schema's list (tests only).
   */
  static open(path: string, options: { migrations?: readonly Migration[] } = {}): Store {
    // Only kattach reads the configuration (it holds password hashes and the subscription key):
    // the file is 0600 before SQLite opens it, and SQLite gives its -wal and -shm the same mode.
    try {
      Deno.writeFileSync(path, new Uint8Array(), { createNew: true, mode: 0o600 });
    } catch (err) {
      if (!(err instanceof Deno.errors.AlreadyExists)) throw err;
    }
    for (const f of [path, `${path}-wal`, `${path}-shm`]) {
      try {
        Deno.chmodSync(f, 0o600);
      } catch { /* not there (yet) */ }
    }
    const db = new DatabaseSync(path);
    db.exec("PRAGMA journal_mode = WAL");
    db.exec("PRAGMA synchronous = FULL");
    db.exec("PRAGMA foreign_keys = ON");
    db.exec("PRAGMA busy_timeout = 5000");
    const store = new Store(db, path);
    try {
      store.#migrate(options.migrations ?? migrations);
    } catch (err) {
      store.close();
      throw err;
    }
    return store;
  }

  /** The schema version the database is at. */
  schemaVersion(): number {
    const row = this.#prepare("SELECT MAX(version) AS v FROM schema_migration").get() as
      | { v: number | null }
      | undefined;
    return row?.v ?? 0;
  }

  /**
   * SQLite's integrity check of the whole database: "ok" or what is wrong. It reads every page,
   * so it runs at start and on demand (`system check`); its result is kept with its time.
   */
  integrityCheck(): StoreCheck {
    const t0 = performance.now();
    const integrity = this.all("PRAGMA integrity_check").map((r) => String(r.integrity_check))
      .join("; ");
    this.#integrity = {
      integrity,
      checkedAt: now(),
      durationMs: Math.round((performance.now() - t0) * 10) / 10,
    };
    return this.#integrity;
  }

  /** The last integrity check's result (one is run now if none was). */
  lastIntegrityCheck(): StoreCheck {
    return this.#integrity ?? this.integrityCheck();
  }

  /**
   * From now on every write throws `error` (a UserError for the operator): the appliance does
   * this when its data partition is unusable, so no change is accepted that would be lost.
   */
  refuseWrites(error: Error): void {
    this.#refusal = error;
  }

  /**
   * Runs `fn` in one write transaction; any throw rolls everything back. `fn` must not await.
   * `durable: false` commits without waiting for the disk (synchronous = NORMAL for this commit;
   * the next durable commit syncs it along, WAL frames being in order): for runtime facts of
   * guests (a start's state, pid, health), which a power loss makes moot anyway (every QEMU is
   * gone; kattach settles each instance at its next start). Still atomic and consistent.
   */
  tx<T>(fn: () => T, options: { durable?: boolean } = {}): T {
    if (this.#inTx) throw new Error("nested transaction");
    if (this.#refusal) throw this.#refusal;
    const light = options.durable === false;
    if (light) this.#db.exec("PRAGMA synchronous = NORMAL");
    try {
      this.#db.exec("BEGIN IMMEDIATE");
      this.#inTx = true;
      try {
        const result = fn();
        if (result instanceof Promise) throw new Error("a transaction body must be synchronous");
        this.#db.exec("COMMIT");
        return result;
      } catch (err) {
        this.#db.exec("ROLLBACK");
        throw err;
      } finally {
        this.#inTx = false;
      }
    } finally {
      if (light) this.#db.exec("PRAGMA synchronous = FULL");
    }
  }

  /**
   * Waits until every transaction committed so far is on the disk, off the JS thread: an
   * fdatasync of the write-ahead log (what `synchronous = FULL` does at each commit; the WAL
   * frames of a `durable: false` commit are written, not synced). A deploy commits its records
   * so and syncs them while its QEMUs start, and answers only once this resolves (issue 13).
   */
  async sync(): Promise<void> {
    const wal = await Deno.open(`${this.#path}-wal`, { read: true });
    try {
      await wal.syncData();
    } finally {
      wal.close();
    }
  }

  #prepare(sql: string): StatementSync {
    let statement = this.#statements.get(sql);
    if (!statement) {
      if (this.#statements.size >= MAX_CACHED_STATEMENTS) this.#statements.clear();
      statement = this.#db.prepare(sql);
      this.#statements.set(sql, statement);
    }
    return statement;
  }

  /**
   * All rows of a query as arrays of column values, for lists of thousands: node:sqlite builds an
   * array per row about twice as fast as an object (10,000 instances: 20-24 against 44-62 ms at
   * load 6). Its statements are cached apart from the object-row ones (the mode is per statement).
   */
  #rows(sql: string, params: SQLInputValue[] = []): SQLOutputValue[][] {
    const key = `arrays:${sql}`;
    let statement = this.#statements.get(key);
    if (!statement) {
      if (this.#statements.size >= MAX_CACHED_STATEMENTS) this.#statements.clear();
      statement = this.#db.prepare(sql);
      // Deno 2.9's node:sqlite has it; its bundled Node types do not declare it yet.
      (statement as StatementSync & { setReturnArrays(on: boolean): void }).setReturnArrays(true);
      this.#statements.set(key, statement);
    }
    return statement.all(...params) as unknown as SQLOutputValue[][];
  }

  /** Closes the database. */
  /**
   * Gives the memory SQLite holds for this connection (its page cache, up to cache_size's 2 MiB)
   * back to malloc: kattach's idle-time reducer (lib/idle_memory.ts) runs it once quiet; the next
   * query reads its pages from the kernel's page cache again.
   */
  releaseMemory(): void {
    this.#db.exec("PRAGMA shrink_memory");
  }

  close(): void {
    this.#statements.clear();
    this.#db.close();
  }

  /**
   * Applies the pending migrations in order, all in one transaction: one fsync at a first boot
   * instead of one per migration; any failure rolls back to the schema as it was.
   */
  #migrate(list: readonly Migration[]): void {
    const pending = (applied: Set<number>) =>
      [...list].filter((m) => !applied.has(m.version)).sort((a, b) => a.version - b.version);
    const appliedNow = () =>
      new Set(this.all("SELECT version FROM schema_migration").map((r) => Number(r.version)));
    // Up to date (every start after the first): a read, no write transaction.
    const hasTable = this.get(
      "SELECT 1 AS x FROM sqlite_schema WHERE type = 'table' AND name = 'schema_migration'",
    );
    if (hasTable && pending(appliedNow()).length === 0) return;
    this.tx(() => {
      this.#db.exec(
        "CREATE TABLE IF NOT EXISTS schema_migration (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)",
      );
      for (const m of pending(appliedNow())) {
        try {
          this.#db.exec(m.sql);
        } catch (err) {
          throw new Error(
            `Migration ${m.version} (${m.name}) failed: ${
              err instanceof Error ? err.message : err
            }`,
            {
              cause: err,
            },
          );
        }
        this.#run("INSERT INTO schema_migration (version, name, applied_at) VALUES (?, ?, ?)", [
          m.version,
          m.name,
          now(),
        ]);
      }
    });
  }

  /** Runs one statement. For kattach's store extensions (kattach/store_*.ts) only. */
  run(sql: string, params: SQLInputValue[] = []): void {
    if (this.#refusal && !this.#inTx) throw this.#refusal;
    this.#prepare(sql).run(...params);
  }

  /** All rows of a query. For kattach's store extensions (kattach/store_*.ts) only. */
  all(sql: string, params: SQLInputValue[] = []): Row[] {
    return this.#prepare(sql).all(...params) as Row[];
  }

  /** The first row of a query. For kattach's store extensions (kattach/store_*.ts) only. */
  get(sql: string, params: SQLInputValue[] = []): Row | undefined {
    return this.#prepare(sql).get(...params) as Row | undefined;
  }

  #run(sql: string, params: SQLInputValue[] = []): void {
    this.run(sql, params);
  }

  #all(sql: string, params: SQLInputValue[] = []): Row[] {
    return this.all(sql, params);
  }

  #get(sql: string, params: SQLInputValue[] = []): Row | undefined {
    return this.get(sql, params);
  }

  #count(sql: string, params: SQLInputValue[] = []): number {
    return Number(this.#get(sql, params)?.n ?? 0);
  }

  // ---- settings ----

  /** A setting's value, or undefined. */
  getSetting(key: string): string | undefined {
    const row = this.#get("SELECT value FROM setting WHERE key = ?", [key]);
    return row === undefined ? undefined : String(row.value);
  }

  /** Sets a setting. */
  setSetting(key: string, value: string): void {
    this.#run(
      "INSERT INTO setting (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
      [key, value],
    );
  }

  // ---- VLANs ----

  /** Adds a VLAN. */
  insertVlan(v: Omit<Vlan, "createdAt">): void {
    const range = cidrRange(v.cidr);
    this.#run(
      "INSERT INTO vlan (id, name, cidr, gateway, pool_start, pool_end, uplink, nat, isolate, created_at, net_first, net_last) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
      [
        v.id,
        v.name,
        v.cidr,
        v.gateway,
        v.poolStart,
        v.poolEnd,
        v.uplink,
        v.nat ? 1 : 0,
        v.isolate ? 1 : 0,
        now(),
        range.first,
        range.last,
      ],
    );
  }

  /** Changes a VLAN's name, gateway, pool, uplink, NAT and isolation. */
  updateVlan(v: Omit<Vlan, "createdAt">): void {
    const range = cidrRange(v.cidr);
    this.#run(
      "UPDATE vlan SET name = ?, cidr = ?, gateway = ?, pool_start = ?, pool_end = ?, uplink = ?, nat = ?, isolate = ?, net_first = ?, net_last = ? WHERE id = ?",
      [
        v.name,
        v.cidr,
        v.gateway,
        v.poolStart,
        v.poolEnd,
        v.uplink,
        v.nat ? 1 : 0,
        v.isolate ? 1 : 0,
        range.first,
        range.last,
        v.id,
      ],
    );
  }

  /** Routes between VLANs, each pair once with `a < b`, ordered. */
  listVlanRoutes(): VlanRoute[] {
    return this.#all("SELECT a, b FROM vlan_route ORDER BY a, b").map((r) =>
      VlanRoute.parse({ a: Number(r.a), b: Number(r.b) })
    );
  }

  /** Adds a route between two VLANs (any order); false when it existed. */
  insertVlanRoute(x: number, y: number): boolean {
    const [a, b] = x < y ? [x, y] : [y, x];
    const before = this.#count("SELECT COUNT(*) AS n FROM vlan_route WHERE a = ? AND b = ?", [
      a,
      b,
    ]);
    this.#run("INSERT OR IGNORE INTO vlan_route (a, b) VALUES (?, ?)", [a, b]);
    return before === 0;
  }

  /** Removes the route between two VLANs (any order); false when there was none. */
  deleteVlanRoute(x: number, y: number): boolean {
    const [a, b] = x < y ? [x, y] : [y, x];
    const before = this.#count("SELECT COUNT(*) AS n FROM vlan_route WHERE a = ? AND b = ?", [
      a,
      b,
    ]);
    this.#run("DELETE FROM vlan_route WHERE a = ? AND b = ?", [a, b]);
    return before > 0;
  }

  /** The host's network settings (`network.uplink`, default eth0; `network.dns`, default none). */
  networkSettings(): NetworkSettings {
    const dns = this.getSetting("network.dns") ?? "";
    return NetworkSettings.parse({
      uplink: this.getSetting("network.uplink") ?? "eth0",
      dns: dns === "" ? [] : dns.split(","),
    });
  }

  /** Changes the host's network settings (only the given ones). */
  setNetworkSettings(p: Partial<NetworkSettings>): void {
    if (p.uplink !== undefined) this.setSetting("network.uplink", p.uplink);
    if (p.dns !== undefined) this.setSetting("network.dns", p.dns.join(","));
  }

  /** All VLANs by id (a page of them; `filter`: a part of the name, or the id's first digits). */
  listVlans(page: ListPage = {}): Vlan[] {
    // Arrays (#rows), not objects, and no zod pass: 4,094 rows of a STRICT table.
    return this.#rows(
      `SELECT id, name, cidr, gateway, pool_start, pool_end, uplink, nat, isolate, created_at FROM vlan
        WHERE ?3 IS NULL OR name LIKE ?3 ESCAPE '\\' OR CAST(id AS TEXT) LIKE ?4 ESCAPE '\\'
        ORDER BY id LIMIT ?1 OFFSET ?2`,
      [page.limit ?? -1, page.offset ?? 0, likeContains(page.filter), likeStarts(page.filter)],
    ).map(([id, name, cidr, gateway, poolStart, poolEnd, uplink, nat, isolate, createdAt]) => ({
      id: Number(id),
      name: String(name),
      cidr: String(cidr),
      gateway: String(gateway),
      poolStart: String(poolStart),
      poolEnd: String(poolEnd),
      uplink: uplink as Vlan["uplink"],
      nat: nat === 1,
      isolate: isolate === 1,
      createdAt: String(createdAt),
    }));
  }

  /**
   * Every VLAN's switch settings, by id: what each link reconcile and firewall render reads. Six
   * named columns cost half of the full rows for 4,094 VLANs (bench/network.ts, docs/network.md).
   */
  listVlanSwitches(): Pick<Vlan, "id" | "cidr" | "gateway" | "uplink" | "nat" | "isolate">[] {
    return this.#all("SELECT id, cidr, gateway, uplink, nat, isolate FROM vlan ORDER BY id").map((
      r,
    ) => ({
      id: Number(r.id),
      cidr: String(r.cidr),
      gateway: String(r.gateway),
      uplink: r.uplink as Vlan["uplink"],
      nat: r.nat === 1,
      isolate: r.isolate === 1,
    }));
  }

  /**
   * A VLAN whose subnet overlaps `cidr`, or undefined: one index lookup (migration 12). The
   * stored subnets never overlap each other, so ordered by first address they are ordered by
   * last address too: the one with the greatest first address at or below the new last address
   * overlaps if any does.
   */
  vlanOverlapping(cidr: string): { id: number; cidr: string } | undefined {
    const range = cidrRange(cidr);
    const r = this.#get(
      "SELECT id, cidr, net_last FROM vlan WHERE net_first <= ? ORDER BY net_first DESC LIMIT 1",
      [range.last],
    );
    return r && Number(r.net_last) >= range.first
      ? { id: Number(r.id), cidr: String(r.cidr) }
      : undefined;
  }

  /** Addresses handed out to NICs, by VLAN (one query for every VLAN). */
  assignedIpsByVlan(): Map<number, string[]> {
    return groupBy(
      this.#rows("SELECT vlan, ip FROM nic WHERE vlan IS NOT NULL AND ip IS NOT NULL"),
      ([vlan, ip]) => ({ key: Number(vlan), value: String(ip) }),
    );
  }

  /** Reserved addresses, by VLAN (one query for every VLAN). */
  reservationsByVlan(): Map<number, { ip: string; note: string }[]> {
    return groupBy(
      this.#all("SELECT vlan, ip, note FROM ip_reservation ORDER BY vlan, ip"),
      (r) => ({ key: Number(r.vlan), value: { ip: String(r.ip), note: String(r.note) } }),
    );
  }

  /** The VLAN with this id, or undefined. */
  getVlan(id: number): Vlan | undefined {
    const row = this.#get("SELECT * FROM vlan WHERE id = ?", [id]);
    return row && vlanFromRow(row);
  }

  /** The VLAN with this name, or undefined. */
  getVlanByName(name: string): Vlan | undefined {
    const row = this.#get("SELECT * FROM vlan WHERE name = ?", [name]);
    return row && vlanFromRow(row);
  }

  /** Deletes a VLAN and its reservations. */
  deleteVlan(id: number): void {
    this.#run("DELETE FROM vlan WHERE id = ?", [id]);
  }

  /** Addresses handed out to NICs on a VLAN. */
  vlanAssignedIps(id: number): string[] {
    return this.#all("SELECT ip FROM nic WHERE vlan = ? AND ip IS NOT NULL", [id]).map((r) =>
      String(r.ip)
    );
  }

  /** The instance whose NIC has an address on a VLAN, if any. */
  ipHolder(vlan: number, ip: string): string | undefined {
    const row =
      this.#all("SELECT instance FROM nic WHERE vlan = ? AND ip = ? LIMIT 1", [vlan, ip])[0];
    return row === undefined ? undefined : String(row.instance);
  }

  /** Names of instances with a NIC on a VLAN. */
  vlanInstances(id: number): string[] {
    return this.#all("SELECT DISTINCT instance FROM nic WHERE vlan = ? ORDER BY instance", [id])
      .map((r) => String(r.instance));
  }

  /** Names of VM images attached to a VLAN. */
  vlanVmImages(id: number): string[] {
    return this.#all("SELECT vmimage FROM vmimage_vlan WHERE vlan = ? ORDER BY vmimage", [id])
      .map((r) => String(r.vmimage));
  }

  /** Reserved addresses of a VLAN. */
  vlanReservations(id: number): { ip: string; note: string }[] {
    return this.#all("SELECT ip, note FROM ip_reservation WHERE vlan = ? ORDER BY ip", [id]).map((
      r,
    ) => ({ ip: String(r.ip), note: String(r.note) }));
  }

  /** Reserves an address on a VLAN. */
  insertReservation(vlan: number, ip: string, note: string): void {
    this.#run("INSERT INTO ip_reservation (vlan, ip, note) VALUES (?, ?, ?)", [vlan, ip, note]);
  }

  /** Releases a reservation; returns whether one existed. */
  deleteReservation(vlan: number, ip: string): boolean {
    const before = this.#count(
      "SELECT COUNT(*) AS n FROM ip_reservation WHERE vlan = ? AND ip = ?",
      [
        vlan,
        ip,
      ],
    );
    this.#run("DELETE FROM ip_reservation WHERE vlan = ? AND ip = ?", [vlan, ip]);
    return before > 0;
  }

  // ---- modules ----

  /** Records an installed module with its files. */
  insertModule(m: Omit<Module, "installedAt">): void {
    this.#run(
      "INSERT INTO module (name, version, kind, description, image_format, dir, climod, appmgr, installed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
      [
        m.name,
        m.version,
        m.kind,
        m.description,
        m.imageFormat,
        m.dir,
        JSON.stringify(m.climod),
        JSON.stringify(m.appmgr),
        now(),
      ],
    );
    this.setModuleFiles(m.name, m.files);
  }

  /** Replaces the file records of module `name` with `files`. */
  setModuleFiles(name: string, files: readonly ModuleFile[]): void {
    this.#run("DELETE FROM module_file WHERE module = ?", [name]);
    for (const f of files) {
      this.#run(
        "INSERT INTO module_file (module, part, file, sha256, size) VALUES (?, ?, ?, ?, ?)",
        [name, f.part, f.file, f.sha256, f.size],
      );
    }
  }

  /** All installed modules, vKaOS first. */
  listModules(page: ListPage = {}): Module[] {
    return this.#all(
      `SELECT * FROM module WHERE ?3 IS NULL OR name LIKE ?3 ESCAPE '\\'
        ORDER BY kind = 'app', name LIMIT ?1 OFFSET ?2`,
      [page.limit ?? -1, page.offset ?? 0, likeContains(page.filter)],
    ).map((r) => this.#moduleFromRow(r));
  }

  /** The installed module with this name, or undefined. */
  getModule(name: string): Module | undefined {
    const row = this.#get("SELECT * FROM module WHERE name = ?", [name]);
    return row && this.#moduleFromRow(row);
  }

  /** The installed vKaOS module, or undefined. */
  getVkaos(): Module | undefined {
    const row = this.#get("SELECT * FROM module WHERE kind = 'vkaos'");
    return row && this.#moduleFromRow(row);
  }

  /** Removes a module's rows. */
  deleteModule(name: string): void {
    this.#run("DELETE FROM module WHERE name = ?", [name]);
  }

  /** Directories recorded for installed modules. */
  moduleDirs(): string[] {
    return this.#all("SELECT dir FROM module").map((r) => String(r.dir));
  }

  /** Names of VM images using a module. */
  moduleVmImages(name: string): string[] {
    return this.#all("SELECT vmimage FROM vmimage_module WHERE module = ? ORDER BY vmimage", [name])
      .map((r) => String(r.vmimage));
  }

  /** Names of configuration groups of a module. */
  moduleConfigGroups(name: string): string[] {
    return this.#all("SELECT name FROM config_group WHERE module = ? ORDER BY name", [name]).map((
      r,
    ) => String(r.name));
  }

  /**
   * A module from its row and its files' rows. Parsed (its climod.aq and appmgr.aq through their
   * schemas) once per content: every start reads vKaOS and its image's modules (issue 13: 0.2-0.8
   * ms a read). Kept by the rows' whole text, so any change to them parses anew; the module given
   * out is frozen (one object serves every reader).
   */
  #moduleFromRow(r: Row): Module {
    const rows = this.#all(
      "SELECT part, file, sha256, size FROM module_file WHERE module = ? ORDER BY part",
      [r.name],
    );
    const key = JSON.stringify([
      r.name,
      r.version,
      r.kind,
      r.description,
      r.image_format,
      r.dir,
      r.climod,
      r.appmgr,
      r.installed_at,
      rows.map((f) => [f.part, f.file, f.sha256, f.size]),
    ]);
    const known = this.#modules.get(key);
    if (known) return known;
    const files: ModuleFile[] = rows.map((f) => ({
      part: f.part as ModuleFile["part"],
      file: String(f.file),
      sha256: String(f.sha256),
      size: Number(f.size),
    }));
    const parsed = deepFreeze(Module.parse({
      name: r.name,
      version: r.version,
      kind: r.kind,
      description: r.description,
      imageFormat: r.image_format,
      dir: r.dir,
      files,
      climod: JSON.parse(String(r.climod)),
      appmgr: JSON.parse(String(r.appmgr)),
      installedAt: r.installed_at,
    }));
    if (this.#modules.size >= MAX_CACHED_MODULES) this.#modules.clear();
    this.#modules.set(key, parsed);
    return parsed;
  }

  // ---- configuration groups ----

  /** Adds a configuration group. */
  insertConfigGroup(g: { name: string; module: string; values: ConfigGroup["values"] }): void {
    const t = now();
    this.#run(
      "INSERT INTO config_group (name, module, vals, created_at, updated_at) VALUES (?, ?, ?, ?, ?)",
      [g.name, g.module, JSON.stringify(g.values), t, t],
    );
  }

  /** Replaces a configuration group's values. */
  updateConfigGroup(name: string, values: ConfigGroup["values"]): void {
    this.#run("UPDATE config_group SET vals = ?, updated_at = ? WHERE name = ?", [
      JSON.stringify(values),
      now(),
      name,
    ]);
  }

  /** Configuration groups, optionally of one module. */
  listConfigGroups(module?: string, page: ListPage = {}): ConfigGroup[] {
    return this.#all(
      `SELECT * FROM config_group WHERE (?4 IS NULL OR module = ?4)
        AND (?3 IS NULL OR name LIKE ?3 ESCAPE '\\') ORDER BY name LIMIT ?1 OFFSET ?2`,
      [page.limit ?? -1, page.offset ?? 0, likeContains(page.filter), module ?? null],
    ).map(configGroupFromRow);
  }

  /** The configuration group with this name, or undefined. */
  getConfigGroup(name: string): ConfigGroup | undefined {
    const row = this.#get("SELECT * FROM config_group WHERE name = ?", [name]);
    return row && configGroupFromRow(row);
  }

  /** Deletes a configuration group. */
  deleteConfigGroup(name: string): void {
    this.#run("DELETE FROM config_group WHERE name = ?", [name]);
  }

  /** Names of VM images using a configuration group. */
  configGroupVmImages(name: string): string[] {
    return this.#all(
      "SELECT vmimage FROM vmimage_config_group WHERE config_group = ? ORDER BY vmimage",
      [name],
    ).map((r) => String(r.vmimage));
  }

  // ---- VM images ----

  /** Adds a VM image with its modules, configuration groups and VLANs (in order). */
  insertVmImage(
    v:
      & Pick<VmImage, "name" | "modules" | "configGroups" | "vlans" | "memoryMiB" | "cpus">
      & { dataDiskMiB?: number | null },
  ): void {
    this.#run(
      "INSERT INTO vmimage (name, memory_mib, cpus, created_at, data_disk_mib) VALUES (?, ?, ?, ?, ?)",
      [v.name, v.memoryMiB, v.cpus, now(), v.dataDiskMiB ?? null],
    );
    v.modules.forEach((m, i) =>
      this.#run("INSERT INTO vmimage_module (vmimage, module, position) VALUES (?, ?, ?)", [
        v.name,
        m,
        i,
      ])
    );
    v.configGroups.forEach((g, i) =>
      this.#run(
        "INSERT INTO vmimage_config_group (vmimage, config_group, position) VALUES (?, ?, ?)",
        [v.name, g, i],
      )
    );
    v.vlans.forEach((id, i) =>
      this.#run("INSERT INTO vmimage_vlan (vmimage, vlan, position) VALUES (?, ?, ?)", [
        v.name,
        id,
        i,
      ])
    );
  }

  /** All VM images: five queries whatever their number (not four per image). */
  listVmImages(page: ListPage = {}): VmImage[] {
    const images = this.#all(
      `SELECT * FROM vmimage WHERE ?3 IS NULL OR name LIKE ?3 ESCAPE '\\'
        ORDER BY name LIMIT ?1 OFFSET ?2`,
      [page.limit ?? -1, page.offset ?? 0, likeContains(page.filter)],
    );
    // A page reads the module, group and VLAN lists of its own images only.
    const paged = page.limit !== undefined || page.offset !== undefined ||
      page.filter !== undefined;
    const names = JSON.stringify(images.map((r) => String(r.name)));
    const only = paged ? " WHERE vmimage IN (SELECT value FROM json_each(?))" : "";
    const lists = (sql: string) => {
      const out = new Map<string, SQLInputValue[]>();
      for (const r of this.#all(sql, paged ? [names] : [])) {
        const name = String(r.vmimage);
        let list = out.get(name);
        if (!list) out.set(name, list = []);
        list.push(r.v);
      }
      return out;
    };
    const modules = lists(
      `SELECT vmimage, module AS v FROM vmimage_module${only} ORDER BY vmimage, position`,
    );
    const groups = lists(
      `SELECT vmimage, config_group AS v FROM vmimage_config_group${only} ORDER BY vmimage, position`,
    );
    const vlans = lists(
      `SELECT vmimage, vlan AS v FROM vmimage_vlan${only} ORDER BY vmimage, position`,
    );
    const counts = new Map(
      this.#all(
        `SELECT vmimage, COUNT(*) AS n FROM instance${only} GROUP BY vmimage`,
        paged ? [names] : [],
      ).map((
        r,
      ) => [String(r.vmimage), Number(r.n)]),
    );
    return images.map((r) => {
      const name = String(r.name);
      return VmImage.parse({
        name,
        memoryMiB: r.memory_mib,
        cpus: r.cpus,
        dataDiskMiB: r.data_disk_mib ?? null,
        createdAt: r.created_at,
        modules: modules.get(name) ?? [],
        configGroups: groups.get(name) ?? [],
        vlans: (vlans.get(name) ?? []).map(Number),
        instances: counts.get(name) ?? 0,
      });
    });
  }

  /** The VM image with this name, or undefined. */
  getVmImage(name: string): VmImage | undefined {
    const row = this.#get("SELECT * FROM vmimage WHERE name = ?", [name]);
    return row && this.#vmImageFromRow(row);
  }

  /** Deletes a VM image. */
  deleteVmImage(name: string): void {
    this.#run("DELETE FROM vmimage WHERE name = ?", [name]);
  }

  /** Takes `count` consecutive instance numbers of a VM image; returns the first. */
  takeInstanceNumbers(vmimage: string, count: number): number {
    const row = this.#get("SELECT next_instance FROM vmimage WHERE name = ?", [vmimage]);
    const first = Number(row?.next_instance ?? 1);
    this.#run("UPDATE vmimage SET next_instance = ? WHERE name = ?", [first + count, vmimage]);
    return first;
  }

  #vmImageFromRow(r: Row): VmImage {
    const list = (sql: string) => this.#all(sql, [r.name]).map((x) => x.v);
    return VmImage.parse({
      name: r.name,
      memoryMiB: r.memory_mib,
      cpus: r.cpus,
      dataDiskMiB: r.data_disk_mib ?? null,
      createdAt: r.created_at,
      modules: list("SELECT module AS v FROM vmimage_module WHERE vmimage = ? ORDER BY position"),
      configGroups: list(
        "SELECT config_group AS v FROM vmimage_config_group WHERE vmimage = ? ORDER BY position",
      ),
      vlans: list("SELECT vlan AS v FROM vmimage_vlan WHERE vmimage = ? ORDER BY position").map(
        Number,
      ),
      instances: this.#count("SELECT COUNT(*) AS n FROM instance WHERE vmimage = ?", [r.name]),
    });
  }

  // ---- instances ----

  /** Adds an instance with its NICs. */
  insertInstance(i: Omit<Instance, "createdAt">): void {
    this.#run(
      "INSERT INTO instance (name, vmimage, state, autostart, restart_policy, created_at) VALUES (?, ?, ?, ?, ?, ?)",
      [i.name, i.vmimage, i.state, i.autostart ? 1 : 0, i.restartPolicy, now()],
    );
    for (const n of i.nics) {
      this.#run("INSERT INTO nic (instance, idx, vlan, mac, ip) VALUES (?, ?, ?, ?, ?)", [
        i.name,
        n.index,
        n.vlan,
        n.mac,
        n.ip,
      ]);
    }
  }

  /**
   * Instances, optionally of one VM image: two queries (instances, then their NICs), whatever the
   * count. Rows of the STRICT tables become objects without a zod parse per row (10,000 of them
   * cost more than the query); the one-row getters parse, and results leave through the IPC
   * server's result schema.
   */
  listInstances(vmimage?: string, page: ListPage & { state?: readonly string[] } = {}): Instance[] {
    // Named columns as arrays (#rows): node:sqlite builds one object per row otherwise, and
    // `SELECT *` rows (with columns no caller reads) took about twice as long for 10,000.
    const window = [
      page.limit ?? -1,
      page.offset ?? 0,
      likeContains(page.filter),
      page.state ? JSON.stringify(page.state) : null,
    ];
    const named =
      "(?3 IS NULL OR name LIKE ?3 ESCAPE '\\') AND (?4 IS NULL OR state IN (SELECT value FROM json_each(?4)))";
    const rows = vmimage === undefined
      ? this.#rows(
        `SELECT ${INSTANCE_COLUMNS} FROM instance WHERE ${named} ORDER BY vmimage, created_at, name LIMIT ?1 OFFSET ?2`,
        window,
      )
      : this.#rows(
        `SELECT ${INSTANCE_COLUMNS} FROM instance WHERE vmimage = ?5 AND ${named} ORDER BY created_at, name LIMIT ?1 OFFSET ?2`,
        [...window, vmimage],
      );
    const paged = page.limit !== undefined || page.offset !== undefined ||
      page.filter !== undefined || page.state !== undefined;
    const nicRows = paged
      ? this.#rows(
        "SELECT instance, idx, vlan, mac, ip FROM nic WHERE instance IN (SELECT value FROM json_each(?)) ORDER BY instance, idx",
        [JSON.stringify(rows.map((r) => r[0]))],
      )
      : vmimage === undefined
      ? this.#rows("SELECT instance, idx, vlan, mac, ip FROM nic ORDER BY instance, idx")
      : this.#rows(
        "SELECT nic.instance, nic.idx, nic.vlan, nic.mac, nic.ip FROM nic JOIN instance ON instance.name = nic.instance WHERE instance.vmimage = ? ORDER BY nic.instance, nic.idx",
        [vmimage],
      );
    return instancesFromRows(rows, nicRows);
  }

  /**
   * The instances of these names that exist, in that order: two queries for all of them (a
   * deploy's answer), rows made objects as {@linkcode listInstances} makes them.
   */
  getInstances(names: string[]): Instance[] {
    const list = JSON.stringify(names);
    const rows = this.#rows(
      `SELECT ${INSTANCE_COLUMNS} FROM instance WHERE name IN (SELECT value FROM json_each(?))`,
      [list],
    );
    const nicRows = this.#rows(
      "SELECT instance, idx, vlan, mac, ip FROM nic WHERE instance IN (SELECT value FROM json_each(?)) ORDER BY instance, idx",
      [list],
    );
    const byName = new Map(instancesFromRows(rows, nicRows).map((i) => [i.name, i]));
    return names.flatMap((n) => byName.get(n) ?? []);
  }

  /** The instance with this name, or undefined. */
  getInstance(name: string): Instance | undefined {
    const row = this.#get("SELECT * FROM instance WHERE name = ?", [name]);
    return row && this.#instanceFromRow(row);
  }

  /** Whether an instance of this name exists. */
  instanceExists(name: string): boolean {
    return this.#get("SELECT 1 AS x FROM instance WHERE name = ?", [name]) !== undefined;
  }

  /** An instance's state alone (no NICs read, nothing parsed but it), or undefined. */
  instanceState(name: string): Instance["state"] | undefined {
    const row = this.#get("SELECT state FROM instance WHERE name = ?", [name]);
    return row && InstanceState.parse(row.state);
  }

  /** Sets an instance's state. */
  setInstanceState(name: string, state: Instance["state"]): void {
    this.#run("UPDATE instance SET state = ? WHERE name = ?", [state, name]);
  }

  /** Deletes an instance; its NICs (and so its addresses and MACs) go with it. */
  deleteInstance(name: string): void {
    this.#run("DELETE FROM instance WHERE name = ?", [name]);
  }

  /** Every MAC address in use on this host. */
  allMacs(): string[] {
    return this.#all("SELECT mac FROM nic").map((r) => String(r.mac));
  }

  /** How many rows each kind of object has. */
  counts(): {
    vlans: number;
    modules: number;
    configGroups: number;
    vmimages: number;
    instances: number;
  } {
    const n = (table: string) => this.#count(`SELECT COUNT(*) AS n FROM ${table}`);
    return {
      vlans: n("vlan"),
      modules: n("module"),
      configGroups: n("config_group"),
      vmimages: n("vmimage"),
      instances: n("instance"),
    };
  }

  #instanceFromRow(r: Row): Instance {
    const nics = this.#all("SELECT * FROM nic WHERE instance = ? ORDER BY idx", [r.name]).map(
      (n) => Nic.parse(nicFromRow(n)),
    );
    return Instance.parse(instanceFromRow(r, nics));
  }
}

/** The instance columns `instanceFromRow` reads. */
/**
 * A window of a list: at most `limit` rows (all when absent) after skipping `offset`; with
 * `filter`, only the rows whose name contains it (any case), matched in SQL before the LIMIT.
 */
export interface ListPage {
  limit?: number;
  offset?: number;
  filter?: string;
}

/** A `LIKE … ESCAPE '\'` pattern for names containing `filter` (NULL: no filter). */
export function likeContains(filter: string | undefined): string | null {
  return filter === undefined ? null : `%${filter.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
}

/** A `LIKE … ESCAPE '\'` pattern for text starting with `filter` (NULL: no filter). */
function likeStarts(filter: string | undefined): string | null {
  return filter === undefined ? null : `${filter.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
}

const INSTANCE_COLUMNS = "name, vmimage, state, autostart, restart_policy, created_at";

/** The first and last address of a subnet (`10.0.10.0/24`) as unsigned 32-bit integers. */
function cidrRange(cidr: string): { first: number; last: number } {
  const c = parseCidr(cidr);
  return { first: c.network, last: broadcast(c) };
}

function nicFromRow(n: Row): Nic {
  return {
    index: Number(n.idx),
    vlan: n.vlan === null ? null : Number(n.vlan),
    mac: String(n.mac),
    ip: n.ip === null ? null : String(n.ip),
  };
}

/**
 * Instances from rows of {@linkcode INSTANCE_COLUMNS} and their NICs' rows (instance, idx, vlan,
 * mac, ip; ordered by instance and idx), without a zod parse (STRICT tables).
 */
function instancesFromRows(rows: SQLOutputValue[][], nicRows: SQLOutputValue[][]): Instance[] {
  const nics = new Map<string, Nic[]>();
  for (const [instance, idx, vlan, mac, ip] of nicRows) {
    const name = String(instance);
    let list = nics.get(name);
    if (!list) nics.set(name, list = []);
    list.push({
      index: Number(idx),
      vlan: vlan === null ? null : Number(vlan),
      mac: String(mac),
      ip: ip === null ? null : String(ip),
    });
  }
  // The columns of INSTANCE_COLUMNS, in its order.
  return rows.map(([name, vmimage, state, autostart, restartPolicy, createdAt]) => ({
    name: String(name),
    vmimage: String(vmimage),
    state: state as Instance["state"],
    autostart: autostart === 1,
    restartPolicy: restartPolicy as Instance["restartPolicy"],
    nics: nics.get(String(name)) ?? [],
    createdAt: String(createdAt),
  }));
}

function instanceFromRow(r: Row, nics: Nic[]): Instance {
  return {
    name: String(r.name),
    vmimage: String(r.vmimage),
    state: r.state as Instance["state"],
    autostart: r.autostart === 1,
    restartPolicy: r.restart_policy as Instance["restartPolicy"],
    nics,
    createdAt: String(r.created_at),
  };
}

function groupBy<R, V>(rows: R[], f: (r: R) => { key: number; value: V }): Map<number, V[]> {
  const out = new Map<number, V[]>();
  for (const r of rows) {
    const { key, value } = f(r);
    let list = out.get(key);
    if (!list) out.set(key, list = []);
    list.push(value);
  }
  return out;
}

/** A VLAN row as an object, parsed with zod (the list reads arrays: listVlans). */
function vlanFromRow(r: Row): Vlan {
  const v: Vlan = {
    id: Number(r.id),
    name: String(r.name),
    cidr: String(r.cidr),
    gateway: String(r.gateway),
    poolStart: String(r.pool_start),
    poolEnd: String(r.pool_end),
    uplink: r.uplink as Vlan["uplink"],
    nat: r.nat === 1,
    isolate: r.isolate === 1,
    createdAt: String(r.created_at),
  };
  return Vlan.parse(v);
}

function configGroupFromRow(r: Row): ConfigGroup {
  return ConfigGroup.parse({
    name: r.name,
    module: r.module,
    values: JSON.parse(String(r.vals)),
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  });
}

function now(): string {
  return new Date().toISOString();
}

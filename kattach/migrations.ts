/**
 * Numbered schema migrations of the configuration database. Append only: a released migration
 * is never edited; a change is a new entry.
 */

/** One migration: its number and the SQL that takes the schema from number-1 to number. */
export interface Migration {
  version: number;
  name: string;
  sql: string;
}

/** All migrations, in order. */
export const migrations: readonly Migration[] = [
  {
    version: 1,
    name: "core",
    sql: `
      CREATE TABLE setting (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
      ) STRICT;

      CREATE TABLE vlan (
        id INTEGER PRIMARY KEY CHECK (id BETWEEN 1 AND 4094),
        name TEXT NOT NULL UNIQUE,
        cidr TEXT NOT NULL,
        gateway TEXT NOT NULL,
        pool_start TEXT NOT NULL,
        pool_end TEXT NOT NULL,
        created_at TEXT NOT NULL
      ) STRICT;

      CREATE TABLE ip_reservation (
        vlan INTEGER NOT NULL REFERENCES vlan(id) ON DELETE CASCADE,
        ip TEXT NOT NULL,
        note TEXT NOT NULL,
        PRIMARY KEY (vlan, ip)
      ) STRICT;

      CREATE TABLE module (
        name TEXT PRIMARY KEY,
        version TEXT NOT NULL,
        kind TEXT NOT NULL CHECK (kind IN ('vkaos', 'app')),
        description TEXT NOT NULL,
        image_format TEXT NOT NULL,
        dir TEXT NOT NULL,
        climod TEXT NOT NULL,
        appmgr TEXT NOT NULL,
        installed_at TEXT NOT NULL
      ) STRICT;

      CREATE TABLE module_file (
        module TEXT NOT NULL REFERENCES module(name) ON DELETE CASCADE,
        part TEXT NOT NULL,
        file TEXT NOT NULL,
        sha256 TEXT NOT NULL,
        size INTEGER NOT NULL,
        PRIMARY KEY (module, part)
      ) STRICT;

      CREATE TABLE config_group (
        name TEXT PRIMARY KEY,
        module TEXT NOT NULL REFERENCES module(name),
        vals TEXT NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
      ) STRICT;

      CREATE TABLE vmimage (
        name TEXT PRIMARY KEY,
        memory_mib INTEGER NOT NULL,
        cpus INTEGER NOT NULL,
        next_instance INTEGER NOT NULL DEFAULT 1,
        created_at TEXT NOT NULL
      ) STRICT;

      CREATE TABLE vmimage_module (
        vmimage TEXT NOT NULL REFERENCES vmimage(name) ON DELETE CASCADE,
        module TEXT NOT NULL REFERENCES module(name),
        position INTEGER NOT NULL,
        PRIMARY KEY (vmimage, module)
      ) STRICT;

      CREATE TABLE vmimage_config_group (
        vmimage TEXT NOT NULL REFERENCES vmimage(name) ON DELETE CASCADE,
        config_group TEXT NOT NULL REFERENCES config_group(name),
        position INTEGER NOT NULL,
        PRIMARY KEY (vmimage, config_group)
      ) STRICT;

      CREATE TABLE vmimage_vlan (
        vmimage TEXT NOT NULL REFERENCES vmimage(name) ON DELETE CASCADE,
        vlan INTEGER NOT NULL REFERENCES vlan(id),
        position INTEGER NOT NULL,
        PRIMARY KEY (vmimage, vlan)
      ) STRICT;

      CREATE TABLE instance (
        name TEXT PRIMARY KEY,
        vmimage TEXT NOT NULL REFERENCES vmimage(name),
        state TEXT NOT NULL,
        autostart INTEGER NOT NULL DEFAULT 0,
        restart_policy TEXT NOT NULL DEFAULT 'on-failure',
        created_at TEXT NOT NULL
      ) STRICT;

      CREATE TABLE nic (
        instance TEXT NOT NULL REFERENCES instance(name) ON DELETE CASCADE,
        idx INTEGER NOT NULL,
        vlan INTEGER REFERENCES vlan(id),
        mac TEXT NOT NULL UNIQUE,
        ip TEXT,
        PRIMARY KEY (instance, idx),
        UNIQUE (vlan, ip)
      ) STRICT;
    `,
  },
  {
    version: 2,
    name: "appqueue",
    sql: `
      CREATE TABLE appqueue (
        name TEXT PRIMARY KEY,
        url TEXT NOT NULL,
        public_key TEXT NOT NULL,
        subscription INTEGER NOT NULL DEFAULT 0,
        last_serial INTEGER NOT NULL DEFAULT 0,
        created_at TEXT NOT NULL
      ) STRICT;

      INSERT INTO appqueue (name, url, public_key, subscription, created_at) VALUES
        ('community', 'http://127.0.0.1:8701/community/', '', 0, datetime('now')),
        ('development', 'http://127.0.0.1:8701/development/', '', 0, datetime('now')),
        ('supported', 'http://127.0.0.1:8701/supported/', '', 1, datetime('now'));

      CREATE TABLE module_origin (
        module TEXT PRIMARY KEY REFERENCES module(name) ON DELETE CASCADE,
        source TEXT NOT NULL,
        public_key TEXT NOT NULL,
        release_notes TEXT NOT NULL
      ) STRICT;

      CREATE TABLE instance_health (
        instance TEXT NOT NULL REFERENCES instance(name) ON DELETE CASCADE,
        module TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('starting', 'ready', 'failed')),
        detail TEXT NOT NULL,
        checked_at TEXT NOT NULL,
        PRIMARY KEY (instance, module)
      ) STRICT;
    `,
  },
  {
    version: 3,
    name: "guests",
    sql: `
      CREATE TABLE instance_runtime (
        instance TEXT PRIMARY KEY REFERENCES instance(name) ON DELETE CASCADE,
        pid INTEGER,
        machine TEXT NOT NULL DEFAULT 'q35' CHECK (machine IN ('q35', 'microvm')),
        forwards TEXT NOT NULL DEFAULT '[]',
        serial_from INTEGER NOT NULL DEFAULT 0,
        started_at TEXT,
        restarts INTEGER NOT NULL DEFAULT 0,
        last_exit TEXT NOT NULL DEFAULT ''
      ) STRICT;
    `,
  },
  {
    version: 4,
    name: "auth",
    sql: `
      CREATE TABLE auth_user (
        name TEXT PRIMARY KEY,
        password_hash TEXT NOT NULL,
        must_change INTEGER NOT NULL CHECK (must_change IN (0, 1)),
        updated_at TEXT NOT NULL
      ) STRICT;

      INSERT INTO auth_user (name, password_hash, must_change, updated_at)
        VALUES ('aqcli', '', 1, datetime('now'));

      CREATE TABLE auth_key (
        fingerprint TEXT PRIMARY KEY,
        user TEXT NOT NULL REFERENCES auth_user(name) ON DELETE CASCADE,
        type TEXT NOT NULL,
        blob TEXT NOT NULL,
        comment TEXT NOT NULL,
        added_at TEXT NOT NULL
      ) STRICT;
    `,
  },
  {
    version: 5,
    name: "network",
    sql: `
      ALTER TABLE vlan ADD COLUMN uplink TEXT NOT NULL DEFAULT 'none'
        CHECK (uplink IN ('tagged', 'none'));
      ALTER TABLE vlan ADD COLUMN nat INTEGER NOT NULL DEFAULT 0 CHECK (nat IN (0, 1));
      ALTER TABLE vlan ADD COLUMN isolate INTEGER NOT NULL DEFAULT 0 CHECK (isolate IN (0, 1));

      CREATE TABLE vlan_route (
        a INTEGER NOT NULL REFERENCES vlan(id) ON DELETE CASCADE,
        b INTEGER NOT NULL REFERENCES vlan(id) ON DELETE CASCADE,
        PRIMARY KEY (a, b),
        CHECK (a < b)
      ) STRICT;

      ALTER TABLE instance_runtime ADD COLUMN net_given TEXT NOT NULL DEFAULT '';
    `,
  },
  {
    version: 6,
    name: "firewall",
    sql: `
      CREATE TABLE firewall_mgmt (
        cidr TEXT PRIMARY KEY,
        note TEXT NOT NULL,
        added_at TEXT NOT NULL
      ) STRICT;

      CREATE TABLE firewall_forward (
        id INTEGER PRIMARY KEY,
        instance TEXT NOT NULL REFERENCES instance(name) ON DELETE CASCADE,
        proto TEXT NOT NULL CHECK (proto IN ('tcp', 'udp')),
        host_port INTEGER NOT NULL CHECK (host_port BETWEEN 1 AND 65535),
        guest_port INTEGER NOT NULL CHECK (guest_port BETWEEN 1 AND 65535),
        created_at TEXT NOT NULL,
        UNIQUE (proto, host_port)
      ) STRICT;

      CREATE TABLE firewall_rule (
        id INTEGER PRIMARY KEY,
        chain TEXT NOT NULL CHECK (chain IN ('input', 'forward')),
        action TEXT NOT NULL CHECK (action IN ('accept', 'drop', 'reject')),
        proto TEXT CHECK (proto IN ('tcp', 'udp', 'icmp')),
        src TEXT,
        dst TEXT,
        port_from INTEGER CHECK (port_from BETWEEN 1 AND 65535),
        port_to INTEGER CHECK (port_to BETWEEN 1 AND 65535),
        note TEXT NOT NULL,
        created_at TEXT NOT NULL
      ) STRICT;

      CREATE TABLE firewall_generation (
        id INTEGER PRIMARY KEY,
        state TEXT NOT NULL
          CHECK (state IN ('pending', 'confirmed', 'superseded', 'rolled-back')),
        reason TEXT NOT NULL,
        ruleset TEXT NOT NULL,
        access TEXT NOT NULL,
        applied_at TEXT NOT NULL,
        deadline TEXT,
        confirmed_at TEXT
      ) STRICT;
    `,
  },
  {
    version: 7,
    name: "storage",
    sql: `
      CREATE TABLE storage (
        name TEXT PRIMARY KEY,
        uuid TEXT NOT NULL UNIQUE,
        label TEXT NOT NULL,
        device TEXT NOT NULL,
        model TEXT NOT NULL,
        size_bytes INTEGER NOT NULL,
        created_at TEXT NOT NULL
      ) STRICT;

      ALTER TABLE vmimage ADD COLUMN storage TEXT REFERENCES storage(name);
      ALTER TABLE instance ADD COLUMN storage TEXT REFERENCES storage(name);
    `,
  },
  {
    version: 8,
    name: "security",
    sql: `
      -- A module name is bound to the key that first signed it (survives module del).
      CREATE TABLE module_publisher (
        module TEXT PRIMARY KEY,
        public_key TEXT NOT NULL,
        bound_at TEXT NOT NULL
      ) STRICT;
      INSERT INTO module_publisher (module, public_key, bound_at)
        SELECT module, public_key, datetime('now') FROM module_origin WHERE public_key != '';

      -- The subscription key travels only over https: the placeholder moves to https.
      UPDATE appqueue SET url = 'https://127.0.0.1:8701/supported/'
        WHERE name = 'supported' AND url = 'http://127.0.0.1:8701/supported/';
    `,
  },
  {
    version: 9,
    name: "vmimage-data-disk",
    sql: `
      -- The size of each instance's own data disk (MiB); NULL: none.
      ALTER TABLE vmimage ADD COLUMN data_disk_mib INTEGER
        CHECK (data_disk_mib IS NULL OR data_disk_mib BETWEEN 1 AND 1048576);
    `,
  },
  {
    version: 11,
    name: "scale-indexes",
    sql: `
      -- Reverse lookups that scanned whole tables (a configuration of thousands, issue 13):
      -- instances of a VM image (vmimage list counts them), VM images of a module, of a
      -- configuration group and of a VLAN, configuration groups of a module.
      CREATE INDEX IF NOT EXISTS instance_by_vmimage ON instance (vmimage, created_at, name);
      CREATE INDEX IF NOT EXISTS vmimage_module_by_module ON vmimage_module (module);
      CREATE INDEX IF NOT EXISTS vmimage_config_group_by_group ON vmimage_config_group (config_group);
      CREATE INDEX IF NOT EXISTS vmimage_vlan_by_vlan ON vmimage_vlan (vlan);
      CREATE INDEX IF NOT EXISTS config_group_by_module ON config_group (module, name);
    `,
  },
  {
    version: 12,
    name: "vlan-ranges",
    sql: `
      -- Each VLAN's subnet as its first and last address (unsigned 32-bit integers), indexed:
      -- \`vlan add\` finds an overlapping subnet with one index lookup instead of reading every
      -- VLAN (issue 13). Existing rows are filled from their CIDR text ('a.b.c.d/p').
      ALTER TABLE vlan ADD COLUMN net_first INTEGER;
      ALTER TABLE vlan ADD COLUMN net_last INTEGER;
      WITH
        p1 AS (SELECT id, CAST(substr(cidr, 1, instr(cidr, '.') - 1) AS INTEGER) AS o1,
                      substr(cidr, instr(cidr, '.') + 1) AS r FROM vlan),
        p2 AS (SELECT id, o1, CAST(substr(r, 1, instr(r, '.') - 1) AS INTEGER) AS o2,
                      substr(r, instr(r, '.') + 1) AS r FROM p1),
        p3 AS (SELECT id, o1, o2, CAST(substr(r, 1, instr(r, '.') - 1) AS INTEGER) AS o3,
                      substr(r, instr(r, '.') + 1) AS r FROM p2),
        p4 AS (SELECT id,
                      ((o1 * 256 + o2) * 256 + o3) * 256
                        + CAST(substr(r, 1, instr(r, '/') - 1) AS INTEGER) AS first,
                      CAST(substr(r, instr(r, '/') + 1) AS INTEGER) AS prefix FROM p3)
      UPDATE vlan SET
        net_first = (SELECT first FROM p4 WHERE p4.id = vlan.id),
        net_last = (SELECT first + (1 << (32 - prefix)) - 1 FROM p4 WHERE p4.id = vlan.id);
      CREATE INDEX IF NOT EXISTS vlan_by_net_first ON vlan (net_first);
    `,
  },
];

/**
 * `instance list` as SQLite renders it (kattach/store_lists.ts) against the code that builds the
 * same result as objects (Store.listInstances + withRuntimes), on random stores in a real SQLite
 * file: instances with zero to three NICs (with and without VLAN or address), health and runtime
 * records, storage, running pids, text that needs escaping, pages and the VM image filter.
 */
import assert from "node:assert/strict";
import * as fc from "fast-check";
import { InstanceState } from "../ipc/mod.ts";
import type { Kattach } from "./context.ts";
import { Store } from "./store.ts";
import { recordHealth } from "./store_appqueue.ts";
import { putRuntime } from "./store_instances.ts";
import { instanceListJson } from "./store_lists.ts";
import { insertStorage, setInstanceStorage } from "./store_storage.ts";
import { startNetwork } from "./network.ts";
import type { Netlink } from "../host/mod.ts";
import { withRuntimes } from "./supervisor.ts";

const STATES = InstanceState.options;
/** Text that JSON must escape, and text it must not mangle. */
const ODD = ["", 'say "hi"\\', "line\nbreak\ttab", "ünïcødé ✓ 🖥", "\u0001\u001f", "</script>"];

const FIRST_OCTETS = [10, 172, 192, 203];

const store = fc.record({
  vlans: fc.uniqueArray(
    fc.record({
      net: fc.tuple(fc.constantFrom(...FIRST_OCTETS), fc.integer({ min: 0, max: 255 })),
      gateway: fc.integer({ min: 1, max: 254 }),
      pool: fc.tuple(fc.integer({ min: 1, max: 254 }), fc.integer({ min: 1, max: 254 })),
      uplink: fc.constantFrom("none", "tagged"),
      nat: fc.boolean(),
      isolate: fc.boolean(),
    }),
    { minLength: 1, maxLength: 6, selector: (v) => v.net.join(".") },
  ),
  images: fc.integer({ min: 1, max: 3 }),
  instances: fc.array(
    fc.record({
      image: fc.nat(),
      state: fc.constantFrom(...STATES),
      autostart: fc.boolean(),
      policy: fc.constantFrom("always", "on-failure", "never"),
      nics: fc.array(
        fc.record({
          vlan: fc.option(fc.nat(), { nil: null }),
          host: fc.option(fc.nat(), { nil: null }),
        }),
        { maxLength: 3 },
      ),
      health: fc.uniqueArray(
        fc.record({
          module: fc.constantFrom("web", "db", "z-last"),
          status: fc.constantFrom("starting", "ready", "failed"),
          detail: fc.constantFrom(...ODD),
        }),
        { maxLength: 3, selector: (h) => h.module },
      ),
      runtime: fc.option(
        fc.record({
          forwards: fc.array(
            fc.record({
              hostPort: fc.integer({ min: 1, max: 65535 }),
              guestPort: fc.integer({ min: 1, max: 65535 }),
              module: fc.constantFrom("web", "db"),
            }),
            { maxLength: 2 },
          ),
          restarts: fc.nat({ max: 9 }),
          lastExit: fc.constantFrom(...ODD),
        }),
        { nil: undefined },
      ),
      stored: fc.boolean(),
      running: fc.boolean(),
    }),
    { maxLength: 12 },
  ),
  page: fc.option(fc.record({ limit: fc.nat({ max: 8 }), offset: fc.nat({ max: 8 }) }), {
    nil: undefined,
  }),
  filter: fc.option(fc.nat(), { nil: undefined }),
  /** A part of instance names (`i<n>`), LIKE's own wildcards included. */
  name: fc.option(fc.constantFrom("1", "I1", "i2", "_", "%"), { nil: undefined }),
  states: fc.option(fc.subarray([...STATES], { minLength: 1 }), { nil: undefined }),
  bridged: fc.boolean(),
});

type Gen = typeof store extends fc.Arbitrary<infer T> ? T : never;

/** Fills an empty store from a generated description; returns the running guests' pids. */
function fill(s: Store, g: Gen): Map<string, number> {
  const vlans = g.vlans.map((v, i) => {
    const prefix = `${v.net[0]}.${v.net[1]}.${i}`;
    const [a, b] = v.pool[0] <= v.pool[1] ? v.pool : [v.pool[1], v.pool[0]];
    return { id: i + 1, prefix, v, pool: [a, b] };
  });
  for (const { id, prefix, v, pool } of vlans) {
    s.insertVlan({
      id,
      name: `v${id}`,
      cidr: `${prefix}.0/24`,
      gateway: `${prefix}.${v.gateway}`,
      poolStart: `${prefix}.${pool[0]}`,
      poolEnd: `${prefix}.${pool[1]}`,
      uplink: v.uplink as "none" | "tagged",
      nat: v.nat,
      isolate: v.isolate,
    });
  }
  for (let i = 0; i < g.images; i++) {
    s.insertVmImage({
      name: `img${i}`,
      modules: [],
      configGroups: [],
      vlans: [],
      memoryMiB: 64,
      cpus: 1,
    });
  }
  insertStorage(s, {
    name: "fast",
    uuid: "u",
    label: "l",
    device: "/dev/null",
    model: "m",
    sizeBytes: 1,
    createdAt: "then",
  });
  const pids = new Map<string, number>();
  const taken = new Set<string>();
  let mac = 0;
  g.instances.forEach((inst, n) => {
    const name = `i${n}`;
    const nics = inst.nics.map((nic, index) => {
      const vlan = nic.vlan === null ? null : vlans[nic.vlan % vlans.length];
      let ip: string | null = null;
      if (vlan && nic.host !== null) {
        const candidate = `${vlan.prefix}.${1 + nic.host % 254}`;
        if (!taken.has(candidate)) taken.add(ip = candidate);
      }
      const m = (mac++).toString(16).padStart(6, "0");
      return {
        index,
        vlan: vlan?.id ?? null,
        mac: `0a:4b:53:${m.slice(0, 2)}:${m.slice(2, 4)}:${m.slice(4)}`,
        ip,
      };
    });
    s.insertInstance({
      name,
      vmimage: `img${inst.image % g.images}`,
      state: inst.state,
      autostart: inst.autostart,
      restartPolicy: inst.policy as "always" | "on-failure" | "never",
      nics,
    });
    for (const h of inst.health) {
      recordHealth(s, {
        instance: name,
        module: h.module,
        status: h.status as "ready",
        detail: h.detail,
      });
    }
    if (inst.runtime) {
      putRuntime(s, {
        instance: name,
        pid: null,
        machine: "microvm",
        forwards: inst.runtime.forwards,
        serialFrom: 0,
        startedAt: null,
        restarts: inst.runtime.restarts,
        lastExit: inst.runtime.lastExit,
      });
    }
    if (inst.stored) setInstanceStorage(s, name, "fast");
    if (inst.running) pids.set(name, 1000 + n);
  });
  return pids;
}

/** A scratch directory, on a tmpfs when there is one (60 small stores, each write synced). */
function scratch(): Promise<string> {
  return Deno.makeTempDir({ dir: "/dev/shm", prefix: "kaos-store-lists-" })
    .catch(() => Deno.makeTempDir({ prefix: "kaos-store-lists-" }));
}

Deno.test("instanceListJson: the same results as the object-building code", async () => {
  const dir = await scratch();
  let round = 0;
  try {
    fc.assert(
      fc.property(store, (g) => {
        const s = Store.open(`${dir}/kaos-${round++}.db`);
        try {
          const pids = fill(s, g);
          const vmimage = g.filter === undefined ? undefined : `img${g.filter % g.images}`;
          const page = { ...g.page ?? {}, filter: g.name, state: g.states };
          const text = instanceListJson(s, { ...page, vmimage, pids, bridged: g.bridged });
          assert.ok(!text.includes("\n"), "one line, as an IPC frame must be");
          const k = { store: s, log: () => {} } as unknown as Kattach; // no supervisor: pids come from the map
          // The networking mode decides each NIC's address (a tap's VLAN address, or user-mode's).
          startNetwork(k, { mode: g.bridged ? "bridged" : "user", host: {} as Netlink });
          const expected = withRuntimes(k, s.listInstances(vmimage, page)).map((i) => ({
            ...i,
            pid: pids.get(i.name) ?? null,
          }));
          assert.deepEqual(JSON.parse(text), expected);
          // Few instances read their own rows (IN …), many every row: the same objects.
          assert.deepEqual(
            withRuntimes(k, s.listInstances(vmimage, page), 0),
            withRuntimes(k, s.listInstances(vmimage, page), 1000),
          );
          // The filters, checked apart from both: names containing it (any case), in those states.
          const all = s.listInstances(vmimage).map((i) => i.name);
          const state = new Map(s.listInstances(vmimage).map((i) => [i.name, i.state]));
          const want = all.filter((n) =>
            (!g.name || n.includes(g.name.toLowerCase())) &&
            (!g.states || g.states.includes(state.get(n)!))
          );
          const start = g.page?.offset ?? 0;
          assert.deepEqual(
            expected.map((i) => i.name),
            want.slice(start, g.page ? start + g.page.limit : undefined),
          );
        } finally {
          s.close();
        }
      }),
      { numRuns: 60 },
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("instanceListJson: an empty store, an unknown VM image and a page past the end are []", async () => {
  const dir = await scratch();
  try {
    const s = Store.open(`${dir}/kaos.db`);
    try {
      assert.equal(instanceListJson(s, { pids: new Map(), bridged: false }), "[]");
      assert.equal(instanceListJson(s, { pids: new Map(), vmimage: "none", bridged: false }), "[]");
      s.insertVmImage({
        name: "a",
        modules: [],
        configGroups: [],
        vlans: [],
        memoryMiB: 64,
        cpus: 1,
      });
      s.insertInstance({
        name: "a-1",
        vmimage: "a",
        state: "defined",
        autostart: false,
        restartPolicy: "never",
        nics: [],
      });
      assert.equal(
        instanceListJson(s, { pids: new Map(), limit: 5, offset: 1, bridged: false }),
        "[]",
      );
      const [i] = JSON.parse(instanceListJson(s, { pids: new Map([["a-1", 42]]), bridged: false }));
      assert.deepEqual([i.name, i.nics, i.pid, i.health, i.forwards], ["a-1", [], 42, [], []]);
    } finally {
      s.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

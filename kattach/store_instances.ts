/**
 * The store extension of guests (migration 3): each instance's runtime record (QEMU pid,
 * machine, host port forwards, serial-log offset of the current boot, restarts) and its
 * autostart / restart policy. Only kattach calls it.
 */
import { z } from "zod";
import { Forward, type Instance } from "../ipc/schemas.ts";
import { UserError } from "../lib/errors.ts";
import type { Store } from "./store.ts";

/** An instance's runtime record. */
export const RuntimeRow = z.strictObject({
  instance: z.string(),
  pid: z.number().int().nullable(),
  machine: z.enum(["q35", "microvm"]),
  forwards: z.array(Forward),
  /** Bytes of serial.log written before the current boot (readiness looks past them). */
  serialFrom: z.number().int().min(0),
  startedAt: z.string().nullable(),
  restarts: z.number().int().min(0),
  lastExit: z.string(),
});
export type RuntimeRow = z.infer<typeof RuntimeRow>;

/** The runtime record of an instance, or a fresh default one. */
export function getRuntime(store: Store, instance: string): RuntimeRow {
  const r = store.get("SELECT * FROM instance_runtime WHERE instance = ?", [instance]);
  if (!r) {
    return {
      instance,
      pid: null,
      machine: "microvm", // the default; chooseMachine (instance_runtime.ts) picks q35 for PCI
      forwards: [],
      serialFrom: 0,
      startedAt: null,
      restarts: 0,
      lastExit: "",
    };
  }
  return RuntimeRow.parse({
    instance: r.instance,
    pid: r.pid === null ? null : Number(r.pid),
    machine: r.machine,
    forwards: JSON.parse(String(r.forwards)),
    serialFrom: Number(r.serial_from),
    startedAt: r.started_at === null ? null : String(r.started_at),
    restarts: Number(r.restarts),
    lastExit: String(r.last_exit),
  });
}

/** Writes (inserts or replaces) the runtime record of an instance. */
export function putRuntime(store: Store, row: RuntimeRow): void {
  store.run(
    "INSERT INTO instance_runtime (instance, pid, machine, forwards, serial_from, started_at, restarts, last_exit) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (instance) DO UPDATE SET pid = excluded.pid, machine = excluded.machine, forwards = excluded.forwards, serial_from = excluded.serial_from, started_at = excluded.started_at, restarts = excluded.restarts, last_exit = excluded.last_exit",
    [
      row.instance,
      row.pid,
      row.machine,
      JSON.stringify(row.forwards),
      row.serialFrom,
      row.startedAt,
      row.restarts,
      row.lastExit,
    ],
  );
}

/** Changes only the given fields of an instance's runtime record. */
export function patchRuntime(store: Store, instance: string, patch: Partial<RuntimeRow>): void {
  putRuntime(store, { ...getRuntime(store, instance), ...patch, instance });
}

/** Sets an instance's autostart flag and/or restart policy. */
export function setInstancePolicy(
  store: Store,
  name: string,
  p: { autostart?: boolean; restartPolicy?: Instance["restartPolicy"] },
): void {
  if (p.autostart !== undefined) {
    store.run("UPDATE instance SET autostart = ? WHERE name = ?", [p.autostart ? 1 : 0, name]);
  }
  if (p.restartPolicy !== undefined) {
    store.run("UPDATE instance SET restart_policy = ? WHERE name = ?", [p.restartPolicy, name]);
  }
}

/** Finds an instance; a UserError when there is none. */
export function resolveInstance(store: Store, name: string): Instance {
  const i = store.getInstance(name);
  if (!i) {
    throw new UserError(`Instance ${name} does not exist`, {
      hint: "see `instance list`",
      code: "not-found",
    });
  }
  return i;
}

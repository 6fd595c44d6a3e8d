/**
 * Guest lifecycle actions: start, stop (ACPI, then quit), restart, pause, resume, kill, the
 * restart policy and autostart, the serial console socket, runtime stats and raw QMP commands.
 * Spread into the registry in actions.ts.
 */
import { z } from "zod";
import { lazySchema } from "../lib/lazy_schema.ts";
import { Instance, InstanceName } from "./schemas.ts";

const Name = lazySchema(() => z.strictObject({ name: InstanceName }));

/**
 * One NIC's traffic under `instance stats`, as its guest sees it: received is what the host sent
 * into the NIC's tap (the tap's tx), sent is what the tap received from the guest (its rx).
 */
export const NicCounters = lazySchema(() =>
  z.strictObject({
    index: z.number().int(),
    vlan: z.number().int().nullable(),
    mode: z.enum(["tap", "user"]),
    tap: z.string().nullable(),
    /** The guest's received and sent bytes and packets; null when not counted (see `why`). */
    counters: z.strictObject({
      rxBytes: z.number(),
      rxPackets: z.number(),
      txBytes: z.number(),
      txPackets: z.number(),
    }).nullable(),
    /** Why there are no counters (a user-mode NIC; a tap that is missing); null when counted. */
    why: z.string().nullable(),
  })
);
export type NicCounters = z.infer<typeof NicCounters>;

/** What `instance stats` reports. */
export const GuestStats = lazySchema(() =>
  z.strictObject({
    instance: InstanceName,
    pid: z.number().int(),
    /** QEMU's run state (query-status). */
    status: z.string(),
    /** utime + stime of the QEMU process. */
    cpuSeconds: z.number().nullable(),
    /** Resident memory of the QEMU process. */
    rssBytes: z.number().nullable(),
    /** Guest RAM (query-memory-size-summary). */
    memoryBytes: z.number(),
    uptimeSeconds: z.number(),
    blocks: z.array(z.strictObject({
      device: z.string(),
      rdBytes: z.number(),
      wrBytes: z.number(),
      rdOps: z.number(),
      wrOps: z.number(),
    })),
    /** Each NIC's traffic: a tap's counters read from the host (QEMU keeps none). */
    net: z.array(NicCounters),
    /** Figures from inside the guest (the guest agent's sysinfo); null when it did not answer. */
    guest: z.strictObject({
      uptimeSeconds: z.number(),
      load: z.tuple([z.number(), z.number(), z.number()]),
      memTotalBytes: z.number(),
      memAvailableBytes: z.number(),
      disks: z.array(z.strictObject({
        mount: z.string(),
        sizeBytes: z.number(),
        usedBytes: z.number(),
      })),
    }).nullable().optional(),
  })
);
export type GuestStats = z.infer<typeof GuestStats>;

/** The most lines `instance log` shows. */
export const MAX_SERIAL_LINES = 5000;

/** What `instance log` returns: the last lines of the guest's serial console, controls removed. */
export const SerialLog = lazySchema(() =>
  z.strictObject({
    instance: InstanceName,
    file: z.string(),
    lines: z.array(z.string()),
  })
);
export type SerialLog = z.infer<typeof SerialLog>;

/** A QMP command name as QEMU spells them. */
export const QmpCommandName = lazySchema(() =>
  z.string().regex(
    /^[a-z][a-z0-9_-]{0,63}$/i,
    "QMP commands look like query-status or system_powerdown",
  )
);

/** Reply of the `qmp` action: QEMU's `return` value as is. */
export const QmpReply = lazySchema(() =>
  z.strictObject({ command: z.string(), return: z.unknown() })
);
export type QmpReply = z.infer<typeof QmpReply>;

/**
 * Reply of `qmp.commands`: the QMP commands the instance's QEMU understands and the debug
 * allowlist lets through (vmimage/qmp/allowlist.ts), sorted.
 */
export const QmpCommandList = lazySchema(() =>
  z.strictObject({
    instance: InstanceName,
    commands: z.array(z.string()),
  })
);
export type QmpCommandList = z.infer<typeof QmpCommandList>;

/** Most seconds `qmp events` may watch. */
export const MAX_EVENT_WATCH_SECONDS = 600;

/**
 * Result of `qmp.events`, after the events themselves went out as progress frames (each frame's
 * message is one QMP event as JSON).
 */
export const QmpEventWatch = lazySchema(() =>
  z.strictObject({
    instance: InstanceName,
    events: z.number().int(),
    seconds: z.number(),
    /** Why the watch ended: the time ran out, the count was reached, or QEMU went away. */
    ended: z.enum(["time", "count", "closed"]),
  })
);
export type QmpEventWatch = z.infer<typeof QmpEventWatch>;

/** The guest actions: name → a builder of its schemas (actions.ts builds each at first use). */
export const guestActions = {
  "instance.start": () => ({
    params: z.strictObject({ name: InstanceName, wait: z.boolean().optional() }),
    result: Instance,
  }),
  "instance.stop": () => ({
    params: z.strictObject({
      name: InstanceName,
      timeoutSeconds: z.number().int().min(1).max(3600).optional(),
    }),
    result: Instance,
  }),
  "instance.restart": () => ({
    params: z.strictObject({ name: InstanceName, wait: z.boolean().optional() }),
    result: Instance,
  }),
  "instance.pause": () => ({ params: Name, result: Instance }),
  "instance.resume": () => ({ params: Name, result: Instance }),
  "instance.kill": () => ({ params: Name, result: Instance }),
  "instance.set": () => ({
    params: z.strictObject({
      name: InstanceName,
      restartPolicy: z.enum(["always", "on-failure", "never"]).optional(),
      autostart: z.boolean().optional(),
      machine: z.enum(["q35", "microvm"]).optional(),
    }),
    result: Instance,
  }),
  "instance.console": () => ({
    params: Name,
    result: z.strictObject({ instance: InstanceName, socket: z.string() }),
  }),
  "instance.stats": () => ({ params: Name, result: GuestStats }),
  "instance.log": () => ({
    params: z.strictObject({
      name: InstanceName,
      lines: z.number().int().min(1).max(MAX_SERIAL_LINES).optional(),
    }),
    result: SerialLog,
  }),
  "qmp": () => ({
    params: z.strictObject({
      name: InstanceName,
      command: QmpCommandName,
      args: z.record(z.string(), z.unknown()).optional(),
    }),
    result: QmpReply,
  }),
  "qmp.commands": () => ({ params: Name, result: QmpCommandList }),
  "qmp.events": () => ({
    params: z.strictObject({
      name: InstanceName,
      seconds: z.number().int().min(1).max(MAX_EVENT_WATCH_SECONDS).optional(),
      count: z.number().int().min(1).max(100_000).optional(),
    }),
    result: QmpEventWatch,
  }),
} as const;

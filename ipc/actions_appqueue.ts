/**
 * AppQueue actions: configured queues, the subscription key, browsing and installing modules
 * from queues, and module commands (climod.aq). Spread into the registry in actions.ts.
 */
import { z } from "zod";
import { lazySchema } from "../lib/lazy_schema.ts";
import { AppmgrActionType, ModuleKind, ModuleName, ModuleVersion } from "../appqueue/manifest.ts";
import { InstanceName, Module, ObjectName } from "./schemas.ts";

const None = lazySchema(() => z.strictObject({}));

/** An AppQueue base URL: http or https. */
export const QueueUrl = lazySchema(() =>
  z.string().max(500).refine((s) => {
    try {
      const u = new URL(s);
      return (u.protocol === "http:" || u.protocol === "https:") && u.username === "" &&
        u.password === "" && u.search === "" && u.hash === "";
    } catch {
      return false;
    }
  }, "the queue URL must be an http:// or https:// URL without credentials or query")
);

/** A base64 Ed25519 public key (checked in full by kattach). */
export const QueueKey = lazySchema(() =>
  z.string().regex(
    /^[A-Za-z0-9+/]{43}=$/,
    "a queue key is a base64 Ed25519 public key (44 characters)",
  )
);

/** A configured AppQueue. */
export const AppQueueInfo = lazySchema(() =>
  z.strictObject({
    name: ObjectName,
    url: z.string(),
    /** "" while not configured. */
    publicKey: z.string(),
    subscription: z.boolean(),
    lastSerial: z.number().int(),
    modules: z.array(ModuleName),
  })
);
export type AppQueueInfo = z.infer<typeof AppQueueInfo>;

/** Whether a subscription key is set; only its last four characters are ever shown. */
export const SubscriptionInfo = lazySchema(() =>
  z.strictObject({
    set: z.boolean(),
    last4: z.string().max(4).nullable(),
  })
);
export type SubscriptionInfo = z.infer<typeof SubscriptionInfo>;

/** A release offered by a queue. */
export const AvailableRelease = lazySchema(() =>
  z.strictObject({
    queue: ObjectName,
    name: ModuleName,
    version: ModuleVersion,
    kind: ModuleKind,
    description: z.string(),
    releaseNotes: z.string(),
    size: z.number().int(),
    /** The installed version, or null. */
    installed: z.string().nullable(),
  })
);
export type AvailableRelease = z.infer<typeof AvailableRelease>;

/** What `module update` did. */
export const UpdateResult = lazySchema(() =>
  z.strictObject({
    module: Module,
    previous: ModuleVersion,
    updated: z.boolean(),
    queue: ObjectName,
  })
);
export type UpdateResult = z.infer<typeof UpdateResult>;

/** A command a module declares in climod.aq, with the appmgr action behind it. */
export const ModuleCommandInfo = lazySchema(() =>
  z.strictObject({
    module: ModuleName,
    command: z.string(),
    help: z.string(),
    action: z.string(),
    type: AppmgrActionType,
  })
);
export type ModuleCommandInfo = z.infer<typeof ModuleCommandInfo>;

/** The outcome of a module command. */
export const ModuleRunResult = lazySchema(() =>
  z.strictObject({
    module: ModuleName,
    command: z.string(),
    instance: InstanceName,
    message: z.string(),
    /** `stats`: the figures the module's stats command printed (name → value). */
    stats: z.record(z.string(), z.string()).optional(),
    /** `run`, `logs`: the output lines (control characters removed). */
    lines: z.array(z.string()).optional(),
    /** `run`, reload: the exit code of the command in the guest. */
    code: z.number().int().optional(),
  })
);
export type ModuleRunResult = z.infer<typeof ModuleRunResult>;

/** What a configuration change did to one instance that uses the group. */
export const ConfigApplyOutcome = lazySchema(() =>
  z.strictObject({
    instance: InstanceName,
    /** reload: through the guest agent; restart: a new QEMU; stored: not running, next start. */
    mode: z.enum(["reload", "restart", "stored"]),
    ok: z.boolean(),
    detail: z.string(),
  })
);
export type ConfigApplyOutcome = z.infer<typeof ConfigApplyOutcome>;

/** The AppQueue actions: name → a builder of its schemas (actions.ts builds each at first use). */
export const appqueueActions = {
  "appqueue.list": () => ({ params: None, result: z.array(AppQueueInfo) }),
  "appqueue.add": () => ({
    params: z.strictObject({
      name: ObjectName,
      url: QueueUrl,
      publicKey: QueueKey,
      subscription: z.boolean().default(false),
    }),
    result: AppQueueInfo,
  }),
  "appqueue.set": () => ({
    params: z.strictObject({
      name: ObjectName,
      url: QueueUrl.optional(),
      publicKey: QueueKey.optional(),
      subscription: z.boolean().optional(),
    }),
    result: AppQueueInfo,
  }),
  "appqueue.del": () => ({
    params: z.strictObject({ name: ObjectName }),
    result: z.strictObject({ deleted: z.string() }),
  }),

  "system.subscription.set": () => ({
    params: z.strictObject({
      key: z.string().min(8, "a subscription key has at least 8 characters").max(256).regex(
        /^[\x21-\x7e]+$/,
        "a subscription key is printable ASCII without spaces",
      ),
    }),
    result: SubscriptionInfo,
  }),
  "system.subscription.show": () => ({ params: None, result: SubscriptionInfo }),
  "system.subscription.clear": () => ({ params: None, result: SubscriptionInfo }),

  "module.search": () => ({
    params: z.strictObject({
      term: z.string().max(64).optional(),
      queue: ObjectName.optional(),
      allVersions: z.boolean().default(false),
    }),
    result: z.array(AvailableRelease),
  }),
  "module.install": () => ({
    params: z.strictObject({
      name: ModuleName,
      version: ModuleVersion.optional(),
      queue: ObjectName.optional(),
      /** Accept a signer other than the key the module name is bound to. */
      allowNewPublisher: z.boolean().optional(),
    }),
    result: Module,
  }),
  "module.update": () => ({
    params: z.strictObject({
      name: ModuleName,
      queue: ObjectName.optional(),
      allowNewPublisher: z.boolean().optional(),
    }),
    result: UpdateResult,
  }),
  "module.commands": () => ({ params: None, result: z.array(ModuleCommandInfo) }),
  "module.run": () => ({
    params: z.strictObject({
      module: ModuleName,
      command: z.string().max(32),
      instance: InstanceName,
      /** `logs` commands: how many lines (default 20). */
      lines: z.number().int().min(1).max(5000).optional(),
    }),
    result: ModuleRunResult,
  }),
} as const;

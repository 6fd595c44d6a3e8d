/**
 * The on-disk module format: `manifest.json`, `<name>.aqi`, `climod.aq` and `appmgr.aq`.
 * See docs/modules.md. These schemas are the format's one definition.
 */
import { z } from "zod";
import { lazySchema } from "../lib/lazy_schema.ts";
import { compilePattern } from "./pattern.ts";

/**
 * Module names: lower-case, start with a letter, at most 32 characters. (The guest finds a
 * module's disk by its virtio serial, which holds 20 bytes: see vmimage/guest_config.ts.)
 */
export const ModuleName = lazySchema(() =>
  z.string().regex(
    /^[a-z][a-z0-9-]{0,31}$/,
    "a module name is 1-32 lower-case letters, digits or '-', starting with a letter",
  )
);

/** A release version: MAJOR.MINOR.PATCH with an optional pre-release suffix. */
export const ModuleVersion = lazySchema(() =>
  z.string().regex(
    /^\d{1,6}\.\d{1,6}\.\d{1,6}(-[0-9A-Za-z.]{1,32})?$/,
    "a version looks like 1.2.3 or 1.2.3-rc1",
  )
);

/** The kind of a module: the guest OS (vKaOS) or an application. */
export const ModuleKind = lazySchema(() => z.enum(["vkaos", "app"]));
export type ModuleKind = z.infer<typeof ModuleKind>;

/** How the `.aqi` image is laid out. */
export const ImageFormat = lazySchema(() => z.enum(["vkaos-tar", "ext4", "squashfs"]));
export type ImageFormat = z.infer<typeof ImageFormat>;

/** `manifest.json` of a module directory. */
export const Manifest = lazySchema(() =>
  z.strictObject({
    format: z.literal("kaos-module/1"),
    name: ModuleName,
    version: ModuleVersion,
    kind: ModuleKind,
    description: z.string().max(400).default(""),
    image: z.strictObject({
      format: ImageFormat,
    }),
    /** vKaOS only: extra kernel command line appended after KaOS' own. */
    kernelCmdline: z.string().max(1024).regex(/^[\x20-\x7e]*$/, "printable ASCII only").optional(),
  }).superRefine((m, ctx) => {
    if (m.kind === "vkaos" && m.image.format !== "vkaos-tar") {
      ctx.addIssue({ code: "custom", message: "a vkaos module's image must be a vkaos-tar" });
    }
    if (m.kind === "app" && m.image.format === "vkaos-tar") {
      ctx.addIssue({ code: "custom", message: "an app module's image must be ext4 or squashfs" });
    }
    if (m.kind === "app" && m.kernelCmdline !== undefined) {
      ctx.addIssue({ code: "custom", message: "kernelCmdline belongs to vkaos modules only" });
    }
  })
);
export type Manifest = z.infer<typeof Manifest>;

const FieldName = lazySchema(() =>
  z.string().regex(
    /^[a-z][a-z0-9_]{0,31}$/,
    "a field name is 1-32 lower-case letters, digits or '_', starting with a letter",
  )
);
const Help = lazySchema(() => z.string().max(200).default(""));

/** One configuration field a module declares in `climod.aq`. */
export const ConfigField = lazySchema(() =>
  z.discriminatedUnion("type", [
    z.strictObject({
      name: FieldName,
      type: z.literal("string"),
      help: Help,
      default: z.string().max(4096).optional(),
      minLength: z.number().int().min(0).max(4096).optional(),
      // up to 64 KiB: room for a small file in base64 (nginx's `site`); the agent takes 1 MiB lines
      maxLength: z.number().int().min(0).max(65536).default(255),
      /** A restricted regular expression (appqueue/pattern.ts), checked here at import. */
      pattern: z.string().max(200).superRefine((p, ctx) => {
        try {
          compilePattern(p);
        } catch (err) {
          ctx.addIssue({ code: "custom", message: (err as Error).message });
        }
      }).optional(),
    }),
    z.strictObject({
      name: FieldName,
      type: z.literal("integer"),
      help: Help,
      default: z.number().int().optional(),
      min: z.number().int().optional(),
      max: z.number().int().optional(),
    }),
    z.strictObject({
      name: FieldName,
      type: z.literal("boolean"),
      help: Help,
      default: z.boolean().optional(),
    }),
    z.strictObject({
      name: FieldName,
      type: z.literal("enum"),
      help: Help,
      choices: z.array(z.string().min(1).max(64)).min(1).max(64),
      default: z.string().optional(),
    }),
    z.strictObject({
      name: FieldName,
      type: z.literal("ipv4"),
      help: Help,
      default: z.string().optional(),
    }),
  ])
);
export type ConfigField = z.infer<typeof ConfigField>;

/** A module command declared in `climod.aq`, executed through an appmgr action. */
export const ModuleCommand = lazySchema(() =>
  z.strictObject({
    name: FieldName,
    help: Help,
    /** Name of the appmgr.aq action that carries the command out. */
    action: FieldName,
  })
);
export type ModuleCommand = z.infer<typeof ModuleCommand>;

/** `climod.aq`: the module's CLI extension. Declarative data, never code. */
export const Climod = lazySchema(() =>
  z.strictObject({
    format: z.literal("kaos-climod/1"),
    fields: z.array(ConfigField).max(128),
    commands: z.array(ModuleCommand).max(64).default([]),
  }).superRefine((c, ctx) => {
    const seen = new Set<string>();
    for (const f of c.fields) {
      if (seen.has(f.name)) {
        ctx.addIssue({ code: "custom", message: `field ${f.name} is declared twice` });
      }
      seen.add(f.name);
    }
  })
);
export type Climod = z.infer<typeof Climod>;

/** How kattach decides that a module inside a guest is up. */
export const ReadinessCheck = lazySchema(() =>
  z.discriminatedUnion("type", [
    z.strictObject({ type: z.literal("serial"), marker: z.string().min(1).max(200) }),
    z.strictObject({ type: z.literal("tcp"), port: z.number().int().min(1).max(65535) }),
    z.strictObject({
      type: z.literal("http"),
      port: z.number().int().min(1).max(65535),
      path: z.string().startsWith("/").max(200).default("/"),
    }),
  ])
);
export type ReadinessCheck = z.infer<typeof ReadinessCheck>;

/** An argv the guest runs: argv[0] relative to the image root (or an absolute guest path). */
const GuestArgv = lazySchema(() =>
  z.array(z.string().min(1).max(256).refine((w) => !w.includes("\0"), "no NUL"))
    .min(1).max(32)
);
const AgentTimeout = lazySchema(() => z.number().int().min(1).max(600).default(30));

/** What an appmgr action does (the climod command naming it runs it). */
export const AppmgrActionType = lazySchema(() =>
  z.enum([
    "reload-config",
    "restart-instance",
    "run",
    "stats",
    "logs",
  ])
);
export type AppmgrActionType = z.infer<typeof AppmgrActionType>;

/** `appmgr.aq`: the module's management services. Declarative data, never code. */
export const Appmgr = lazySchema(() =>
  z.strictObject({
    format: z.literal("kaos-appmgr/1"),
    /** Program (inside the module image) the guest init starts; argv, path relative to the image root. */
    service: z.strictObject({
      exec: z.array(z.string().min(1).max(256)).min(1).max(32),
    }).optional(),
    /** Lower starts first among the modules of one VM image. */
    startOrder: z.number().int().min(0).max(1000).default(100),
    readiness: ReadinessCheck,
    readinessTimeoutSeconds: z.number().int().min(1).max(3600).default(120),
    /**
     * `"q35"` when the module needs PCI devices: instances with it run on q35. Omitted (the usual
     * case): the module runs on microvm's virtio-mmio devices, the default machine.
     */
    machine: z.literal("q35").optional(),
    /**
     * Where vKaOS mounts the instance's data disk (`vmimage create … --data-disk SIZE`): data
     * that must survive module updates and restarts lives there. Omitted: `/data`.
     */
    data: z.strictObject({
      mount: z.string().regex(/^\/[A-Za-z0-9/._-]{1,200}$/, "an absolute plain path")
        .refine((p) => !p.split("/").includes(".."), "no '..'"),
    }).optional(),
    /**
     * The module's reload command, run in the guest by the agent after `config-group set` wrote
     * the new values to `$KAOS_CONFIG` (docs/modules.md). Omitted: configuration changes restart
     * the instance.
     */
    reload: z.strictObject({ exec: GuestArgv, timeoutSeconds: AgentTimeout }).optional(),
    /** What a configuration change does to running instances; default: reload when declared. */
    onConfigChange: z.enum(["reload", "restart"]).optional(),
    /** Commands the guest agent may run for this module (the only ones it runs). */
    commands: z.array(z.strictObject({
      name: FieldName,
      help: Help,
      exec: GuestArgv,
      timeoutSeconds: AgentTimeout,
    })).max(32).default([]),
    /** The module's log file in the guest; default: its service output (service.log). */
    logs: z.strictObject({
      path: z.string().min(1).max(200).regex(/^[A-Za-z0-9/._-]+$/, "a plain path"),
    }).optional(),
    actions: z.array(z.strictObject({
      name: FieldName,
      help: Help,
      type: AppmgrActionType,
      /** `run` and `stats`: the appmgr command (in `commands`) the action runs. */
      command: FieldName.optional(),
    })).max(64).default([]),
  }).superRefine((a, ctx) => {
    const names = new Set(a.commands.map((c) => c.name));
    if (names.size !== a.commands.length) {
      ctx.addIssue({ code: "custom", message: "a command name is declared twice" });
    }
    if (a.onConfigChange === "reload" && !a.reload) {
      ctx.addIssue({ code: "custom", message: 'onConfigChange "reload" needs a reload command' });
    }
    for (const act of a.actions) {
      if (act.type === "run" || act.type === "stats") {
        if (!act.command || !names.has(act.command)) {
          ctx.addIssue({
            code: "custom",
            message: `action ${act.name} (${act.type}) must name one of the declared commands`,
          });
        }
      } else if (act.command !== undefined) {
        ctx.addIssue({
          code: "custom",
          message: `action ${act.name}: only run and stats take a command`,
        });
      }
    }
  })
);
export type Appmgr = z.infer<typeof Appmgr>;

/** How a configuration change reaches a running instance of this module. */
export function configChangeMode(a: Appmgr): "reload" | "restart" {
  return a.onConfigChange ?? (a.reload ? "reload" : "restart");
}

/** The fixed file names inside a module directory. */
export function moduleFiles(name: string): {
  manifest: string;
  image: string;
  climod: string;
  appmgr: string;
} {
  return {
    manifest: "manifest.json",
    image: `${name}.aqi`,
    climod: "climod.aq",
    appmgr: "appmgr.aq",
  };
}

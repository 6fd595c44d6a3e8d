/**
 * The action registry: every request a front-end can send to kattach, with the schema of its
 * parameters and of its result. Front-ends build actions; kattach executes them (STYLE rule 11).
 */
import { z } from "zod";
import { ModuleName } from "../appqueue/manifest.ts";
import { planIssue } from "../lib/address_plan.ts";
import { Ipv4Address, Ipv4Cidr } from "../lib/ipv4.ts";
import { appqueueActions, ConfigApplyOutcome } from "./actions_appqueue.ts";
import { guestActions } from "./actions_guests.ts";
import { authActions } from "./actions_auth.ts";
import { networkActions } from "./actions_network.ts";
import { firewallActions } from "./actions_firewall.ts";
import { storageActions } from "./actions_storage.ts";
import {
  ConfigGroup,
  ConfigValue,
  DeployedInstance,
  Instance,
  InstanceName,
  InstancePublished,
  InstanceState,
  ListWindow,
  Module,
  ObjectName,
  StoreCheck,
  SystemStatus,
  VlanId,
  VlanInfo,
  VlanUplink,
  VmImage,
} from "./schemas.ts";

const None = z.strictObject({});

/**
 * The actions whose rules that need the store (a taken name, an overlapping subnet, a value against
 * its module's pattern) a `check` runs before they are sent: the menus ask it after each answer.
 */
export const CHECKED_ACTIONS = [
  "vlan.add",
  "vlan.set",
  "configGroup.add",
  "configGroup.set",
  "vmimage.create",
  "deploy",
] as const;
/** An action a `check` knows the rules of. */
export type CheckedAction = (typeof CHECKED_ACTIONS)[number];

/** One rule a `check` found broken: the parameters it is about, kattach's error and its hint. */
export const CheckIssue = z.strictObject({
  /** The parameters of the answer it is about (among the `fields` asked). */
  fields: z.array(z.string()),
  message: z.string(),
  hint: z.string(),
  /** The error's code, as the action would refuse with it (`conflict`, `not-found`, …). */
  code: z.string(),
});
export type CheckIssue = z.infer<typeof CheckIssue>;
/** One page of a long list (schemas.ts ListWindow; the prompts' pick lists send what is typed). */
const Page = ListWindow;
const Deleted = z.strictObject({ deleted: z.string() });

/**
 * Every action kattach understands: name → a function that builds its params and result schemas.
 * Builders, not schemas (issue 13: memory): an idle kattach serves no request, and V8 compiles a
 * function only at its first call, so an action nobody sends costs neither zod objects nor
 * bytecode. {@linkcode actions} builds each at its first use and keeps it.
 */
const builders = {
  "system.status": () => ({ params: None, result: SystemStatus }),
  "system.check": () => ({ params: None, result: StoreCheck }),
  /**
   * Read-only: runs the rules of `action` that are about `fields` (the parameters one answer
   * filled) on the parameters answered so far, the same rules the action itself runs (kattach
   * has one copy, kattach/actions/check.ts); the action stays the authority when it is sent.
   */
  "check": () => ({
    params: z.strictObject({
      action: z.enum(CHECKED_ACTIONS),
      /** The action's parameters as far as they are answered (the others left out). */
      params: z.record(z.string(), z.unknown()),
      fields: z.array(z.string().max(64)).min(1).max(16),
    }),
    result: z.array(CheckIssue),
  }),

  "vlan.add": () => ({
    params: z.strictObject({
      id: VlanId,
      name: ObjectName,
      cidr: Ipv4Cidr,
      gateway: Ipv4Address.optional(),
      poolStart: Ipv4Address.optional(),
      poolEnd: Ipv4Address.optional(),
      uplink: VlanUplink.optional(),
      nat: z.boolean().optional(),
      isolate: z.boolean().optional(),
    }).superRefine((p, ctx) => {
      // The gateway and the pool inside the subnet (the defaults for those not given).
      const issue = planIssue(p);
      if (issue) ctx.addIssue({ code: "custom", ...issue });
    }),
    result: VlanInfo,
  }),
  "vlan.set": () => ({
    params: z.strictObject({
      vlan: z.string(),
      name: ObjectName.optional(),
      gateway: Ipv4Address.optional(),
      poolStart: Ipv4Address.optional(),
      poolEnd: Ipv4Address.optional(),
      uplink: VlanUplink.optional(),
      nat: z.boolean().optional(),
      isolate: z.boolean().optional(),
    }),
    result: VlanInfo,
  }),
  "vlan.list": () => ({ params: z.strictObject(Page), result: z.array(VlanInfo) }),
  "vlan.show": () => ({ params: z.strictObject({ vlan: z.string() }), result: VlanInfo }),
  "vlan.del": () => ({ params: z.strictObject({ vlan: z.string() }), result: Deleted }),
  "vlan.reserve": () => ({
    params: z.strictObject({ vlan: z.string(), ip: Ipv4Address, note: z.string().max(200) }),
    result: VlanInfo,
  }),
  "vlan.unreserve": () => ({
    params: z.strictObject({ vlan: z.string(), ip: z.string() }),
    result: VlanInfo,
  }),

  "module.import": () => ({
    params: z.strictObject({
      path: z.string().min(1),
      /** Accept a signer (or an unsigned directory) other than the key the name is bound to. */
      allowNewPublisher: z.boolean().optional(),
    }),
    result: Module,
  }),
  "module.list": () => ({ params: z.strictObject(Page), result: z.array(Module) }),
  "module.show": () => ({ params: z.strictObject({ name: ModuleName }), result: Module }),
  "module.del": () => ({ params: z.strictObject({ name: ModuleName }), result: Deleted }),

  "configGroup.add": () => ({
    params: z.strictObject({
      module: ModuleName,
      name: ObjectName,
      values: z.record(z.string(), ConfigValue),
    }),
    result: ConfigGroup,
  }),
  "configGroup.list": () => ({
    params: z.strictObject({ module: ModuleName.optional(), ...Page }),
    result: z.array(ConfigGroup),
  }),
  "configGroup.show": () => ({ params: z.strictObject({ name: ObjectName }), result: ConfigGroup }),
  "configGroup.set": () => ({
    params: z.strictObject({
      name: ObjectName,
      values: z.record(z.string(), ConfigValue),
      /** false (`--no-apply`): store only; running instances keep their values until restarted. */
      apply: z.boolean().default(true),
    }),
    result: ConfigGroup.extend({ applied: z.array(ConfigApplyOutcome).optional() }),
  }),
  "configGroup.del": () => ({ params: z.strictObject({ name: ObjectName }), result: Deleted }),

  "vmimage.create": () => ({
    params: z.strictObject({
      name: ObjectName,
      modules: z.array(ModuleName).min(1).max(16),
      configGroups: z.array(ObjectName).max(64),
      vlans: z.array(VlanId).max(8),
      memoryMiB: z.number().int().min(32).max(1024 * 1024).optional(),
      cpus: z.number().int().min(1).max(64).optional(),
      /** Each instance's own data disk, MiB (1 MiB to 1 TiB); omitted: none. */
      dataDiskMiB: z.number().int().min(1).max(1024 * 1024).optional(),
      /** The storage its instances live on (default: the one with the most free space). */
      storage: z.string().optional(),
    }),
    result: VmImage,
  }),
  "vmimage.list": () => ({ params: z.strictObject(Page), result: z.array(VmImage) }),
  "vmimage.show": () => ({ params: z.strictObject({ name: ObjectName }), result: VmImage }),
  "vmimage.del": () => ({ params: z.strictObject({ name: ObjectName }), result: Deleted }),

  "deploy": () => ({
    params: z.strictObject({
      vmimage: ObjectName,
      count: z.number().int().min(1).max(256),
      /** Only define the instances (default: start them). */
      noStart: z.boolean().optional(),
      /** Wait until every started instance is ready or failed. */
      wait: z.boolean().optional(),
    }),
    result: z.array(DeployedInstance),
  }),
  "instance.list": () => ({
    params: z.strictObject({
      vmimage: ObjectName.optional(),
      /** Only the instances in one of these states (e.g. the running ones, for the Debug menu). */
      state: z.array(InstanceState).min(1).max(7).optional(),
      ...Page,
    }),
    result: z.array(Instance),
  }),
  "instance.show": () => ({ params: z.strictObject({ name: InstanceName }), result: Instance }),
  "instance.del": () => ({
    params: z.strictObject({ name: InstanceName }),
    /** `unpublished`: the instance's published ports, which went with it. */
    result: Deleted.extend({ unpublished: z.array(InstancePublished) }),
  }),

  ...appqueueActions,
  ...guestActions,
  ...authActions,
  ...networkActions,
  ...firewallActions,
  ...storageActions,
} as const;

/** The params and result schemas of every action, by name. */
export type Actions = { readonly [A in keyof typeof builders]: ReturnType<(typeof builders)[A]> };

/**
 * Every action kattach understands: name → params and result schemas, each action's built at its
 * first use (a getter that replaces itself with the value). `Object.keys(actions)` lists them all
 * without building any.
 */
export const actions: Actions = memoised(builders);

/** An object with `builders`' keys whose property K is `builders[K]()`, called once, at its first read. */
function memoised<B extends Record<string, () => unknown>>(
  builders: B,
): { readonly [K in keyof B]: ReturnType<B[K]> } {
  const out = {} as { [K in keyof B]: ReturnType<B[K]> };
  for (const key of Object.keys(builders)) {
    Object.defineProperty(out, key, {
      enumerable: true,
      configurable: true,
      get() {
        const value = builders[key]();
        Object.defineProperty(out, key, { value, enumerable: true });
        return value;
      },
    });
  }
  return out;
}

/** The name of an action. */
export type ActionName = keyof Actions;
/** The parameters an action takes. */
export type ParamsOf<A extends ActionName> = z.input<(typeof actions)[A]["params"]>;
/** What an action returns. */
export type ResultOf<A extends ActionName> = z.infer<(typeof actions)[A]["result"]>;

/**
 * Actions whose results are lists of thousands that kattach builds with typed code from the rows
 * of its STRICT tables (issue 13: `instance list` of 10,000). kattach sends these without a zod
 * pass over every row (that pass was a fifth of the list's time); the client still validates
 * them where they enter it, and the tests call them through the client.
 */
export const TRUSTED_LIST_RESULTS: ReadonlySet<ActionName> = new Set<ActionName>([
  "instance.list",
  "vlan.list",
]);

/** True when `name` is a known action. */
export function isActionName(name: string): name is ActionName {
  return Object.hasOwn(actions, name);
}

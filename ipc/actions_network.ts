/**
 * Network actions: routes between VLANs, the host's uplink and DNS settings, the state of the
 * host links KaOS owns and a forced reconcile. Spread into the registry in actions.ts.
 */
import { z } from "zod";
import { lazySchema } from "../lib/lazy_schema.ts";
import { IfaceName, NetworkSettings, VlanRoute, VlanUplink } from "./schemas.ts";

const None = lazySchema(() => z.strictObject({}));
const Pair = lazySchema(() => z.strictObject({ a: z.string(), b: z.string() }));

/** How kattach runs the network: `bridged` manages host links; `user` leaves them alone. */
export const NetworkMode = lazySchema(() => z.enum(["bridged", "user"]));
export type NetworkMode = z.infer<typeof NetworkMode>;

/** The state of one VLAN's switch on the host. */
export const VlanLinkState = lazySchema(() =>
  z.strictObject({
    id: z.number().int(),
    name: z.string(),
    bridge: z.string(),
    uplink: VlanUplink,
    /** The 802.1Q sub-interface carrying the VLAN tagged, when `uplink` is tagged. */
    vlanLink: z.string().nullable(),
    /** The address the host holds on the bridge (the VLAN's gateway), when it is the router. */
    hostAddress: z.string().nullable(),
    /** `up`, `down`, `missing` (not on the host) or `unmanaged` (user-mode networking). */
    state: z.enum(["up", "down", "missing", "unmanaged"]),
    taps: z.number().int(),
  })
);
export type VlanLinkState = z.infer<typeof VlanLinkState>;

/** A link with KaOS' mark (name prefix and `kaos:` alias) as the host's kernel reports it. */
export const OwnedLink = lazySchema(() =>
  z.strictObject({
    name: z.string(),
    /** `bridge` or `tap` (from the name), `vlan` when the kernel reports an 802.1Q link. */
    kind: z.string().nullable(),
    alias: z.string(),
    /** The bridge it is a port of, or null. */
    master: z.string().nullable(),
    /** An 802.1Q link's parent (the uplink) and id; null otherwise. */
    parent: z.string().nullable(),
    vlanId: z.number().int().nullable(),
    up: z.boolean(),
  })
);
export type OwnedLink = z.infer<typeof OwnedLink>;

/** The outcome of the last reconcile. */
export const NetworkApplyResult = lazySchema(() =>
  z.strictObject({
    mode: NetworkMode,
    reason: z.string(),
    at: z.string(),
    /** The `ip -batch` lines run (empty: the host was already in sync). */
    applied: z.array(z.string()),
    /** What could not be done as configured (e.g. a tagged VLAN without its uplink). */
    warnings: z.array(z.string()),
    /** The error that stopped the apply, or null. */
    error: z.string().nullable(),
    milliseconds: z.number(),
  })
);
export type NetworkApplyResult = z.infer<typeof NetworkApplyResult>;

/** What `network status` reports. */
export const NetworkStatus = lazySchema(() =>
  z.strictObject({
    mode: NetworkMode,
    settings: NetworkSettings,
    /** Whether the uplink interface exists on the host (null in user mode). */
    uplinkPresent: z.boolean().nullable(),
    routes: z.array(VlanRoute),
    vlans: z.array(VlanLinkState),
    /** The `ip -batch` lines a reconcile would run now (empty: in sync). */
    pending: z.array(z.string()),
    /** Every link with KaOS' mark on the host, by name (empty in user mode). */
    links: z.array(OwnedLink),
    warnings: z.array(z.string()),
    lastApply: NetworkApplyResult.nullable(),
  })
);
export type NetworkStatus = z.infer<typeof NetworkStatus>;

/** The network actions: name → a builder of its schemas (actions.ts builds each at first use). */
export const networkActions = {
  "vlan.route.add": () => ({ params: Pair, result: z.array(VlanRoute) }),
  "vlan.route.del": () => ({ params: Pair, result: z.array(VlanRoute) }),
  "vlan.route.list": () => ({ params: None, result: z.array(VlanRoute) }),
  "network.set": () => ({
    params: z.strictObject({
      /** An interface name as Linux takes it (the schema's rules), not necessarily there now. */
      uplink: IfaceName.refine((n) => n !== "." && n !== "..", {
        message: "'.' and '..' are not interface names",
      }).optional(),
      /** DNS servers for guests; an empty list clears them. */
      dns: z.array(z.string()).max(3).optional(),
    }),
    /** The settings as stored, and what the operator should know (an uplink not on the host). */
    result: NetworkSettings.extend({ warnings: z.array(z.string()) }),
  }),
  "network.status": () => ({ params: None, result: NetworkStatus }),
  "network.apply": () => ({ params: None, result: NetworkApplyResult }),
} as const;

/** The action handlers: the one place where an action changes the world (store first, then apply). */
import { type ActionContext, type ActionName, JsonText } from "../../ipc/mod.ts";
import { appqueueHandlers } from "./appqueue.ts";
import { checkHandlers } from "./check.ts";
import { authHandlers } from "./auth.ts";
import { configGroupHandlers } from "./config_group.ts";
import { firewallHandlers } from "./firewall.ts";
import { instanceHandlers } from "./instance.ts";
import { lifecycleHandlers } from "./lifecycle.ts";
import { moduleHandlers } from "./module.ts";
import { networkHandlers } from "./network.ts";
import { storageHandlers } from "./storage.ts";
import { systemHandlers } from "./system.ts";
import { vlanHandlers } from "./vlan.ts";
import { vmImageHandlers } from "./vmimage.ts";
import type { Handler, Handlers, Kattach } from "./_types.ts";
import { applyNetwork } from "../network.ts";

export type { Kattach } from "./_types.ts";
export { reconcileModuleDirs } from "./module.ts";
export { setModuleActionRunner } from "./appqueue.ts";
export { setConfigChangeApplier } from "./config_group.ts";
export { KAOS_VERSION } from "./system.ts";

/** Every handler, by action name; the type makes a missing handler a compile error. */
export const handlers: Handlers<ActionName> = {
  ...systemHandlers,
  ...checkHandlers,
  ...vlanHandlers,
  ...moduleHandlers,
  ...configGroupHandlers,
  ...vmImageHandlers,
  ...instanceHandlers,
  ...lifecycleHandlers,
  ...appqueueHandlers,
  ...authHandlers,
  ...networkHandlers,
  ...firewallHandlers,
  ...storageHandlers,
};

/**
 * Runs one already-validated action for the IPC server: a result the handler rendered as JSON
 * text stays text (the server sends it as it is).
 */
export async function dispatchAction(
  k: Kattach,
  action: ActionName,
  params: unknown,
  ctx: ActionContext,
): Promise<unknown> {
  const handler = handlers[action] as Handler<ActionName>;
  const result = await handler(k, params as never, ctx);
  if (CHANGES_LINKS.has(action)) await applyNetwork(k, { reason: action });
  return result;
}

/** Runs one already-validated action inside kattach; the result is a value, never JSON text. */
export async function runAction(
  k: Kattach,
  action: ActionName,
  params: unknown,
  ctx: ActionContext,
): Promise<unknown> {
  const result = await dispatchAction(k, action, params, ctx);
  return result instanceof JsonText ? result.parse() : result;
}

/**
 * Actions whose committed change adds, moves or removes host links or addresses: the links are
 * reconciled after them (instance start reconciles before QEMU opens its taps; deploy makes its
 * own instances' links only, kattach/network.ts linkInstances; instance del removes its own taps
 * only, unlinkInstance).
 */
const CHANGES_LINKS = new Set<ActionName>([
  "vlan.add",
  "vlan.set",
  "vlan.del",
  "vlan.route.add",
  "vlan.route.del",
  "network.set",
]);

/** The action handlers: the one place where an action changes the world (store first, then apply). */
import type { ActionContext, ActionName } from "../../ipc/mod.ts";
import { appqueueHandlers } from "./appqueue.ts";
import { authHandlers } from "./auth.ts";
import { configGroupHandlers } from "./config_group.ts";
import { firewallHandlers } from "./firewall.ts";
import { instanceHandlers } from "./instance.ts";
import { lifecycleHandlers } from "./lifecycle.ts";
import { moduleHandlers } from "./module.ts";
import { networkHandlers } from "./network.ts";
import { systemHandlers } from "./system.ts";
import { vlanHandlers } from "./vlan.ts";
import { vmImageHandlers } from "./vmimage.ts";
import type { Handler, Handlers, Kattach } from "./_types.ts";

export type { Kattach } from "./_types.ts";
export { reconcileModuleDirs } from "./module.ts";
export { KAOS_VERSION } from "./system.ts";

/** Every handler, by action name; the type makes a missing handler a compile error. */
export const handlers: Handlers<ActionName> = {
  ...systemHandlers,
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
};

/** Runs one already-validated action. */
export async function runAction(
  k: Kattach,
  action: ActionName,
  params: unknown,
  ctx: ActionContext,
): Promise<unknown> {
  const handler = handlers[action] as Handler<ActionName>;
  return await handler(k, params as never, ctx);
}

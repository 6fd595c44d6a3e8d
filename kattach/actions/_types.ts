/** Types shared by the action handlers. */
import type { z } from "zod";
import type { ActionContext, ActionName, actions, JsonText, ResultOf } from "../../ipc/mod.ts";
import type { Kattach } from "../context.ts";

export type { Kattach } from "../context.ts";

/**
 * The actions whose handlers answer with JSON text that SQLite rendered (ipc/server.ts JsonText,
 * kattach/store_lists.ts), which the IPC server sends as it is.
 */
export type JsonTextAction = "instance.list";

/** What the handler of an action returns: its result, or for a list its JSON text. */
export type HandlerResult<A extends ActionName> = A extends JsonTextAction ? JsonText
  : ResultOf<A>;

/** A handler of one action. */
export type Handler<A extends ActionName> = (
  k: Kattach,
  params: z.infer<(typeof actions)[A]["params"]>,
  ctx: ActionContext,
) => Promise<HandlerResult<A>> | HandlerResult<A>;

/** Handlers of some actions. */
export type Handlers<A extends ActionName> = { [K in A]: Handler<K> };

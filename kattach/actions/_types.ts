/** Types shared by the action handlers. */
import type { z } from "zod";
import type { ActionContext, ActionName, actions, ResultOf } from "../../ipc/mod.ts";
import type { Kattach } from "../context.ts";

export type { Kattach } from "../context.ts";

/** A handler of one action. */
export type Handler<A extends ActionName> = (
  k: Kattach,
  params: z.infer<(typeof actions)[A]["params"]>,
  ctx: ActionContext,
) => Promise<ResultOf<A>> | ResultOf<A>;

/** Handlers of some actions. */
export type Handlers<A extends ActionName> = { [K in A]: Handler<K> };

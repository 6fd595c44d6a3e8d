/**
 * The rules an action checks against the store before it writes, one list per action, shared by
 * the action (which runs them all, in its transaction) and by `check` (kattach/actions/check.ts,
 * which runs those about one answer of the menus): one copy of each rule.
 */
import type { CheckedAction, ParamsOf } from "../../ipc/mod.ts";
import type { Kattach } from "./_types.ts";

/** One rule of an action: what it judges, what it reads, and the check (store reads only). */
export interface Rule<A extends CheckedAction> {
  /** The parameters whose answer it judges: `check` runs it when an answer filled one of them. */
  about: string[];
  /** The parameters it reads, which `check` needs given to run it (default: `about`). */
  needs?: string[];
  /** Throws a UserError when the parameters break the rule; never writes. */
  check(k: Kattach, p: ParamsOf<A>): void;
}

/** Runs every rule in order: the first broken one throws its UserError. */
export function runRules<A extends CheckedAction>(
  k: Kattach,
  rules: readonly Rule<A>[],
  p: ParamsOf<A>,
): void {
  for (const rule of rules) rule.check(k, p);
}

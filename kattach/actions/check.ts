/**
 * `check`: the menus' question after each answer, read-only. It runs the rules of an action
 * (kattach/actions/_rules.ts) that are about the parameters the answer filled, on the parameters
 * answered so far, and reports each one broken; the action itself runs the same rules when it is
 * sent, and stays the authority (what changed between the check and the write is refused then).
 */
import { actions, type CheckedAction, type CheckIssue } from "../../ipc/mod.ts";
import { UserError } from "../../lib/errors.ts";
import { configGroupAddRules, configGroupSetRules } from "./config_group.ts";
import { deployRules } from "./instance.ts";
import { vlanAddRules, vlanSetRules } from "./vlan.ts";
import { vmImageCreateRules } from "./vmimage.ts";
import type { Rule } from "./_rules.ts";
import type { Handlers, Kattach } from "./_types.ts";

/** Each checked action's rules, as the action runs them. */
const RULES: { [A in CheckedAction]: readonly Rule<A>[] } = {
  "vlan.add": vlanAddRules,
  "vlan.set": vlanSetRules,
  "configGroup.add": configGroupAddRules,
  "configGroup.set": configGroupSetRules,
  "vmimage.create": vmImageCreateRules,
  "deploy": deployRules,
};

/**
 * The parameters of `action` that are given and valid by its schema, each on its own (a field
 * its schema refuses counts as not given: the CLI tells that one itself).
 */
function givenParams(action: CheckedAction, params: Record<string, unknown>): Map<string, unknown> {
  const shape = actions[action].params.shape as Record<
    string,
    { safeParse(v: unknown): { success: boolean; data?: unknown } }
  >;
  const given = new Map<string, unknown>();
  for (const [key, value] of Object.entries(params)) {
    if (value === undefined || value === null || !Object.hasOwn(shape, key)) continue;
    const r = shape[key].safeParse(value);
    if (r.success && r.data !== undefined) given.set(key, r.data);
  }
  return given;
}

/** Runs the rules of `action` about `fields` whose parameters are given; the broken ones. */
export function checkAnswer(
  k: Kattach,
  request: { action: CheckedAction; params: Record<string, unknown>; fields: string[] },
): CheckIssue[] {
  const given = givenParams(request.action, request.params);
  const params = Object.fromEntries(given) as never;
  const issues: CheckIssue[] = [];
  for (const rule of RULES[request.action] as readonly Rule<CheckedAction>[]) {
    const about = rule.about.filter((f) => request.fields.includes(f));
    if (about.length === 0 || !(rule.needs ?? rule.about).every((f) => given.has(f))) continue;
    try {
      rule.check(k, params);
    } catch (err) {
      if (!(err instanceof UserError)) throw err;
      issues.push({ fields: about, message: err.message, hint: err.hint, code: err.code });
    }
  }
  return issues;
}

/** The `check` action. */
export const checkHandlers: Handlers<"check"> = {
  check: (k, p) => checkAnswer(k, p),
};

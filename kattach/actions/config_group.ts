/** Configuration group actions: named, validated configuration instances of a module. */
import { checkGivenValues, resolveConfigValues } from "../../appqueue/mod.ts";
import type { ConfigApplyOutcome, ConfigGroup } from "../../ipc/mod.ts";
import { UserError } from "../../lib/errors.ts";
import type { Store } from "../store.ts";
import { resolveModule } from "./_modules.ts";
import { type Rule, runRules } from "./_rules.ts";
import type { Handlers, Kattach } from "./_types.ts";

/** Applies a group's stored values to the instances that use it (set by the supervisor). */
export type ConfigChangeApplier = (k: Kattach, group: string) => Promise<ConfigApplyOutcome[]>;

let configChangeApplier: ConfigChangeApplier = () => Promise.resolve([]);

/** The hook the supervisor sets so that `config-group set` reaches running instances. */
export function setConfigChangeApplier(applier: ConfigChangeApplier): void {
  configChangeApplier = applier;
}

/** Finds a configuration group; a UserError when there is none. */
export function resolveConfigGroup(store: Store, name: string): ConfigGroup {
  const g = store.getConfigGroup(name);
  if (!g) {
    throw new UserError(`Configuration group ${name} does not exist`, {
      hint: "see `config-group list`",
      code: "not-found",
    });
  }
  return g;
}

/** What `config-group add` checks against the store: the module, the name, the values given. */
export const configGroupAddRules: Rule<"configGroup.add">[] = [
  { about: ["module"], check: (k, p) => void resolveModule(k.store, p.module) },
  {
    about: ["name"],
    check(k, p) {
      if (k.store.getConfigGroup(p.name)) {
        throw new UserError(`Cannot add configuration group ${p.name}: the name is taken`, {
          hint: "configuration group names are unique on the host",
          code: "conflict",
        });
      }
    },
  },
  {
    // Each value given against its field in the module's climod.aq (type, limits, pattern).
    about: ["values"],
    needs: ["module", "values"],
    check(k, p) {
      const mod = resolveModule(k.store, p.module);
      checkGivenValues(mod.climod, p.values, { module: mod.name });
    },
  },
];

/** What `config-group set` checks against the store: the group, the values given. */
export const configGroupSetRules: Rule<"configGroup.set">[] = [
  { about: ["name"], check: (k, p) => void resolveConfigGroup(k.store, p.name) },
  {
    about: ["values"],
    needs: ["name", "values"],
    check(k, p) {
      const group = resolveConfigGroup(k.store, p.name);
      if (Object.keys(p.values).length === 0) {
        throw new UserError(`Nothing to set on ${p.name}`, { hint: "give key=value pairs" });
      }
      const mod = resolveModule(k.store, group.module);
      checkGivenValues(mod.climod, p.values, { module: mod.name });
    },
  },
];

/** The configuration group actions. */
export const configGroupHandlers: Handlers<
  | "configGroup.add"
  | "configGroup.list"
  | "configGroup.show"
  | "configGroup.set"
  | "configGroup.del"
> = {
  "configGroup.add"(k, p) {
    return k.store.tx(() => {
      runRules(k, configGroupAddRules, p);
      const mod = resolveModule(k.store, p.module);
      const values = resolveConfigValues(mod.climod, p.values, { module: mod.name });
      k.store.insertConfigGroup({ name: p.name, module: mod.name, values });
      k.log(`config-group: added ${p.name} (${mod.name})`);
      return resolveConfigGroup(k.store, p.name);
    });
  },

  "configGroup.list"(k, p) {
    if (p.module !== undefined) resolveModule(k.store, p.module);
    const { module, ...page } = p;
    return k.store.listConfigGroups(module, page);
  },

  "configGroup.show"(k, p) {
    return resolveConfigGroup(k.store, p.name);
  },

  async "configGroup.set"(k, p) {
    const group = k.store.tx(() => {
      runRules(k, configGroupSetRules, p);
      const group = resolveConfigGroup(k.store, p.name);
      const mod = resolveModule(k.store, group.module);
      const values = resolveConfigValues(mod.climod, p.values, {
        module: mod.name,
        base: group.values,
      });
      k.store.updateConfigGroup(p.name, values);
      k.log(`config-group: set ${p.name} ${Object.keys(p.values).join(",")}`);
      return resolveConfigGroup(k.store, p.name);
    });
    if (!p.apply) return group;
    const applied = await configChangeApplier(k, p.name);
    for (const a of applied) {
      k.log(
        `config-group: ${p.name} on ${a.instance}: ${a.mode} ${
          a.ok ? "ok" : "failed"
        }: ${a.detail}`,
      );
    }
    return { ...group, applied };
  },

  "configGroup.del"(k, p) {
    return k.store.tx(() => {
      resolveConfigGroup(k.store, p.name);
      const images = k.store.configGroupVmImages(p.name);
      if (images.length > 0) {
        throw new UserError(`Cannot delete ${p.name}: VM images use it (${images.join(", ")})`, {
          hint: "delete those VM images first",
          code: "in-use",
        });
      }
      k.store.deleteConfigGroup(p.name);
      k.log(`config-group: deleted ${p.name}`);
      return { deleted: p.name };
    });
  },
};

/** VM image actions: vKaOS + App Modules + configuration groups, deployable many times. */
import type { VmImage } from "../../ipc/mod.ts";
import { UserError } from "../../lib/errors.ts";
import type { Store } from "../store.ts";
import {
  getStorage,
  setVmImageStorage,
  vmImageStorage,
  vmImageStorages,
} from "../store_storage.ts";
import { resolveConfigGroup } from "./config_group.ts";
import { requireVkaos, resolveModule } from "./_modules.ts";
import { resolveVlan } from "./vlan.ts";
import { type Rule, runRules } from "./_rules.ts";
import type { Handlers } from "./_types.ts";

/** Default guest memory, MiB. */
export const DEFAULT_MEMORY_MIB = 256;
/** Default guest vCPUs. */
export const DEFAULT_CPUS = 1;

/** Finds a VM image (with the storage it asks for); a UserError when there is none. */
export function resolveVmImage(store: Store, name: string): VmImage {
  const v = store.getVmImage(name);
  if (!v) {
    throw new UserError(`VM image ${name} does not exist`, {
      hint: "see `vmimage list`",
      code: "not-found",
    });
  }
  return { ...v, storage: vmImageStorage(store, name) };
}

function unique<T>(items: T[], what: string): void {
  const dup = items.find((x, i) => items.indexOf(x) !== i);
  if (dup !== undefined) throw new UserError(`${what} ${dup} is listed twice`);
}

/** What `vmimage create` checks against the store, parameter by parameter. */
export const vmImageCreateRules: Rule<"vmimage.create">[] = [
  {
    about: ["name"],
    check(k, p) {
      if (k.store.getVmImage(p.name)) {
        throw new UserError(`Cannot create VM image ${p.name}: it exists already`, {
          hint: "choose another name, or `vmimage del` the old one first",
          code: "conflict",
        });
      }
    },
  },
  {
    about: ["modules"],
    needs: ["name", "modules"],
    check(k, p) {
      requireVkaos(k.store, `create VM image ${p.name}`);
      unique(p.modules, "Module");
      for (const name of p.modules) {
        const mod = resolveModule(k.store, name);
        if (mod.kind !== "app") {
          throw new UserError(`Module ${name} is vKaOS: every VM image runs it already`, {
            hint: "list only App Modules in --modules",
          });
        }
      }
    },
  },
  {
    // One configuration group per module of the image; a module with required fields has one.
    about: ["configGroups"],
    needs: ["modules", "configGroups"],
    check(k, p) {
      unique(p.configGroups, "Configuration group");
      const covered = new Set<string>();
      for (const name of p.configGroups) {
        const group = resolveConfigGroup(k.store, name);
        if (!p.modules.includes(group.module)) {
          throw new UserError(
            `Configuration group ${name} belongs to module ${group.module}, which is not in this VM image`,
            { hint: `add ${group.module} to --modules or leave ${name} out` },
          );
        }
        if (covered.has(group.module)) {
          throw new UserError(
            `Two configuration groups of module ${group.module} are listed`,
            { hint: "a VM image takes one configuration group per module" },
          );
        }
        covered.add(group.module);
      }
      for (const name of p.modules) {
        const mod = resolveModule(k.store, name);
        if (!covered.has(name) && mod.climod.fields.some((f) => f.default === undefined)) {
          throw new UserError(`Module ${name} needs a configuration group`, {
            hint:
              `it has required fields; create one with \`config-group add ${name} NAME key=value…\``,
          });
        }
      }
    },
  },
  {
    about: ["vlans"],
    check(k, p) {
      unique(p.vlans, "VLAN");
      for (const id of p.vlans) resolveVlan(k.store, String(id));
    },
  },
  {
    about: ["storage"],
    needs: ["name", "storage"],
    check(k, p) {
      if (p.storage !== undefined && !getStorage(k.store, p.storage)) {
        throw new UserError(
          `Cannot create VM image ${p.name}: storage ${p.storage} does not exist`,
          { hint: "see `storage list`", code: "not-found" },
        );
      }
    },
  },
  {
    about: ["dataDiskMiB"],
    needs: ["name", "modules", "dataDiskMiB"],
    check(k, p) {
      const mounts = p.modules.filter((m) => resolveModule(k.store, m).appmgr.data);
      if (p.dataDiskMiB !== undefined && mounts.length > 1) {
        throw new UserError(
          `Cannot create VM image ${p.name}: modules ${
            mounts.join(" and ")
          } each ask where the data disk is mounted`,
          { hint: "an instance has one data disk; put those modules in separate VM images" },
        );
      }
    },
  },
];

/** The VM image actions. */
export const vmImageHandlers: Handlers<
  "vmimage.create" | "vmimage.list" | "vmimage.show" | "vmimage.del"
> = {
  "vmimage.create"(k, p) {
    return k.store.tx(() => {
      runRules(k, vmImageCreateRules, p);
      k.store.insertVmImage({
        dataDiskMiB: p.dataDiskMiB ?? null,
        name: p.name,
        modules: p.modules,
        configGroups: p.configGroups,
        vlans: p.vlans,
        memoryMiB: p.memoryMiB ?? DEFAULT_MEMORY_MIB,
        cpus: p.cpus ?? DEFAULT_CPUS,
      });
      if (p.storage !== undefined) setVmImageStorage(k.store, p.name, p.storage);
      k.log(`vmimage: created ${p.name}`);
      return resolveVmImage(k.store, p.name);
    });
  },

  "vmimage.list"(k, p) {
    const storage = vmImageStorages(k.store);
    return k.store.listVmImages(p).map((v) => ({ ...v, storage: storage.get(v.name) ?? null }));
  },

  "vmimage.show"(k, p) {
    return resolveVmImage(k.store, p.name);
  },

  "vmimage.del"(k, p) {
    return k.store.tx(() => {
      const image = resolveVmImage(k.store, p.name);
      if (image.instances > 0) {
        throw new UserError(
          `Cannot delete VM image ${p.name}: ${image.instances} instance(s) are deployed`,
          { hint: `delete them first (\`instance list\`)`, code: "in-use" },
        );
      }
      k.store.deleteVmImage(p.name);
      k.log(`vmimage: deleted ${p.name}`);
      return { deleted: p.name };
    });
  },
};

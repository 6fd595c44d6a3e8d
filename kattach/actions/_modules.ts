/**
 * Finding installed modules, shared by the action handlers (module, appqueue, config groups, VM
 * images, deploy). Private to kattach/actions; it imports no handler.
 */
import type { Module } from "../../ipc/mod.ts";
import { UserError } from "../../lib/errors.ts";
import type { Store } from "../store.ts";

/** Where installed modules live inside the state directory. */
export function modulesDir(stateDir: string): string {
  return `${stateDir}/modules`;
}

/** Finds an installed module; a UserError when there is none. */
export function resolveModule(store: Store, name: string): Module {
  const m = store.getModule(name);
  if (!m) {
    throw new UserError(`Module ${name} is not installed`, {
      hint: "see `module list`; install one with `module install NAME` (`module available` lists " +
        "what the AppQueues offer) or `module import PATH`",
      code: "not-found",
    });
  }
  return m;
}

/** Refuses app-module work while no vKaOS is installed. */
export function requireVkaos(store: Store, doing: string): Module {
  const vkaos = store.getVkaos();
  if (!vkaos) {
    throw new UserError(`Cannot ${doing}: vKaOS is not installed`, {
      hint:
        "install the vKaOS guest OS module first: `module install vkaos` from an AppQueue, or `module import PATH`",
      code: "vkaos-missing",
    });
  }
  return vkaos;
}

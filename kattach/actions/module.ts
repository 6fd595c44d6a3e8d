/**
 * Module actions. Import is atomic: files are copied into a staging directory and verified,
 * then the rows are written and the directory renamed into place in one transaction. At start,
 * kattach removes staging leftovers and directories without rows (see `reconcileModuleDirs`).
 */
import {
  checkClimodDefaults,
  isBundleFile,
  readModuleDir,
  sha256File,
} from "../../appqueue/mod.ts";
import { UserError } from "../../lib/errors.ts";
import type { Store } from "../store.ts";
import { bindPublisher, checkPublisher, importBundle } from "./appqueue.ts";
import { modulesDir, requireVkaos, resolveModule } from "./_modules.ts";
import type { Handlers, Kattach } from "./_types.ts";

export { modulesDir, requireVkaos, resolveModule } from "./_modules.ts";

/**
 * Removes what an interrupted import or delete left behind: staging and trash directories, and
 * module directories with no row. Returns the removed paths.
 */
export async function reconcileModuleDirs(store: Store, stateDir: string): Promise<string[]> {
  const dir = modulesDir(stateDir);
  await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
  const known = new Set(store.moduleDirs());
  const removed: string[] = [];
  for await (const entry of Deno.readDir(dir)) {
    const path = `${dir}/${entry.name}`;
    if (known.has(path)) continue;
    await Deno.remove(path, { recursive: true });
    removed.push(path);
  }
  return removed;
}

/** The module actions. */
export const moduleHandlers: Handlers<
  "module.import" | "module.list" | "module.show" | "module.del"
> = {
  async "module.import"(k: Kattach, p, ctx) {
    const allowNewPublisher = p.allowNewPublisher ?? false;
    if (await isBundleFile(p.path)) {
      return await importBundle(k, p.path, { allowNewPublisher, ctx });
    }
    ctx.progress(`verifying ${p.path}`);
    const src = await readModuleDir(p.path);
    const { manifest } = src;
    checkClimodDefaults(src.climod, manifest.name);
    const check = () => {
      if (k.store.getModule(manifest.name)) {
        throw new UserError(`Cannot import ${manifest.name}: a module of that name is installed`, {
          hint: `delete it first with \`module del ${manifest.name}\``,
          code: "conflict",
        });
      }
      // An unsigned directory cannot take a name a publisher's key is bound to (unless told).
      checkPublisher(k.store, manifest.name, {
        signer: "",
        from: p.path,
        allowNewPublisher,
      });
      if (manifest.kind === "app") requireVkaos(k.store, `import ${manifest.name}`);
      const vkaos = k.store.getVkaos();
      if (manifest.kind === "vkaos" && vkaos) {
        throw new UserError(
          `Cannot import ${manifest.name}: vKaOS is installed already (${vkaos.name} ${vkaos.version})`,
          { hint: "one vKaOS per host; delete the old one first", code: "conflict" },
        );
      }
    };
    check();

    const root = modulesDir(k.stateDir);
    await Deno.mkdir(root, { recursive: true, mode: 0o700 });
    const staging = `${root}/.staging-${crypto.randomUUID()}`;
    const final = `${root}/${manifest.name}`;
    await Deno.mkdir(staging, { mode: 0o700 });
    try {
      for (const [i, part] of src.parts.entries()) {
        ctx.progress(`copying ${part.file}`, i, src.parts.length);
        const to = `${staging}/${part.file}`;
        await Deno.copyFile(`${src.dir}/${part.file}`, to);
        const copied = await sha256File(to);
        if (copied.sha256 !== part.sha256 || copied.size !== part.size) {
          throw new UserError(
            `Cannot import ${manifest.name}: ${part.file} changed while copying`,
            {
              hint: "retry once the source is no longer being written",
            },
          );
        }
        using f = await Deno.open(to, { read: true, write: true });
        await f.sync();
      }
      k.store.tx(() => {
        check();
        k.store.insertModule({
          name: manifest.name,
          version: manifest.version,
          kind: manifest.kind,
          description: manifest.description,
          imageFormat: manifest.image.format,
          dir: final,
          files: src.parts,
          climod: src.climod,
          appmgr: src.appmgr,
        });
        bindPublisher(k, manifest.name, ""); // unbinds only what --allow-new-publisher let in
        Deno.renameSync(staging, final);
      });
    } catch (err) {
      await Deno.remove(staging, { recursive: true }).catch(() => {});
      throw err;
    }
    k.log(`module: imported ${manifest.name} ${manifest.version} (${manifest.kind})`);
    return resolveModule(k.store, manifest.name);
  },

  "module.list"(k, p) {
    return k.store.listModules(p);
  },

  "module.show"(k, p) {
    return resolveModule(k.store, p.name);
  },

  async "module.del"(k, p) {
    const trash = `${modulesDir(k.stateDir)}/.trash-${crypto.randomUUID()}`;
    const mod = k.store.tx(() => {
      const mod = resolveModule(k.store, p.name);
      const images = k.store.moduleVmImages(mod.name);
      if (images.length > 0) {
        throw new UserError(`Cannot delete ${mod.name}: VM images use it (${images.join(", ")})`, {
          hint: "delete those VM images first",
          code: "in-use",
        });
      }
      const groups = k.store.moduleConfigGroups(mod.name);
      if (groups.length > 0) {
        throw new UserError(
          `Cannot delete ${mod.name}: configuration groups belong to it (${groups.join(", ")})`,
          { hint: "delete those configuration groups first", code: "in-use" },
        );
      }
      if (mod.kind === "vkaos" && k.store.listVmImages().length > 0) {
        throw new UserError(`Cannot delete ${mod.name}: VM images need vKaOS to deploy`, {
          hint: "delete the VM images first",
          code: "in-use",
        });
      }
      k.store.deleteModule(mod.name);
      try {
        Deno.renameSync(mod.dir, trash);
      } catch (err) {
        if (!(err instanceof Deno.errors.NotFound)) throw err;
      }
      return mod;
    });
    await Deno.remove(trash, { recursive: true }).catch((err) =>
      k.log(`module: could not remove ${trash}: ${err}`)
    );
    k.log(`module: deleted ${mod.name}`);
    return { deleted: mod.name };
  },
};

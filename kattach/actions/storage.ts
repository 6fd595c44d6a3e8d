/** Guest storage actions and kattach's own log (`system log`). */
import { MAX_LOG_LINES } from "../../ipc/mod.ts";
import { UserError } from "../../lib/errors.ts";
import { initStorage, listStorageAndDisks, storageMountpoint, unmountStorage } from "../storage.ts";
import { deleteStorage, getStorage, instancesOn, vmImagesOn } from "../store_storage.ts";
import type { Handlers } from "./_types.ts";

/** The storage and log actions. */
export const storageHandlers: Handlers<
  "storage.list" | "storage.init" | "storage.del" | "system.log"
> = {
  "storage.list"(k) {
    return listStorageAndDisks(k);
  },

  "storage.init"(k, p, ctx) {
    return initStorage(k, { disk: p.disk, name: p.name, progress: (m) => ctx.progress(m) });
  },

  async "storage.del"(k, p) {
    const row = getStorage(k.store, p.name);
    if (!row) {
      throw new UserError(`Storage ${p.name} does not exist`, {
        hint: "see `storage list`",
        code: "not-found",
      });
    }
    const instances = instancesOn(k.store, p.name);
    if (instances.length > 0) {
      throw new UserError(
        `Cannot delete storage ${p.name}: ${instances.length} instance(s) live there (${
          instances.join(", ")
        })`,
        { hint: "delete those instances first (`instance del NAME`)", code: "in-use" },
      );
    }
    const images = vmImagesOn(k.store, p.name);
    if (images.length > 0) {
      throw new UserError(
        `Cannot delete storage ${p.name}: VM image(s) ${images.join(", ")} ask for it`,
        { hint: "delete those VM images first (`vmimage del NAME`)", code: "in-use" },
      );
    }
    await unmountStorage(k, p.name);
    k.store.tx(() => deleteStorage(k.store, p.name));
    k.log(`storage: deleted ${p.name} (was ${storageMountpoint(k, p.name)}, ${row.device})`);
    return { deleted: p.name };
  },

  async "system.log"(k, p, ctx) {
    const book = k.logBook;
    if (!book) throw new UserError("This kattach keeps no log file");
    const lines = await book.tail(Math.min(p.lines ?? 50, MAX_LOG_LINES));
    if (!p.follow) return { lines, file: book.file };
    for (const line of lines) ctx.progress(line);
    await book.follow((line) => ctx.progress(line), ctx.signal);
    return { lines: [], file: book.file };
  },
};

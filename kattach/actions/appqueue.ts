/**
 * AppQueue actions: configured queues, the subscription key, searching and installing modules
 * from signed queues, bundle import, and module commands. Installs are atomic: every part is
 * downloaded by digest into a staging directory under STATE/modules and verified, then the rows
 * are written and the directory renamed into place in one transaction. Interrupted downloads
 * leave only a partial file in STATE/appqueue-cache, which the next attempt resumes.
 */
import {
  checkClimodDefaults,
  compareVersions,
  extractBundle,
  fetchBytes,
  fetchPart,
  HttpStatusError,
  MAX_INDEX_BYTES,
  MAX_PART_BYTES,
  moduleFiles,
  openIndex,
  pickRelease,
  PublicKey,
  type QueueIndex,
  readModuleDir,
  type Release,
  resolveConfigValues,
} from "../../appqueue/mod.ts";
import type {
  ActionContext,
  AppQueueInfo,
  AvailableRelease,
  Module,
  ModuleCommandInfo,
  SubscriptionInfo,
} from "../../ipc/mod.ts";
import { UserError } from "../../lib/errors.ts";
import type { Store } from "../store.ts";
import {
  deleteQueue,
  getModuleOrigin,
  getPublisher,
  getQueue,
  getSubscriptionKey,
  insertQueue,
  listQueues,
  queueModules,
  type QueueRow,
  replaceModule,
  setModuleOrigin,
  setPublisher,
  setQueueSerial,
  setSubscriptionKey,
  updateQueue,
} from "../store_appqueue.ts";
import { resolveInstance } from "../store_instances.ts";
import { modulesDir, requireVkaos, resolveModule } from "./_modules.ts";
import { resolveVmImage } from "./vmimage.ts";
import type { Handlers, Kattach } from "./_types.ts";
import type { ModuleActionOutcome, ModuleActionRequest } from "../module_agent.ts";

export type { ModuleActionOutcome, ModuleActionRequest } from "../module_agent.ts";

/** The HTTP header that carries the host's subscription key to a subscription queue. */
export const SUBSCRIPTION_HEADER = "X-KaOS-Subscription";

/** Where partial downloads wait to be resumed. */
export function downloadCacheDir(stateDir: string): string {
  return `${stateDir}/appqueue-cache`;
}

/** Digests being downloaded right now (one partial file per digest). */
const downloading = new Set<string>();

/** Largest sizes of the small parts, as readModuleDir enforces them. */
const PART_LIMITS = {
  manifest: 64 * 1024,
  climod: 1024 * 1024,
  appmgr: 1024 * 1024,
  image: MAX_PART_BYTES,
} as const;

/** Carries out a module action inside a running instance. */
export type ModuleActionRunner = (
  k: Kattach,
  req: ModuleActionRequest,
) => Promise<ModuleActionOutcome>;

let moduleActionRunner: ModuleActionRunner = (_k, req) => {
  throw new UserError(
    `Cannot run ${req.module} ${req.command} on ${req.instance}: guest-side module actions are not available in this build`,
    { code: "unsupported" },
  );
};

/**
 * The hook the instance supervisor sets to execute appmgr actions (reload-config through the
 * config channel, restart-instance) in a running instance.
 */
export function setModuleActionRunner(runner: ModuleActionRunner): void {
  moduleActionRunner = runner;
}

function resolveQueue(store: Store, name: string): QueueRow {
  const q = getQueue(store, name);
  if (!q) {
    throw new UserError(`AppQueue ${name} is not configured`, {
      hint: "see `appqueue list`; add one with `appqueue add NAME --url URL --key KEY`",
      code: "not-found",
    });
  }
  return q;
}

/** Refuses to change a queue the image carries. */
function refuseBuiltin(k: Kattach, name: string, what: string): void {
  if (k.builtinQueues?.includes(name)) {
    throw new UserError(`Cannot ${what} queue ${name}: it is built into the image (read-only)`, {
      hint: "add another queue with `appqueue add NAME --url URL --key KEY`",
      code: "read-only",
    });
  }
}

function queueInfo(store: Store, q: QueueRow): AppQueueInfo {
  return { ...q, modules: queueModules(store, q.name) };
}

function normaliseUrl(url: string): string {
  return url.endsWith("/") ? url : `${url}/`;
}

function checkKey(key: string): string {
  if (!PublicKey.safeParse(key).success) {
    throw new UserError("Invalid queue key: not a base64 Ed25519 public key of 32 bytes", {
      hint: "use the key the queue's publisher gives (`main.ts appqueue pubkey KEYFILE`)",
    });
  }
  return key;
}

function subscriptionInfo(store: Store): SubscriptionInfo {
  const key = getSubscriptionKey(store);
  return { set: key !== undefined, last4: key === undefined ? null : key.slice(-4) };
}

/** The origin (scheme://host:port) of a queue URL, as the subscription key is tied to it. */
function originOf(url: string): string {
  return new URL(url).origin;
}

/** Refuses a subscription queue whose URL is not https (the key would travel in clear). */
function requireHttps(name: string, url: string, doing: string): void {
  if (new URL(url).protocol !== "https:") {
    throw new UserError(
      `Cannot ${doing} queue ${name}: a subscription queue needs an https:// URL, not ${
        originOf(url)
      }`,
      { hint: "the subscription key is sent only over https", code: "insecure" },
    );
  }
}

/**
 * Request headers for a queue; refuses a subscription queue when no key is set or its URL is not
 * https. Downloads never follow redirects (appqueue/fetch.ts), so the key reaches only this
 * origin.
 */
function queueHeaders(store: Store, q: QueueRow): Record<string, string> {
  if (!q.subscription) return {};
  requireHttps(q.name, q.url, "use");
  const key = getSubscriptionKey(store);
  if (key === undefined) {
    throw new UserError(`Cannot use queue ${q.name}: this host has no subscription key`, {
      hint: "set it with `system subscription set KEY`",
      code: "subscription-missing",
    });
  }
  return { [SUBSCRIPTION_HEADER]: key };
}

function explainRefusal(err: unknown, q: QueueRow): never {
  if (err instanceof HttpStatusError && (err.status === 401 || err.status === 403)) {
    throw new UserError(
      q.subscription
        ? `Queue ${q.name} refused this host's subscription key (HTTP ${err.status})`
        : `Queue ${q.name} refused access (HTTP ${err.status})`,
      {
        hint: q.subscription
          ? "check the key with `system subscription show` and set the right one"
          : "check the queue's URL and key with `appqueue list`",
        code: "refused",
        cause: err,
      },
    );
  }
  throw err;
}

/** Downloads and verifies a queue's index; records its serial (rollback protection). */
async function loadIndex(k: Kattach, q: QueueRow, ctx: ActionContext): Promise<QueueIndex> {
  // The image's built-in queue comes with the guest runtime's archives (kattach/late_archive.ts).
  if (k.builtinQueues?.includes(q.name)) await k.guestRuntime?.();
  if (q.publicKey === "") {
    throw new UserError(`Queue ${q.name} has no public key configured`, {
      hint: `set it with \`appqueue set ${q.name} --url URL --key KEY\` (see docs/appqueue.md)`,
      code: "not-configured",
    });
  }
  const headers = queueHeaders(k.store, q);
  ctx.progress(`reading the index of ${q.name}`);
  const bytes = await fetchBytes(`${q.url}index.json`, {
    headers,
    maxBytes: MAX_INDEX_BYTES,
    label: `the index of queue ${q.name}`,
  }).catch((err) => explainRefusal(err, q));
  const index = await openIndex(bytes, { publicKey: q.publicKey, queue: q.name });
  k.store.tx(() => {
    const now = resolveQueue(k.store, q.name);
    if (index.serial < now.lastSerial) {
      throw new UserError(
        `Cannot use queue ${q.name}: its index (serial ${index.serial}) is older than one seen before (serial ${now.lastSerial})`,
        {
          hint: "the server is serving an outdated or replayed index; try again later",
          code: "rollback",
        },
      );
    }
    if (index.serial > now.lastSerial) setQueueSerial(k.store, q.name, index.serial);
  });
  return index;
}

/** Queues to look in: the named one, or every queue with a key (in name order). */
function queuesFor(store: Store, name: string | undefined): QueueRow[] {
  if (name !== undefined) return [resolveQueue(store, name)];
  const usable = listQueues(store).filter((q) =>
    q.publicKey !== "" && (!q.subscription || getSubscriptionKey(store) !== undefined)
  );
  if (usable.length === 0) {
    throw new UserError("No AppQueue is configured", {
      hint: "set a queue's URL and key with `appqueue set community --url URL --key KEY`",
      code: "not-configured",
    });
  }
  return usable;
}

/** Indexes of several queues; a failing queue is reported and skipped unless all fail. */
async function loadIndexes(
  k: Kattach,
  queues: QueueRow[],
  ctx: ActionContext,
): Promise<{ queue: QueueRow; index: QueueIndex }[]> {
  const out: { queue: QueueRow; index: QueueIndex }[] = [];
  let firstError: unknown;
  for (const queue of queues) {
    try {
      out.push({ queue, index: await loadIndex(k, queue, ctx) });
    } catch (err) {
      if (queues.length === 1 || !(err instanceof UserError)) throw err;
      firstError ??= err;
      ctx.progress(`skipped queue ${queue.name}: ${err.message}`);
    }
  }
  if (out.length === 0) throw firstError;
  return out;
}

function totalSize(r: Release): number {
  return r.parts.manifest.size + r.parts.image.size + r.parts.climod.size + r.parts.appmgr.size;
}

/** Finds a release of `name` across queues: the newest, or the given version. */
async function findRelease(
  k: Kattach,
  p: { name: string; version?: string; queue?: string },
  ctx: ActionContext,
): Promise<{ queue: QueueRow; release: Release }> {
  const found: { queue: QueueRow; release: Release }[] = [];
  for (const { queue, index } of await loadIndexes(k, queuesFor(k.store, p.queue), ctx)) {
    const release = pickRelease(index, p.name, p.version);
    if (release) found.push({ queue, release });
  }
  found.sort((a, b) => compareVersions(b.release.version, a.release.version));
  if (found.length > 1 && p.queue === undefined) {
    throw new UserError(
      `Module ${p.name} is offered by several queues: ${
        found.map((f) => `${f.queue.name} (${f.release.version})`).join(", ")
      }`,
      {
        hint: `choose one: \`module install ${p.name} --queue ${found[0].queue.name}\``,
        code: "ambiguous",
      },
    );
  }
  if (found.length === 0) {
    const what = p.version ? `${p.name}@${p.version}` : p.name;
    throw new UserError(
      `Module ${what} is not offered by ${p.queue ? `queue ${p.queue}` : "any configured queue"}`,
      { hint: "see `module available`", code: "not-found" },
    );
  }
  return found[0];
}

/** Downloads a release's four parts into `staging`, each verified by size and sha256. */
async function downloadRelease(
  k: Kattach,
  q: QueueRow,
  r: Release,
  o: { staging: string; ctx: ActionContext },
): Promise<void> {
  const cache = downloadCacheDir(k.stateDir);
  await Deno.mkdir(cache, { recursive: true, mode: 0o700 });
  const names = moduleFiles(r.name);
  const headers = queueHeaders(k.store, q);
  await Deno.mkdir(`${o.staging}/${r.name}`, { mode: 0o700 });
  for (const part of ["manifest", "climod", "appmgr", "image"] as const) {
    const ref = r.parts[part];
    const file = names[part];
    if (ref.size > PART_LIMITS[part]) {
      throw new UserError(
        `Cannot install ${r.name} ${r.version}: ${file} is ${ref.size} bytes, over the limit of ${
          PART_LIMITS[part]
        }`,
        { code: "too-large" },
      );
    }
    if (downloading.has(ref.sha256)) {
      throw new UserError(`Cannot install ${r.name} ${r.version}: ${file} is being downloaded`, {
        hint: "another install is fetching the same part; wait for it and retry",
        code: "busy",
      });
    }
    downloading.add(ref.sha256);
    await fetchPart(`${q.url}parts/${ref.sha256}`, {
      sha256: ref.sha256,
      size: ref.size,
      dest: `${o.staging}/${r.name}/${file}`,
      partial: `${cache}/${ref.sha256}.part`,
      headers,
      label: `${file} of ${r.name} ${r.version}`,
      onProgress: (done, total) => o.ctx.progress(`downloading ${file}`, done, total),
    }).catch((err) => explainRefusal(err, q)).finally(() => downloading.delete(ref.sha256));
  }
}

/** Options of {@linkcode installStaged}. */
interface InstallOptions {
  /** The release the staged files must match (from a verified index or bundle). */
  release: Release;
  origin: { source: string; publicKey: string };
  /** Replace the installed module of the same name (an update). */
  replace: boolean;
  /** Accept a signer other than the key the module name is bound to (and rebind it). */
  allowNewPublisher: boolean;
}

/** The first characters of a key, enough to tell keys apart in a message. */
function shortKey(key: string): string {
  return `${key.slice(0, 12)}…`;
}

/**
 * Refuses a module signed by another key than the one its name is bound to: the key that first
 * signed it (kept across `module del`). `signer` is "" for an unsigned module directory.
 */
export function checkPublisher(
  store: Store,
  name: string,
  o: { signer: string; from: string; allowNewPublisher: boolean },
): void {
  const bound = getPublisher(store, name);
  if (bound === undefined || bound === o.signer || o.allowNewPublisher) return;
  throw new UserError(
    `Cannot install ${name} from ${o.from}: the name is bound to publisher key ${
      shortKey(bound)
    }, which first signed it, and this module is ${
      o.signer === "" ? "not signed" : `signed by ${shortKey(o.signer)}`
    }`,
    {
      hint: "only if you trust the new publisher, run the same command with --allow-new-publisher",
      code: "publisher",
    },
  );
}

/** Binds (or, with `--allow-new-publisher`, rebinds) a module name to the key that signed it. */
export function bindPublisher(k: Kattach, name: string, signer: string): void {
  const bound = getPublisher(k.store, name);
  if (bound === signer || (signer === "" && bound === undefined)) return;
  setPublisher(k.store, name, signer);
  k.log(
    bound === undefined
      ? `appqueue: ${name} is bound to publisher key ${shortKey(signer)}`
      : `appqueue: ${name}: publisher key ${shortKey(bound)} replaced by ${
        signer === "" ? "none (unsigned import)" : shortKey(signer)
      } (--allow-new-publisher)`,
  );
}

/** Refuses what the install rules forbid (see docs/modules.md). */
function checkInstallable(store: Store, r: Release, replace: boolean): void {
  const installed = store.getModule(r.name);
  if (replace) {
    if (!installed) resolveModule(store, r.name);
    if (installed && installed.kind !== r.kind) {
      throw new UserError(`Cannot update ${r.name}: the new release is a ${r.kind} module`, {
        code: "conflict",
      });
    }
    return;
  }
  if (installed) {
    throw new UserError(
      `Cannot install ${r.name}: it is installed already (${installed.version})`,
      {
        hint: `update it with \`module update ${r.name}\``,
        code: "conflict",
      },
    );
  }
  if (r.kind === "app") requireVkaos(store, `install ${r.name}`);
  const vkaos = store.getVkaos();
  if (r.kind === "vkaos" && vkaos) {
    throw new UserError(
      `Cannot install ${r.name}: vKaOS is installed already (${vkaos.name} ${vkaos.version})`,
      {
        hint: `one vKaOS per host; update it with \`module update ${vkaos.name}\``,
        code: "conflict",
      },
    );
  }
}

/**
 * Verifies the module in `staging/<name>` (schemas, and digests against the signed release) and
 * moves it into STATE/modules/<name> with the rows, in one transaction. Removes `staging` after.
 */
async function installStaged(
  k: Kattach,
  staging: string,
  o: InstallOptions,
): Promise<Module> {
  const r = o.release;
  const root = modulesDir(k.stateDir);
  const final = `${root}/${r.name}`;
  const dir = `${staging}/${r.name}`;
  const trash = `${root}/.trash-${crypto.randomUUID()}`;
  let movedOld = false;
  try {
    const src = await readModuleDir(dir);
    const m = src.manifest;
    if (m.name !== r.name || m.version !== r.version || m.kind !== r.kind) {
      throw new UserError(
        `Cannot install ${r.name} ${r.version}: its manifest says ${m.name} ${m.version} (${m.kind})`,
        { hint: "the signed listing and the module disagree; report it to the publisher" },
      );
    }
    for (const part of src.parts) {
      const want = r.parts[part.part];
      if (part.sha256 !== want.sha256 || part.size !== want.size) {
        throw new UserError(`Cannot install ${r.name}: ${part.file} does not match its digest`, {
          code: "digest-mismatch",
        });
      }
    }
    checkClimodDefaults(src.climod, m.name);
    const record = {
      name: m.name,
      version: m.version,
      kind: m.kind,
      description: m.description,
      imageFormat: m.image.format,
      dir: final,
      files: src.parts,
      climod: src.climod,
      appmgr: src.appmgr,
    };
    k.store.tx(() => {
      checkInstallable(k.store, r, o.replace);
      checkPublisher(k.store, r.name, {
        signer: o.origin.publicKey,
        from: o.origin.source,
        allowNewPublisher: o.allowNewPublisher,
      });
      if (o.replace) {
        for (const g of k.store.listConfigGroups(m.name)) {
          try {
            resolveConfigValues(src.climod, {}, { base: g.values, module: m.name });
          } catch (err) {
            throw new UserError(
              `Cannot update ${m.name} to ${m.version}: configuration group ${g.name} does not fit the new fields (${
                (err as Error).message
              })`,
              { hint: `change it with \`config-group set ${g.name} ...\` first`, code: "conflict" },
            );
          }
        }
        replaceModule(k.store, record);
      } else {
        k.store.insertModule(record);
      }
      setModuleOrigin(k.store, m.name, { ...o.origin, releaseNotes: r.releaseNotes });
      bindPublisher(k, m.name, o.origin.publicKey);
      if (o.replace) {
        Deno.renameSync(final, trash);
        movedOld = true;
      }
      try {
        Deno.renameSync(dir, final);
      } catch (err) {
        if (movedOld) Deno.renameSync(trash, final);
        movedOld = false;
        throw err;
      }
    });
  } finally {
    await Deno.remove(staging, { recursive: true }).catch(() => {});
  }
  if (movedOld) {
    await Deno.remove(trash, { recursive: true }).catch((err) =>
      k.log(`appqueue: could not remove ${trash}: ${err}`)
    );
  }
  return resolveModule(k.store, r.name);
}

async function newStaging(k: Kattach): Promise<string> {
  const root = modulesDir(k.stateDir);
  await Deno.mkdir(root, { recursive: true, mode: 0o700 });
  const staging = `${root}/.staging-${crypto.randomUUID()}`;
  await Deno.mkdir(staging, { mode: 0o700 });
  return staging;
}

async function installFromQueue(
  k: Kattach,
  q: QueueRow,
  r: Release,
  o: { replace: boolean; allowNewPublisher: boolean; ctx: ActionContext },
): Promise<Module> {
  checkInstallable(k.store, r, o.replace);
  checkPublisher(k.store, r.name, {
    signer: q.publicKey,
    from: `queue:${q.name}`,
    allowNewPublisher: o.allowNewPublisher,
  });
  const staging = await newStaging(k);
  try {
    await downloadRelease(k, q, r, { staging, ctx: o.ctx });
  } catch (err) {
    await Deno.remove(staging, { recursive: true }).catch(() => {});
    throw err;
  }
  o.ctx.progress(`verifying ${r.name} ${r.version}`);
  const mod = await installStaged(k, staging, {
    release: r,
    origin: { source: `queue:${q.name}`, publicKey: q.publicKey },
    replace: o.replace,
    allowNewPublisher: o.allowNewPublisher,
  });
  k.log(
    `appqueue: ${o.replace ? "updated" : "installed"} ${r.name} ${r.version} from ${q.name}`,
  );
  return mod;
}

/**
 * `module import FILE`: verifies a bundle against the configured queues' keys and installs it
 * through the same staging path as a queue install.
 */
export async function importBundle(
  k: Kattach,
  path: string,
  o: { allowNewPublisher: boolean; ctx: ActionContext },
): Promise<Module> {
  const ctx = o.ctx;
  ctx.progress(`verifying bundle ${path}`);
  const trusted = listQueues(k.store).map((q) => q.publicKey).filter((key) => key !== "");
  const staging = await newStaging(k);
  let extracted;
  try {
    extracted = await extractBundle(path, { into: staging, trusted });
    checkInstallable(k.store, extracted.release, false);
    checkPublisher(k.store, extracted.release.name, {
      signer: extracted.publicKey,
      from: "bundle",
      allowNewPublisher: o.allowNewPublisher,
    });
  } catch (err) {
    await Deno.remove(staging, { recursive: true }).catch(() => {});
    throw err;
  }
  const mod = await installStaged(k, staging, {
    release: extracted.release,
    origin: { source: "bundle", publicKey: extracted.publicKey },
    replace: false,
    allowNewPublisher: o.allowNewPublisher,
  });
  k.log(`appqueue: imported bundle ${mod.name} ${mod.version}`);
  return mod;
}

/** The commands every installed module declares, with the appmgr action behind each. */
export function moduleCommands(store: Store): ModuleCommandInfo[] {
  const out: ModuleCommandInfo[] = [];
  for (const m of store.listModules()) {
    for (const c of m.climod.commands) {
      const action = m.appmgr.actions.find((a) => a.name === c.action);
      if (!action) continue;
      out.push({
        module: m.name,
        command: c.name,
        help: c.help,
        action: c.action,
        type: action.type,
      });
    }
  }
  return out;
}

/** The AppQueue actions. */
export const appqueueHandlers: Handlers<
  | "appqueue.list"
  | "appqueue.add"
  | "appqueue.set"
  | "appqueue.del"
  | "system.subscription.set"
  | "system.subscription.show"
  | "system.subscription.clear"
  | "module.search"
  | "module.install"
  | "module.update"
  | "module.commands"
  | "module.run"
> = {
  "appqueue.list"(k) {
    return listQueues(k.store).map((q) => queueInfo(k.store, q));
  },

  "appqueue.add"(k, p) {
    return k.store.tx(() => {
      if (getQueue(k.store, p.name)) {
        throw new UserError(`Cannot add queue ${p.name}: it exists already`, {
          hint: `change it with \`appqueue set ${p.name} ...\``,
          code: "conflict",
        });
      }
      if (p.subscription) requireHttps(p.name, p.url, "add");
      insertQueue(k.store, {
        name: p.name,
        url: normaliseUrl(p.url),
        publicKey: checkKey(p.publicKey),
        subscription: p.subscription,
      });
      k.log(`appqueue: added queue ${p.name}`);
      return queueInfo(k.store, resolveQueue(k.store, p.name));
    });
  },

  "appqueue.set"(k, p) {
    refuseBuiltin(k, p.name, "change");
    return k.store.tx(() => {
      const q = resolveQueue(k.store, p.name);
      if (p.url === undefined && p.publicKey === undefined && p.subscription === undefined) {
        throw new UserError(`Nothing to change on queue ${p.name}`, {
          hint: "give --url, --key or --subscription",
        });
      }
      const url = p.url ?? q.url;
      const subscription = p.subscription ?? q.subscription;
      if (subscription) requireHttps(p.name, url, "set");
      // The subscription key goes only to the origin it was set for: moving a subscription queue
      // elsewhere needs the operator to say --subscription again, in the same command.
      if (q.subscription && p.subscription !== true && originOf(url) !== originOf(q.url)) {
        throw new UserError(
          `Cannot move subscription queue ${p.name} from ${originOf(q.url)} to ${originOf(url)}`,
          {
            hint:
              "the subscription key is sent only to the origin it was set for; give --subscription along with --url to send it to the new one",
            code: "subscription-origin",
          },
        );
      }
      updateQueue(k.store, p.name, {
        url: p.url === undefined ? undefined : normaliseUrl(p.url),
        publicKey: p.publicKey === undefined ? undefined : checkKey(p.publicKey),
        subscription: p.subscription,
      });
      k.log(`appqueue: changed queue ${p.name}`);
      return queueInfo(k.store, resolveQueue(k.store, p.name));
    });
  },

  "appqueue.del"(k, p) {
    refuseBuiltin(k, p.name, "delete");
    return k.store.tx(() => {
      resolveQueue(k.store, p.name);
      deleteQueue(k.store, p.name);
      k.log(`appqueue: deleted queue ${p.name}`);
      return { deleted: p.name };
    });
  },

  "system.subscription.set"(k, p) {
    k.store.tx(() => setSubscriptionKey(k.store, p.key));
    k.log("system: subscription key set");
    return subscriptionInfo(k.store);
  },

  "system.subscription.show"(k) {
    return subscriptionInfo(k.store);
  },

  "system.subscription.clear"(k) {
    k.store.tx(() => setSubscriptionKey(k.store, ""));
    k.log("system: subscription key cleared");
    return subscriptionInfo(k.store);
  },

  async "module.search"(k, p, ctx) {
    const term = p.term?.toLowerCase();
    const out: AvailableRelease[] = [];
    for (const { queue, index } of await loadIndexes(k, queuesFor(k.store, p.queue), ctx)) {
      const names = [...new Set(index.releases.map((r) => r.name))].sort();
      for (const name of names) {
        const releases = p.allVersions
          ? index.releases.filter((r) => r.name === name)
            .sort((a, b) => compareVersions(b.version, a.version))
          : [pickRelease(index, name)!];
        for (const r of releases) {
          if (
            term && !r.name.includes(term) && !r.description.toLowerCase().includes(term)
          ) continue;
          out.push({
            queue: queue.name,
            name: r.name,
            version: r.version,
            kind: r.kind,
            description: r.description,
            releaseNotes: r.releaseNotes,
            size: totalSize(r),
            installed: k.store.getModule(r.name)?.version ?? null,
          });
        }
      }
    }
    return out;
  },

  async "module.install"(k, p, ctx) {
    const { queue, release } = await findRelease(k, p, ctx);
    return await installFromQueue(k, queue, release, {
      replace: false,
      allowNewPublisher: p.allowNewPublisher ?? false,
      ctx,
    });
  },

  async "module.update"(k, p, ctx) {
    const current = resolveModule(k.store, p.name);
    const origin = getModuleOrigin(k.store, p.name);
    const queueName = p.queue ??
      (origin?.source.startsWith("queue:") ? origin.source.slice(6) : undefined);
    if (queueName === undefined) {
      throw new UserError(`Cannot update ${p.name}: it was not installed from a queue`, {
        hint: `name the queue to update from: \`module update ${p.name} --queue NAME\``,
      });
    }
    const q = resolveQueue(k.store, queueName);
    const index = await loadIndex(k, q, ctx);
    const newest = pickRelease(index, p.name);
    if (!newest) {
      throw new UserError(`Cannot update ${p.name}: queue ${q.name} does not offer it`, {
        code: "not-found",
      });
    }
    if (compareVersions(newest.version, current.version) <= 0) {
      return { module: current, previous: current.version, updated: false, queue: q.name };
    }
    const mod = await installFromQueue(k, q, newest, {
      replace: true,
      allowNewPublisher: p.allowNewPublisher ?? false,
      ctx,
    });
    return { module: mod, previous: current.version, updated: true, queue: q.name };
  },

  "module.commands"(k) {
    return moduleCommands(k.store);
  },

  async "module.run"(k, p) {
    const mod = resolveModule(k.store, p.module);
    const cmd = moduleCommands(k.store).find((c) =>
      c.module === mod.name && c.command === p.command
    );
    if (!cmd) {
      const known = moduleCommands(k.store).filter((c) => c.module === mod.name)
        .map((c) => c.command);
      throw new UserError(`Module ${mod.name} has no command ${p.command}`, {
        hint: known.length > 0 ? `its commands are: ${known.join(", ")}` : "it declares none",
        code: "not-found",
      });
    }
    const inst = resolveInstance(k.store, p.instance);
    if (!resolveVmImage(k.store, inst.vmimage).modules.includes(mod.name)) {
      throw new UserError(`Instance ${inst.name} does not run module ${mod.name}`, {
        hint: `its VM image ${inst.vmimage} holds other modules`,
      });
    }
    if (inst.state !== "running") {
      throw new UserError(
        `Cannot run ${mod.name} ${p.command} on ${inst.name}: the instance is not running (${inst.state})`,
        { hint: `start it first (\`instance start ${inst.name}\`)`, code: "not-running" },
      );
    }
    k.log(`appqueue: ${mod.name} ${p.command} on ${inst.name} (${cmd.type})`);
    const action = mod.appmgr.actions.find((a) => a.name === cmd.action)!;
    const outcome = await moduleActionRunner(k, {
      instance: inst.name,
      module: mod.name,
      command: p.command,
      action: { name: cmd.action, type: cmd.type, command: action.command },
      lines: p.lines,
    });
    return { module: mod.name, command: p.command, instance: inst.name, ...outcome };
  },
};

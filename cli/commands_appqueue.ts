/**
 * One-line commands of AppQueues (appqueue …, system subscription …, module search/available/
 * install/update/commands) and module commands: `MODULE COMMAND INSTANCE` for each command an
 * installed module declares in climod.aq, looked up over IPC.
 */
import type {
  AppQueueInfo,
  AvailableRelease,
  IpcClient,
  Module,
  ModuleCommandInfo,
  ModuleRunResult,
  SubscriptionInfo,
  UpdateResult,
} from "../ipc/mod.ts";
import { cmd, type Command, type Parsed, UsageError } from "./command.ts";
import { fields, table } from "./render.ts";

/** `--allow-new-publisher`: accept a module signed by another key than the one it is bound to. */
export const ALLOW_NEW_PUBLISHER = {
  name: "allow-new-publisher",
  boolean: true,
  help: "accept a signer other than the key this module name is bound to",
};

/** The action parameter of {@linkcode ALLOW_NEW_PUBLISHER}, only when given. */
export function allowNewPublisher(
  flags: Parsed["flags"],
): { allowNewPublisher?: true } {
  return flags["allow-new-publisher"] === true ? { allowNewPublisher: true } : {};
}

function str(v: string | boolean | undefined): string | undefined {
  return typeof v === "string" ? v : undefined;
}

function renderQueues(qs: AppQueueInfo[]): string {
  return table(
    ["NAME", "URL", "KEY", "SUBSCRIPTION", "SERIAL", "MODULES"],
    qs.map((q) => [
      q.name,
      q.url,
      q.publicKey === "" ? "(not set)" : `${q.publicKey.slice(0, 12)}…`,
      q.subscription ? "required" : "-",
      q.lastSerial,
      q.modules.join(",") || "-",
    ]),
  );
}

function renderQueue(q: AppQueueInfo): string {
  return fields([
    ["AppQueue", q.name],
    ["URL", q.url],
    ["Public key", q.publicKey || "(not set)"],
    ["Subscription", q.subscription ? "required" : "not needed"],
    ["Index serial seen", q.lastSerial],
    ["Installed from it", q.modules.join(", ") || "none"],
  ]);
}

function renderSubscription(s: SubscriptionInfo): string {
  return s.set ? `Subscription key: set (…${s.last4})\n` : "Subscription key: not set\n";
}

function size(n: number): string {
  if (n >= 1024 ** 2) return `${(n / 1024 ** 2).toFixed(1)}M`;
  if (n >= 1024) return `${(n / 1024).toFixed(1)}K`;
  return `${n}B`;
}

function renderAvailable(rs: AvailableRelease[]): string {
  return table(
    ["QUEUE", "NAME", "VERSION", "KIND", "SIZE", "INSTALLED", "DESCRIPTION"],
    rs.map((r) => [
      r.queue,
      r.name,
      r.version,
      r.kind,
      size(r.size),
      r.installed ?? "-",
      r.description,
    ]),
  );
}

const searchFlags = [
  { name: "queue", value: "QUEUE", help: "only this queue (default: every configured queue)" },
  { name: "all-versions", boolean: true, help: "every version, not just the newest" },
];

/** The AppQueue one-line commands. */
export const appqueueCommands: Command[] = [
  cmd({
    path: ["appqueue", "list"],
    summary: "List the configured AppQueues (module repositories)",
    args: [],
    flags: [],
    build: () => ({ action: "appqueue.list", params: {} }),
    render: (r) => renderQueues(r as AppQueueInfo[]),
  }),
  cmd({
    path: ["appqueue", "add"],
    summary: "Add an AppQueue: its URL and its publisher's Ed25519 public key",
    args: [{ name: "NAME" }],
    flags: [
      { name: "url", value: "URL", required: true, help: "base URL holding index.json and parts/" },
      { name: "key", value: "KEY", required: true, help: "the publisher's public key (base64)" },
      { name: "subscription", boolean: true, help: "send this host's subscription key" },
    ],
    build: (p) => ({
      action: "appqueue.add",
      params: {
        name: p.args.NAME!,
        url: str(p.flags.url) ?? "",
        publicKey: str(p.flags.key) ?? "",
        subscription: p.flags.subscription === true,
      },
    }),
    render: (r) => `Added AppQueue ${(r as AppQueueInfo).name}.\n` + renderQueue(r as AppQueueInfo),
  }),
  cmd({
    path: ["appqueue", "set"],
    summary: "Change an AppQueue's URL, key or subscription need",
    args: [{ name: "NAME" }],
    flags: [
      { name: "url", value: "URL", help: "base URL holding index.json and parts/" },
      { name: "key", value: "KEY", help: "the publisher's public key (base64)" },
      { name: "subscription", boolean: true, help: "send this host's subscription key" },
      { name: "no-subscription", boolean: true, help: "do not send it" },
    ],
    build: (p) => ({
      action: "appqueue.set",
      params: {
        name: p.args.NAME!,
        url: str(p.flags.url),
        publicKey: str(p.flags.key),
        subscription: p.flags.subscription === true
          ? true
          : p.flags["no-subscription"] === true
          ? false
          : undefined,
      },
    }),
    render: (r) => renderQueue(r as AppQueueInfo),
  }),
  cmd({
    path: ["appqueue", "del"],
    summary: "Forget an AppQueue (installed modules stay)",
    args: [{ name: "NAME" }],
    flags: [],
    destructive: true,
    build: (p) => ({ action: "appqueue.del", params: { name: p.args.NAME! } }),
    render: (r) => `Deleted ${(r as { deleted: string }).deleted}.\n`,
  }),

  cmd({
    path: ["system", "subscription", "set"],
    summary: "Set the host's subscription key (for the supported queue); never shown in full",
    args: [{ name: "KEY" }],
    flags: [],
    build: (p) => ({ action: "system.subscription.set", params: { key: p.args.KEY! } }),
    render: (r) => renderSubscription(r as SubscriptionInfo),
  }),
  cmd({
    path: ["system", "subscription", "show"],
    summary: "Show whether a subscription key is set (its last 4 characters)",
    args: [],
    flags: [],
    build: () => ({ action: "system.subscription.show", params: {} }),
    render: (r) => renderSubscription(r as SubscriptionInfo),
  }),
  cmd({
    path: ["system", "subscription", "clear"],
    summary: "Remove the host's subscription key",
    args: [],
    flags: [],
    destructive: true,
    build: () => ({ action: "system.subscription.clear", params: {} }),
    render: (r) => renderSubscription(r as SubscriptionInfo),
  }),

  cmd({
    path: ["module", "search"],
    summary: "Search the AppQueues for modules by name or description",
    args: [{ name: "TEXT", optional: true }],
    flags: searchFlags,
    build: (p) => ({
      action: "module.search",
      params: {
        term: p.args.TEXT,
        queue: str(p.flags.queue),
        allVersions: p.flags["all-versions"] === true,
      },
    }),
    render: (r) => renderAvailable(r as AvailableRelease[]),
  }),
  cmd({
    path: ["module", "available"],
    summary: "List the modules the AppQueues offer",
    args: [],
    flags: searchFlags,
    build: (p) => ({
      action: "module.search",
      params: { queue: str(p.flags.queue), allVersions: p.flags["all-versions"] === true },
    }),
    render: (r) => renderAvailable(r as AvailableRelease[]),
  }),
  cmd({
    path: ["module", "install"],
    summary: "Download, verify and install a module from an AppQueue (vKaOS first)",
    args: [{ name: "NAME[@VERSION]" }],
    flags: [
      { name: "queue", value: "QUEUE", help: "install from this queue" },
      ALLOW_NEW_PUBLISHER,
    ],
    build(p) {
      const [name, version] = p.args["NAME[@VERSION]"]!.split("@", 2);
      return {
        action: "module.install",
        params: {
          name,
          version,
          queue: str(p.flags.queue),
          ...allowNewPublisher(p.flags),
        },
      };
    },
    render: (r) => `Installed ${(r as Module).name} ${(r as Module).version}.\n`,
  }),
  cmd({
    path: ["module", "update"],
    summary: "Update a module to the newest version its AppQueue offers",
    args: [{ name: "NAME" }],
    flags: [{ name: "queue", value: "QUEUE", help: "update from this queue" }, ALLOW_NEW_PUBLISHER],
    build: (p) => ({
      action: "module.update",
      params: { name: p.args.NAME!, queue: str(p.flags.queue), ...allowNewPublisher(p.flags) },
    }),
    render(r) {
      const u = r as UpdateResult;
      return u.updated
        ? `Updated ${u.module.name} from ${u.previous} to ${u.module.version} (queue ${u.queue}).\n`
        : `${u.module.name} ${u.module.version} is the newest version in queue ${u.queue}.\n`;
    },
  }),
  cmd({
    path: ["module", "commands"],
    summary: "List the commands installed modules add to the CLI",
    args: [],
    flags: [],
    build: () => ({ action: "module.commands", params: {} }),
    render: (r) =>
      table(
        ["COMMAND", "ACTION", "HELP"],
        (r as ModuleCommandInfo[]).map((c) => [
          `${c.module} ${c.command} INSTANCE`,
          c.type,
          c.help,
        ]),
      ),
  }),
];

/** The one-line command of a module command, as the runner shows and parses it. */
export function moduleCommand(c: ModuleCommandInfo): Command {
  const logs = c.type === "logs";
  return cmd({
    path: [c.module, c.command],
    summary: c.help || `Run ${c.module}'s ${c.command} (${c.type})`,
    args: [{ name: "INSTANCE" }],
    flags: logs ? [{ name: "lines", value: "N", help: "how many lines (default 20)" }] : [],
    build: (p) => ({
      action: "module.run",
      params: {
        module: c.module,
        command: c.command,
        instance: p.args.INSTANCE!,
        ...(logs && p.flags.lines !== undefined ? { lines: linesFlag(p.flags.lines) } : {}),
      },
    }),
    render: renderModuleRun,
  });
}

function linesFlag(value: string | boolean): number {
  const n = Number(value);
  if (typeof value !== "string" || !/^\d+$/.test(value) || n < 1 || n > 5000) {
    throw new UsageError(`--lines takes a number from 1 to 5000, not ${String(value)}`);
  }
  return n;
}

/** A module command's result: its figures as a table, or its output lines, or its message. */
export function renderModuleRun(r: unknown): string {
  const x = r as ModuleRunResult;
  if (x.stats) {
    return table(["FIGURE", "VALUE"], Object.entries(x.stats).map(([k, v]) => [k, v]));
  }
  if (x.lines) {
    const head = x.code !== undefined && x.code !== 0 ? `(exit code ${x.code})\n` : "";
    return head + x.lines.map((l) => l + "\n").join("");
  }
  return `${x.module} ${x.command} on ${x.instance}: ${x.message}\n`;
}

/**
 * Finds `MODULE COMMAND …` among the commands installed modules declare (asked over IPC);
 * undefined when the words name none or kattach cannot be reached.
 */
export async function findModuleCommand(
  words: string[],
  connect: () => Promise<IpcClient>,
): Promise<{ command: Command; rest: string[] } | undefined> {
  if (words.length < 2 || !/^[a-z][a-z0-9-]{0,31}$/.test(words[0])) return undefined;
  let client: IpcClient | undefined;
  try {
    client = await connect();
    const list = await client.call("module.commands", {});
    const found = list.find((c) => c.module === words[0] && c.command === words[1]);
    return found && { command: moduleCommand(found), rest: words.slice(2) };
  } catch {
    return undefined;
  } finally {
    client?.close();
  }
}

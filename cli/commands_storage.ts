/**
 * One-line commands of guest storage (`storage list|init|del`) and of kattach's own log
 * (`system log [--lines N] [--follow]`). `storage init` destroys what is on the disk: the menus
 * confirm it, one-line mode needs `--yes`.
 */
import { type LogResult, MAX_LOG_LINES, type StorageInfo, type StorageList } from "../ipc/mod.ts";
import { cmd, type Command, intArg, UsageError } from "./command.ts";
import { fields, table } from "./render.ts";

/** Bytes as the operator reads them (GiB, MiB, KiB). */
export function humanBytes(n: number | null): string {
  if (n === null) return "-";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${u === 0 ? v : v.toFixed(v >= 100 ? 0 : 1)} ${units[u]}`;
}

function renderStorage(s: StorageInfo): string {
  return fields([
    ["Storage", s.name],
    ["State", s.state],
    ["Disk", `${s.device} (${s.model}, ${humanBytes(s.sizeBytes)})`],
    ["Label", s.label],
    ["UUID", s.uuid],
    ["Mounted on", s.state === "mounted" ? s.mountpoint : "-"],
    ["Free", humanBytes(s.freeBytes)],
    ["Instances", s.instances],
  ]);
}

/** The text of `storage list`. */
export function renderStorageList(l: StorageList): string {
  const storages = l.storages.length === 0 ? "Storage: none\n" : "Storage:\n" + table(
    ["NAME", "STATE", "DEVICE", "SIZE", "FREE", "INSTANCES", "LABEL"],
    l.storages.map((s) => [
      s.name,
      s.state,
      s.device,
      humanBytes(s.sizeBytes),
      humanBytes(s.freeBytes),
      s.instances,
      s.label,
    ]),
  ).replace(/^(?=.)/gm, "  ");
  const disks = l.disks.length === 0 ? "Disks: none found\n" : "Disks:\n" + table(
    ["DEVICE", "MODEL", "SIZE", "LABEL", "IN USE BY"],
    l.disks.map((d) => [
      d.device,
      d.model,
      humanBytes(d.sizeBytes),
      d.label || "-",
      d.inUseBy || "free (storage init can use it)",
    ]),
  ).replace(/^(?=.)/gm, "  ");
  return storages + disks + (l.notice ? `${l.notice}\n` : "");
}

/** The storage and log one-line commands. */
export const storageCommands: Command[] = [
  cmd({
    path: ["storage", "list"],
    summary: "List guest storage and the local disks (model, size, label, in use by)",
    args: [],
    flags: [],
    build: () => ({ action: "storage.list", params: {} }),
    render: (r) => renderStorageList(r as StorageList),
  }),
  cmd({
    path: ["storage", "init"],
    summary: "Make a local disk guest storage (destroys everything on it)",
    args: [{ name: "DISK" }],
    flags: [
      { name: "name", value: "NAME", help: "the storage's name (default: the disk's)" },
      { name: "yes", boolean: true, help: "confirm that everything on DISK is lost" },
    ],
    destructive: true,
    build(p) {
      if (p.flags.yes !== true) {
        throw new UsageError(
          `storage init destroys everything on ${p.args.DISK}: add --yes to confirm`,
        );
      }
      return {
        action: "storage.init",
        params: {
          disk: p.args.DISK!,
          name: p.flags.name as string | undefined,
          confirm: true,
        },
      };
    },
    render: (r) =>
      `Storage ${(r as StorageInfo).name} is ready.\n` + renderStorage(r as StorageInfo),
  }),
  cmd({
    path: ["storage", "del"],
    summary: "Forget a storage and unmount it (refused while instances live there)",
    args: [{ name: "NAME" }],
    flags: [],
    destructive: true,
    build: (p) => ({ action: "storage.del", params: { name: p.args.NAME! } }),
    render: (r) => `Deleted storage ${(r as { deleted: string }).deleted}.\n`,
  }),
  cmd({
    path: ["system", "log"],
    summary: "Show kattach's log (--follow: keep printing new lines until you leave)",
    args: [],
    flags: [
      { name: "lines", value: "N", help: `how many of the last lines (default 50)` },
      { name: "follow", boolean: true, help: "keep printing new lines (Ctrl+C ends)" },
    ],
    build(p) {
      let lines: number | undefined;
      if (p.flags.lines !== undefined) {
        lines = intArg(p.flags.lines as string, "--lines");
        if (lines < 0 || lines > MAX_LOG_LINES) {
          throw new UsageError(`--lines runs from 0 to ${MAX_LOG_LINES}, not ${lines}`);
        }
      }
      return { action: "system.log", params: { lines, follow: p.flags.follow === true } };
    },
    // With --follow every line comes as a progress frame, on stdout; with --json as {"line": …}.
    progress: (message) => message + "\n",
    progressJson: (message) => JSON.stringify({ line: message }) + "\n",
    render: (r) => (r as LogResult).lines.map((l) => l + "\n").join(""),
  }),
];

/**
 * One-line commands of guests: `instance start|stop|restart|pause|resume|kill|set|console|stats|log`
 * and `qmp NAME COMMAND [JSON-ARGS]`, `qmp NAME --list`, `qmp events NAME`. They build actions; kattach's supervisor does the work.
 */
import {
  type GuestStats,
  type Instance,
  MAX_EVENT_WATCH_SECONDS,
  MAX_SERIAL_LINES,
  type ParamsOf,
  type QmpCommandList,
  type QmpReply,
  type SerialLog,
} from "../ipc/mod.ts";
import { attachConsole } from "./console_attach.ts";
import { cmd, type Command, intArg, UsageError } from "./command.ts";
import { fields, machineText, table } from "./render.ts";

/** One line about an instance after a lifecycle action. */
function stateLine(i: Instance): string {
  const pid = i.pid ? ` (pid ${i.pid})` : "";
  const fwd = (i.forwards ?? []).map((f) => `127.0.0.1:${f.hostPort}→${f.guestPort}`).join(", ");
  return `${i.name}: ${i.state}${pid}${fwd ? `; forwards ${fwd}` : ""}` +
    (i.lastExit && (i.state === "failed" || i.state === "stopped") ? `; ${i.lastExit}` : "") +
    "\n";
}

function yesNo(v: string | boolean | undefined, what: string): boolean | undefined {
  if (v === undefined) return undefined;
  if (v === "yes" || v === "true" || v === "on") return true;
  if (v === "no" || v === "false" || v === "off") return false;
  throw new UsageError(`${what} takes yes or no, not ${JSON.stringify(v)}`);
}

function bytes(n: number | null): string {
  if (n === null) return "-";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${i === 0 ? n : n.toFixed(1)} ${units[i]}`;
}

/** Parses the optional JSON-ARGS of `qmp`: an object, or a UsageError. */
export function qmpArgs(text: string | undefined): Record<string, unknown> | undefined {
  if (text === undefined) return undefined;
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (err) {
    throw new UsageError(`JSON-ARGS is not valid JSON: ${(err as Error).message}`);
  }
  if (typeof v !== "object" || v === null || Array.isArray(v)) {
    throw new UsageError(`JSON-ARGS must be a JSON object, e.g. '{"device":"cfg"}'`);
  }
  return v as Record<string, unknown>;
}

const simple = (
  verb: "pause" | "resume" | "kill",
  summary: string,
  destructive = false,
): Command =>
  cmd({
    path: ["instance", verb],
    summary,
    args: [{ name: "NAME" }],
    flags: [],
    destructive,
    build: (p) => ({ action: `instance.${verb}`, params: { name: p.args.NAME! } }),
    render: (r) => stateLine(r as Instance),
  });

/**
 * `instance start|restart --wait` that returns an instance that is not running: the readiness
 * check failed (the restart policy may be starting it again) or it ended; exit 1, say why.
 */
function notReady(result: unknown, params: unknown): string[] {
  const inst = result as Instance;
  if (!(params as { wait?: boolean }).wait || inst.state === "running") return [];
  const why = inst.lastExit ? `; last exit: ${inst.lastExit}` : "";
  return [
    `${inst.name} did not become ready (it is ${inst.state}${why}); see \`instance show ${inst.name}\``,
  ];
}

/** The guest commands. */
export const guestCommands: Command[] = [
  cmd({
    path: ["instance", "start"],
    summary: "Start an instance's QEMU (readiness decides running or failed)",
    args: [{ name: "NAME" }],
    flags: [{ name: "wait", boolean: true, help: "wait until it is ready (or failed)" }],
    build: (p) => ({
      action: "instance.start",
      params: { name: p.args.NAME!, wait: p.flags.wait === true },
    }),
    render: (r) => stateLine(r as Instance),
    problems: notReady,
  }),
  cmd({
    path: ["instance", "stop"],
    summary: "Stop an instance: ACPI power-off, then QMP quit after the timeout",
    args: [{ name: "NAME" }],
    flags: [{ name: "timeout", value: "SECONDS", help: "wait for the power-off (default 30)" }],
    build: (p) => ({
      action: "instance.stop",
      params: {
        name: p.args.NAME!,
        timeoutSeconds: p.flags.timeout === undefined
          ? undefined
          : intArg(p.flags.timeout as string, "--timeout", [1, 3600]),
      },
    }),
    render: (r) => stateLine(r as Instance),
  }),
  cmd({
    path: ["instance", "restart"],
    summary: "Stop and start an instance (a fresh QEMU with the current configuration)",
    args: [{ name: "NAME" }],
    flags: [{ name: "wait", boolean: true, help: "wait until it is ready (or failed)" }],
    build: (p) => ({
      action: "instance.restart",
      params: { name: p.args.NAME!, wait: p.flags.wait === true },
    }),
    render: (r) => stateLine(r as Instance),
    problems: notReady,
  }),
  simple("pause", "Pause an instance's vCPUs"),
  simple("resume", "Resume a paused instance"),
  simple("kill", "End an instance's QEMU at once (no power-off, no restart)", true),
  cmd({
    path: ["instance", "set"],
    summary: "Set an instance's restart policy, autostart or machine type",
    args: [{ name: "NAME" }],
    flags: [
      { name: "restart-policy", value: "always|on-failure|never", help: "after QEMU ends" },
      { name: "autostart", value: "yes|no", help: "start when kattach starts" },
      {
        name: "machine",
        value: "q35|microvm",
        help: "from the next start (default microvm; q35 for PCI)",
      },
    ],
    build(p) {
      const policy = p.flags["restart-policy"];
      if (policy !== undefined && !["always", "on-failure", "never"].includes(String(policy))) {
        throw new UsageError(
          `--restart-policy takes always, on-failure or never, not ${JSON.stringify(policy)}`,
        );
      }
      const machine = p.flags.machine;
      if (machine !== undefined && machine !== "q35" && machine !== "microvm") {
        throw new UsageError(`--machine takes q35 or microvm, not ${JSON.stringify(machine)}`);
      }
      return {
        action: "instance.set",
        params: {
          name: p.args.NAME!,
          restartPolicy: policy as "always" | "on-failure" | "never" | undefined,
          autostart: yesNo(p.flags.autostart, "--autostart"),
          machine: machine as "q35" | "microvm" | undefined,
        },
      };
    },
    render: (r) => {
      const i = r as Instance;
      const machine = i.machine ? `; machine from its next start: ${machineText(i.machine)}` : "";
      return `${i.name}: restart policy ${i.restartPolicy}, autostart ${
        i.autostart ? "yes" : "no"
      }${machine}\n`;
    },
  }),
  cmd({
    path: ["instance", "console"],
    summary: "Attach this terminal to an instance's serial console (detach with Ctrl-])",
    args: [{ name: "NAME" }],
    flags: [],
    build: (p) => ({ action: "instance.console", params: { name: p.args.NAME! } }),
    render: (r) => `Console socket: ${(r as { socket: string }).socket}\n`,
    interactive: (r, stdio) => {
      const c = r as { instance: string; socket: string };
      return attachConsole(c.socket, { instance: c.instance, stdio });
    },
  }),
  cmd({
    path: ["instance", "stats"],
    summary: "Show an instance's CPU time, memory, network and block counters (QMP, /proc, /sys)",
    args: [{ name: "NAME" }],
    flags: [],
    build: (p) => ({ action: "instance.stats", params: { name: p.args.NAME! } }),
    render(r) {
      const s = r as GuestStats;
      return fields([
        ["Instance", s.instance],
        ["QEMU pid", s.pid],
        ["Status", s.status],
        ["Uptime", `${s.uptimeSeconds} s`],
        ["CPU time", s.cpuSeconds === null ? "-" : `${s.cpuSeconds.toFixed(2)} s`],
        ["QEMU RSS", bytes(s.rssBytes)],
        ["Guest memory", bytes(s.memoryBytes)],
      ]) + renderNicCounters(s.net) + "Block devices:\n" +
        table(
          ["DEVICE", "READ", "READS", "WRITTEN", "WRITES"],
          s.blocks.map((b) => [b.device, bytes(b.rdBytes), b.rdOps, bytes(b.wrBytes), b.wrOps]),
        ).replace(/^(?=.)/gm, "  ") + renderGuestFigures(s.guest);
    },
  }),
  cmd({
    path: ["instance", "log"],
    summary: "Show the last lines of an instance's serial console (its boot and services)",
    args: [{ name: "NAME" }],
    flags: [{ name: "lines", value: "N", help: "how many of the last lines (default 50)" }],
    build: (p) => ({
      action: "instance.log",
      params: {
        name: p.args.NAME!,
        lines: p.flags.lines === undefined
          ? undefined
          : intArg(p.flags.lines as string, "--lines", [1, MAX_SERIAL_LINES]),
      },
    }),
    render: (r) => {
      const l = r as SerialLog;
      return l.lines.length === 0
        ? `No console output from ${l.instance} yet.\n`
        : l.lines.map((line) => line + "\n").join("");
    },
  }),
  cmd({
    path: ["qmp"],
    summary:
      "Send a read-only or guest-local QMP command to an instance's QEMU and print the reply (--list: the allowed commands)",
    args: [{ name: "NAME" }, { name: "COMMAND", optional: true }, {
      name: "JSON-ARGS",
      optional: true,
    }],
    flags: [{
      name: "list",
      boolean: true,
      help: "list the QMP commands allowed here (query-*, stop, cont, …)",
    }],
    build(p): QmpRequest {
      if (p.flags.list === true) {
        if (p.args.COMMAND !== undefined) {
          throw new UsageError("--list takes no COMMAND; run `qmp NAME --list` alone");
        }
        return { action: "qmp.commands", params: { name: p.args.NAME! } };
      }
      if (p.args.COMMAND === undefined) {
        throw new UsageError("COMMAND is missing (see `qmp NAME --list` for the commands)");
      }
      return {
        action: "qmp",
        params: {
          name: p.args.NAME!,
          command: p.args.COMMAND,
          args: qmpArgs(p.args["JSON-ARGS"]),
        },
      };
    },
    render: (r) =>
      "commands" in (r as object)
        ? (r as QmpCommandList).commands.join("\n") + "\n"
        : JSON.stringify((r as QmpReply).return, null, 2) + "\n",
  }),
  cmd({
    path: ["qmp", "events"],
    summary: "Print an instance's QMP events as JSON lines for a while (default 10 s, at most 600)",
    args: [{ name: "NAME" }],
    flags: [
      { name: "seconds", value: "N", help: `how long to watch (default 10, at most 600)` },
      { name: "count", value: "N", help: "stop after this many events" },
    ],
    build: (p) => ({
      action: "qmp.events",
      params: {
        name: p.args.NAME!,
        seconds: p.flags.seconds === undefined
          ? undefined
          : bounded(p.flags.seconds as string, "--seconds", MAX_EVENT_WATCH_SECONDS),
        count: p.flags.count === undefined
          ? undefined
          : bounded(p.flags.count as string, "--count", 100_000),
      },
    }),
    // Events go to stdout as they come, one JSON object a line; notices stay on stderr.
    progress: (message) => message.startsWith("{") ? message + "\n" : undefined,
    render: () => "",
  }),
];

type QmpRequest =
  | { action: "qmp"; params: ParamsOf<"qmp"> }
  | { action: "qmp.commands"; params: ParamsOf<"qmp.commands"> };

function bounded(value: string, what: string, max: number): number {
  const n = intArg(value, what);
  if (n < 1 || n > max) throw new UsageError(`${what} runs from 1 to ${max}, not ${n}`);
  return n;
}

/**
 * Each NIC's traffic under `instance stats`, as the guest sees it (a tap's counters turned
 * round); a NIC without counters says why (user-mode networking) instead of showing 0.
 */
function renderNicCounters(net: GuestStats["net"]): string {
  if (net.length === 0) return "Network: no NICs\n";
  const counted = net.filter((n) => n.counters);
  const rows = counted.map((n) => {
    const c = n.counters!;
    return [
      `net${n.index}`,
      n.vlan ?? "-",
      n.tap ?? "-",
      bytes(c.rxBytes),
      c.rxPackets,
      bytes(c.txBytes),
      c.txPackets,
    ];
  });
  const headers = ["NIC", "VLAN", "TAP", "RECEIVED", "PACKETS", "SENT", "PACKETS"];
  return "Network (as the guest sees it):\n" +
    (rows.length > 0 ? table(headers, rows) : "").replace(/^(?=.)/gm, "  ") +
    net.filter((n) => !n.counters).map((n) =>
      `  net${n.index}${n.vlan === null ? "" : ` (VLAN ${n.vlan})`}: ${n.why ?? "not counted"}\n`
    ).join("");
}

/** The guest agent's figures under `instance stats` (load, memory, filesystems). */
function renderGuestFigures(g: GuestStats["guest"]): string {
  if (!g) return "Inside the guest: no answer from the guest agent\n";
  const used = g.memTotalBytes - g.memAvailableBytes;
  return "Inside the guest (agent):\n" + fields([
    ["Uptime", `${g.uptimeSeconds} s`],
    ["Load", g.load.join(" ")],
    ["Memory used", `${bytes(used)} of ${bytes(g.memTotalBytes)}`],
  ]).replace(/^(?=.)/gm, "  ") +
    table(
      ["MOUNT", "USED", "SIZE"],
      g.disks.map((d) => [d.mount, bytes(d.usedBytes), bytes(d.sizeBytes)]),
    ).replace(/^(?=.)/gm, "  ");
}

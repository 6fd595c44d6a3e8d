/**
 * Which QMP commands an operator may send through `aq qmp`: the debug allowlist. QEMU runs
 * kattach's guests, so a QMP command can reach the host's files and processes
 * (`human-monitor-command`, `migrate` to `exec:`, `screendump`, `blockdev-add`, `getfd`,
 * `device_add`, `object-add`, `x-*` …). The operator gets what reads state and what only acts
 * inside the guest; everything else is refused, naming the rule.
 */

/** Commands allowed by name: read-only, or acting inside the guest only. */
const ALLOWED = new Map<string, string>([
  ["stop", "pauses the guest's CPUs"],
  ["cont", "resumes the guest's CPUs"],
  ["system_powerdown", "presses the guest's ACPI power button"],
  ["system_reset", "resets the guest"],
  ["system_wakeup", "wakes a suspended guest"],
  ["inject-nmi", "sends an NMI into the guest"],
  ["send-key", "types keys into the guest"],
  ["input-send-event", "sends input events into the guest"],
  ["set_link", "sets a guest NIC's link up or down"],
  ["balloon", "sets the guest's balloon target"],
  ["qom-list", "reads the QOM tree"],
  ["qom-get", "reads a QOM property"],
  ["qom-list-types", "reads the QOM types"],
  ["qom-list-properties", "reads a QOM type's properties"],
  ["device-list-properties", "reads a device type's properties"],
  ["trace-event-get-state", "reads trace event states"],
]);

/** Commands refused with a pointer to the KaOS command that does the job instead. */
const INSTEAD = new Map<string, string>([
  ["quit", "use `instance stop NAME` or `instance kill NAME`"],
  ["qmp_capabilities", "kattach negotiated the capabilities already"],
]);

/** The rule in one line, as errors and help show it. */
export const QMP_ALLOWLIST_RULE =
  "only read-only and guest-local QMP commands are allowed: query-*, " +
  [...ALLOWED.keys()].join(", ");

/** The verdict on one QMP command: allowed or not, and the rule that decided. */
export type QmpVerdict = { allowed: true; rule: string } | { allowed: false; rule: string };

/** Judges one command name against the allowlist (pure; no QEMU involved). */
export function qmpVerdict(command: string): QmpVerdict {
  if (command.startsWith("x-") || command.startsWith("x_")) {
    return { allowed: false, rule: "experimental x-* commands are refused" };
  }
  if (/^query-[a-z0-9-]+$/.test(command)) {
    return { allowed: true, rule: "query-* commands only read state" };
  }
  const what = ALLOWED.get(command);
  if (what !== undefined) return { allowed: true, rule: `${command} ${what}` };
  const instead = INSTEAD.get(command);
  if (instead !== undefined) return { allowed: false, rule: `${command} is refused: ${instead}` };
  return { allowed: false, rule: QMP_ALLOWLIST_RULE };
}

/** Those of `commands` the allowlist lets through, in their order. */
export function allowedQmpCommands(commands: readonly string[]): string[] {
  return commands.filter((c) => qmpVerdict(c).allowed);
}

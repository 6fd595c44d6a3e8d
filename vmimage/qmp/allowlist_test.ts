import { deepStrictEqual as assertEquals, match as assertMatch } from "node:assert/strict";
import { allowedQmpCommands, qmpVerdict } from "./allowlist.ts";

Deno.test("qmp allowlist: read-only and guest-local commands pass", () => {
  for (
    const c of [
      "query-status",
      "query-commands",
      "query-block",
      "stop",
      "cont",
      "system_powerdown",
      "system_reset",
      "qom-list",
      "qom-get",
      "send-key",
    ]
  ) {
    assertEquals(qmpVerdict(c).allowed, true, c);
  }
});

Deno.test("qmp allowlist: commands that reach the host are refused, naming the rule", () => {
  for (
    const c of [
      "human-monitor-command",
      "migrate",
      "blockdev-add",
      "drive-mirror",
      "dump-guest-memory",
      "screendump",
      "getfd",
      "add-fd",
      "device_add",
      "object-add",
      "chardev-add",
      "netdev_add",
      "qom-set",
      "quit",
      "x-query-roms",
      "x-exit-preconfig",
      "query-",
    ]
  ) {
    const v = qmpVerdict(c);
    assertEquals(v.allowed, false, c);
    assertMatch(v.rule, /allowed|refused/);
  }
  assertMatch(qmpVerdict("screendump").rule, /only read-only and guest-local .*query-\*/);
  assertMatch(qmpVerdict("x-query-roms").rule, /experimental x-\*/);
  assertMatch(qmpVerdict("quit").rule, /instance stop NAME/);
});

Deno.test("qmp allowlist: filters a command list, keeping its order", () => {
  assertEquals(
    allowedQmpCommands(["cont", "migrate", "query-status", "screendump", "stop", "x-query-irq"]),
    ["cont", "query-status", "stop"],
  );
});

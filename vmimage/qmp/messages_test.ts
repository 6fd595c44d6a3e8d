import { assert, assertEquals } from "./_assert.ts";
import { parseQmpLine } from "./messages.ts";

function parseError(line: string): string {
  try {
    parseQmpLine(line);
  } catch (err) {
    return (err as Error).message;
  }
  throw new Error(`parsed: ${line}`);
}

Deno.test("parseQmpLine classifies QEMU's four message kinds and strips unknown members", () => {
  const greeting = parseQmpLine(
    '{"QMP": {"version": {"qemu": {"micro": 22, "minor": 2, "major": 7}, "package": "Debian"}, "capabilities": ["oob"], "new": 1}}',
  );
  assertEquals(greeting, {
    kind: "greeting",
    greeting: {
      QMP: {
        version: { qemu: { major: 7, minor: 2, micro: 22 }, package: "Debian" },
        capabilities: ["oob"],
      },
    },
  });
  assertEquals(parseQmpLine('{"return": {"x": 1}, "id": "k-1"}'), {
    kind: "return",
    reply: { return: { x: 1 }, id: "k-1" },
  });
  assertEquals(parseQmpLine('{"return": null}'), { kind: "return", reply: { return: null } });
  assertEquals(
    parseQmpLine('{"id": 5, "error": {"class": "CommandNotFound", "desc": "no"}}'),
    { kind: "error", reply: { id: 5, error: { class: "CommandNotFound", desc: "no" } } },
  );
  assertEquals(
    parseQmpLine('{"timestamp": {"seconds": 1, "microseconds": 2}, "event": "STOP"}'),
    {
      kind: "event",
      event: { event: "STOP", data: {}, timestamp: { seconds: 1, microseconds: 2 } },
    },
  );
});

Deno.test("parseQmpLine explains what is wrong with non-QMP input", () => {
  assert(parseError("nope").startsWith("not JSON"));
  assert(parseError("42").startsWith("not a JSON object"));
  assert(parseError("[]").startsWith("not a JSON object"));
  assert(parseError('{"hello": 1}').startsWith("unknown message"));
  assert(parseError('{"error": {"class": 1}}').startsWith("malformed error reply"));
  assert(parseError('{"event": "X"}').includes("timestamp"));
  assert(parseError('{"QMP": {}}').startsWith("malformed greeting"));
  assert(parseError("x".repeat(1000)).length < 300, "long input is cut in messages");
});

import assert from "node:assert/strict";
import { lazySchemaPending } from "../../lib/lazy_schema.ts";
import * as protocol from "./protocol.ts";

/** The agent protocol's schemas built by importing it (issue 13: none should be). */
const builtAtImport = Object.entries(protocol)
  .filter(([, v]) => typeof v === "object" && !lazySchemaPending(v))
  .map(([name]) => name);

Deno.test("agent protocol: importing it builds no schema; the first use does", () => {
  assert.deepEqual(builtAtImport, []);
  assert(lazySchemaPending(protocol.AgentRequest));
  const req = { v: protocol.AGENT_PROTOCOL_VERSION, id: 1, op: "run", module: "web", command: "x" };
  assert.deepEqual(protocol.AgentRequest.parse(req), req);
  assert(!protocol.AgentRequest.safeParse({ ...req, module: "Web" }).success);
  assert(!protocol.AgentRequest.safeParse({ ...req, extra: 1 }).success);
  assert(!lazySchemaPending(protocol.AgentRequest));
});

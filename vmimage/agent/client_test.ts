import { deepStrictEqual as assertEquals, ok as assert, rejects } from "node:assert/strict";
import {
  agentApplyConfig,
  AgentClient,
  AgentClosedError,
  agentPing,
  AgentRequest,
  AgentRequestError,
  agentStats,
  AgentTimeoutError,
} from "./mod.ts";

type Answer = (req: Record<string, unknown>) => string | null;

/** A unix-socket peer speaking kaos-agent/1 the way the test says (the guest's side). */
async function withPeer(
  answer: Answer,
  fn: (client: AgentClient, seen: Record<string, unknown>[]) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "kaos-agent-test-" });
  const path = `${dir}/agent.sock`;
  const listener = Deno.listen({ transport: "unix", path });
  const seen: Record<string, unknown>[] = [];
  const conns: Deno.Conn[] = [];
  const serve = (async () => {
    for await (const conn of listener) {
      conns.push(conn);
      (async () => {
        const dec = new TextDecoder();
        let buf = "";
        const chunk = new Uint8Array(4096);
        for (;;) {
          const n = await conn.read(chunk).catch(() => null);
          if (n === null) return;
          buf += dec.decode(chunk.subarray(0, n));
          let nl: number;
          while ((nl = buf.indexOf("\n")) >= 0) {
            const req = JSON.parse(buf.slice(0, nl));
            buf = buf.slice(nl + 1);
            seen.push(req);
            const out = answer(req);
            if (out !== null) await conn.write(new TextEncoder().encode(out)).catch(() => {});
          }
        }
      })();
    }
  })();
  const client = await AgentClient.connect(path, { log: () => {} });
  try {
    await fn(client, seen);
  } finally {
    await client.close();
    listener.close();
    for (const c of conns) {
      try {
        c.close();
      } catch { /* closed */ }
    }
    await serve.catch(() => {});
    await Deno.remove(dir, { recursive: true });
  }
}

const ok = (req: Record<string, unknown>, result: unknown) =>
  JSON.stringify({ v: 1, id: req.id, ok: true, result }) + "\n";

Deno.test("agent client: ping and stats round trips, results checked by schema", async () => {
  await withPeer((req) => {
    if (req.op === "ping") {
      return ok(req, { version: "kaos-agent/1", instance: "web-1", uptime: 3.5 });
    }
    return ok(req, { code: 0, stats: { requests: "12", active: "1" } });
  }, async (client, seen) => {
    assertEquals(await agentPing(client), {
      version: "kaos-agent/1",
      instance: "web-1",
      uptime: 3.5,
    });
    assertEquals(await agentStats(client, { module: "web", command: "stats" }), {
      requests: "12",
      active: "1",
    });
    assertEquals(seen.map((r) => [r.v, r.op]), [[1, "ping"], [1, "stats"]]);
    assert((seen[1].id as number) > (seen[0].id as number));
  });
});

Deno.test("agent client: apply-config sends the files base64-encoded (safe for the sh agent)", async () => {
  await withPeer((req) => ok(req, { code: 0, output: "" }), async (client, seen) => {
    await agentApplyConfig(client, {
      module: "web",
      env: "title='it'\\''s, \"quoted\"\nnext'\n",
      json: '{"title":"ünïcode"}\n',
    });
    const r = seen[0];
    assert(AgentRequest.safeParse(r).success);
    const decode = (s: unknown) =>
      new TextDecoder().decode(Uint8Array.from(atob(String(s)), (c) => c.charCodeAt(0)));
    assertEquals(decode(r.env), "title='it'\\''s, \"quoted\"\nnext'\n");
    assertEquals(decode(r.json), '{"title":"ünïcode"}\n');
  });
});

Deno.test("agent client: a silent guest times out; a late reply is dropped by id", async () => {
  let n = 0;
  let late: Record<string, unknown> | null = null;
  await withPeer((req) => {
    n++;
    if (n === 1) {
      late = req;
      return null; // silent
    }
    // answers the earlier request first (too late), then this one
    return ok(late!, { version: "old", instance: "x", uptime: 1 }) +
      ok(req, { version: "kaos-agent/1", instance: "web-1", uptime: 9 });
  }, async (client) => {
    await rejects(agentPing(client, { timeoutMs: 200 }), AgentTimeoutError);
    assertEquals((await agentPing(client, { timeoutMs: 2000 })).version, "kaos-agent/1");
  });
});

Deno.test("agent client: refusals, malformed replies and a closed channel are errors", async () => {
  await withPeer((req) => {
    if (req.op === "run") {
      return JSON.stringify({ v: 1, id: req.id, ok: false, error: "no such command" }) + "\n";
    }
    if (req.op === "ping") return "garbage\n" + ok(req, { version: 1 }); // wrong shape
    return null;
  }, async (client) => {
    await rejects(client.request({ op: "run", module: "web", command: "x" }), AgentRequestError);
    await rejects(agentPing(client), /ping reply is malformed/);
    // the client refuses requests that are not protocol requests
    await rejects(
      client.request({ op: "run", module: "web", command: "rm -rf /" }),
      TypeError,
    );
  });
  await withPeer(() => null, async (client) => {
    const pending = rejects(agentPing(client, { timeoutMs: 5000 }), AgentClosedError);
    await client.close();
    await pending;
  });
});

/**
 * The client's check of what kattach sends, over a real unix socket with the real server: a list
 * kattach sends without its own zod pass (`instance.list`, `vlan.list`) comes through equal when
 * well formed, and a malformed one is refused with an error that names the action and the field.
 * The same for a list kattach sends as JSON text (SQLite renders it), which the server passes on
 * unparsed. The dispatch is a small fake (it stands for a buggy kattach).
 */
import assert from "node:assert/strict";
import { IpcClient } from "./client.ts";
import { type Dispatch, JsonText, serveIpc } from "./server.ts";

const good = {
  name: "web-1",
  vmimage: "web",
  state: "defined",
  autostart: true,
  restartPolicy: "on-failure",
  nics: [{ index: 0, vlan: null, mac: "52:54:00:00:00:01", ip: null }],
  createdAt: "2026-11-27T12:00:00.000Z",
};

Deno.test("IpcClient: a well-formed list comes through; a malformed one is refused clearly", async () => {
  const dir = await Deno.makeTempDir({ prefix: "kaos-ipc-client-" });
  let answer: unknown = [];
  const dispatch: Dispatch = (action) => {
    if (action !== "instance.list") throw new Error(`unexpected ${action}`);
    return Promise.resolve(answer);
  };
  const server = await serveIpc({ runDir: `${dir}/run`, dispatch, log: () => {} });
  const client = await IpcClient.connect(`${dir}/run`);
  try {
    const many = Array.from({ length: 500 }, (_, i) => ({ ...good, name: `web-${i + 1}` }));
    answer = many;
    assert.deepEqual(await client.call("instance.list", {}), many);

    answer = [...many.slice(0, 7), { ...good, name: "Web 8" }, ...many.slice(8)];
    await assert.rejects(
      client.call("instance.list", {}),
      /^Error: kattach sent a malformed result for instance\.list: 7\.name: instance names look like web-1$/,
    );
    answer = many.map((m, i) => (i % 100 === 0 ? { ...m, state: "gone", extra: 1 } : m));
    await assert.rejects(
      client.call("instance.list", {}),
      /malformed result for instance\.list: 0\.state: .*\(and \d+ more\)$/,
    );
    answer = { not: "a list" };
    await assert.rejects(client.call("instance.list", {}), /malformed result for instance\.list/);
    // The connection is still usable after a refused answer.
    answer = [good];
    assert.deepEqual(await client.call("instance.list", {}), [good]);
  } finally {
    client.close();
    await server.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("IpcClient: a list kattach sends as JSON text comes through as it is and is still checked", async () => {
  const dir = await Deno.makeTempDir({ prefix: "kaos-ipc-client-" });
  let answer = new JsonText("[]");
  const logged: string[] = [];
  const dispatch: Dispatch = (action) => {
    // The same text for a list (sent as it is) and for an action whose results are not lists
    // of thousands (parsed and checked by the server like any result).
    if (action !== "instance.list" && action !== "system.status") {
      throw new Error(`unexpected ${action}`);
    }
    return Promise.resolve(answer);
  };
  const server = await serveIpc({ runDir: `${dir}/run`, dispatch, log: (l) => logged.push(l) });
  const client = await IpcClient.connect(`${dir}/run`);
  try {
    const many = Array.from({ length: 300 }, (_, i) => ({ ...good, name: `web-${i + 1}` }));
    answer = new JsonText(JSON.stringify(many));
    assert.deepEqual(await client.call("instance.list", {}), many);
    // A raw line break would split the frame: the server re-encodes such text.
    answer = new JsonText(JSON.stringify(many, null, 1));
    assert.deepEqual(await client.call("instance.list", {}), many);

    answer = new JsonText(JSON.stringify([{ ...good, name: "Web 8" }]));
    await assert.rejects(
      client.call("instance.list", {}),
      /^Error: kattach sent a malformed result for instance\.list: 0\.name: instance names look like web-1$/,
    );
    // Not a list action: the server checks the parsed text and reports its own bug.
    answer = new JsonText(JSON.stringify({ bogus: true }));
    await assert.rejects(
      client.call("system.status", {}),
      /internal error \(a bug\) in system\.status/,
    );
    assert.match(logged.join("\n"), /BUG: system\.status returned a bad result/);
    answer = new JsonText(JSON.stringify([good]));
    assert.deepEqual(await client.call("instance.list", {}), [good]);
  } finally {
    client.close();
    await server.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("IpcClient: no kattach on a state directory: the hint names that directory", async () => {
  const dir = await Deno.makeTempDir({ prefix: "kaos-ipc-client-" });
  try {
    await assert.rejects(
      () => IpcClient.connect(`${dir}/run`),
      (err: Error & { hint?: string; code?: string }) => {
        assert.match(err.message, new RegExp(`^Cannot reach kattach at ${dir}/run: `));
        assert.equal(err.code, "unavailable");
        assert.equal(
          err.hint,
          `is kattach running on that state directory? Start it with ` +
            `\`scripts/deno task kaos kattach --hosted --state ${dir}\``,
        );
        return true;
      },
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

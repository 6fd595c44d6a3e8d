/**
 * The client's check of what kattach sends, over a real unix socket with the real server: a list
 * kattach sends without its own zod pass (`instance.list`, `vlan.list`) comes through equal when
 * well formed, and a malformed one is refused with an error that names the action and the field.
 * The dispatch is a small fake (it stands for a buggy kattach).
 */
import assert from "node:assert/strict";
import { IpcClient } from "./client.ts";
import { type Dispatch, serveIpc } from "./server.ts";

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

/**
 * Tests of the text of `storage list` (each section starts at the left margin) and of
 * `system log --follow`'s streamed lines, plain and `--json` (a real IPC socket, a fake dispatch).
 */
import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { IpcClient } from "../ipc/client.ts";
import { type Dispatch, serveIpc } from "../ipc/server.ts";
import { renderStorageList } from "./commands_storage.ts";
import { EXIT } from "./oneline.ts";
import { runLine } from "./oneline_test_util.ts";

Deno.test("renderStorageList: sections at the margin, their tables indented", () => {
  const text = renderStorageList({
    storages: [{
      name: "disk0",
      uuid: "e29dcaf1-14f1-46d9-aaa3-bc17b076aae3",
      label: "KAOS-disk0",
      device: "/dev/vda",
      model: "virtio disk",
      sizeBytes: 2 * 1024 ** 3,
      state: "mounted",
      mountpoint: "/var/lib/kaos/storage/disk0",
      freeBytes: 1024 ** 3,
      instances: 2,
      createdAt: "2026-11-27T10:00:00Z",
    }],
    disks: [{
      device: "/dev/vda",
      model: "virtio disk",
      sizeBytes: 2 * 1024 ** 3,
      label: "ext4 KAOS-disk0",
      inUseBy: "KaOS storage disk0",
      candidate: false,
    }],
    notice: null,
  });
  const lines = text.split("\n");
  assertEquals(lines.filter((l) => !l.startsWith("  ")), ["Storage:", "Disks:", ""]);
  assertEquals(lines.filter((l) => /^\s+$/.test(l)), []);
});

Deno.test("system log --follow --json: every streamed line is one JSON value on stdout", async () => {
  const dir = await Deno.makeTempDir({ prefix: "kaos-cli-log-" });
  const streamed = ["2026-11-28T02:33:19Z first line", 'a "quoted" second line'];
  const dispatch: Dispatch = (action, _params, ctx) => {
    if (action !== "system.log") throw new Error(`unexpected ${action}`);
    for (const line of streamed) ctx.progress(line);
    return Promise.resolve({ lines: [], file: "/var/lib/kaos/log/kattach.log" });
  };
  const server = await serveIpc({ runDir: `${dir}/run`, dispatch, log: () => {} });
  const run = (words: string[]) => runLine(words, () => IpcClient.connect(`${dir}/run`));
  try {
    const json = await run(["system", "log", "--follow", "--json"]);
    assertEquals([json.code, json.err], [EXIT.ok, ""]);
    assertEquals(json.out.split("\n").filter((l) => l !== "").map((l) => JSON.parse(l)), [
      ...streamed.map((line) => ({ line })),
      { lines: [], file: "/var/lib/kaos/log/kattach.log" },
    ]);
    // Without --json the lines come as they are.
    const plain = await run(["system", "log", "--follow"]);
    assertEquals([plain.code, plain.out, plain.err], [EXIT.ok, streamed.join("\n") + "\n", ""]);
  } finally {
    await server.close();
    await Deno.remove(dir, { recursive: true });
  }
});

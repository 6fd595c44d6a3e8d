/**
 * The first QMP exchange against a scripted QMP peer on a real unix socket: `query-status` gets
 * what is left of the exchange's deadline, not a fixed 5 s of its own (a loaded machine's QEMU
 * answered the connection, then took longer than 5 s to answer the status: its autostart failed).
 */
import assert from "node:assert/strict";
import { FakeQmpServer } from "../vmimage/qmp/_fake_server.ts";
import { QmpTimeoutError } from "../vmimage/mod.ts";
import { beginFirstContact, finishFirstContact } from "./qmp_first.ts";

Deno.test("first QMP exchange: a status slower than the floor is still within the deadline", async () => {
  const server = await FakeQmpServer.start();
  try {
    // The floor stands for the old fixed limit (5 s), scaled down to keep the test short.
    const contact = beginFirstContact(server.path, { budgetMs: 60_000, statusAtLeastMs: 100 });
    const peer = await server.accept();
    await peer.handshake();
    const finished = finishFirstContact(contact);
    const req = await peer.expect("query-status");
    await new Promise((r) => setTimeout(r, 600)); // a loaded QEMU: six times the floor
    await peer.reply(req, { status: "running", singlestep: false, running: true });
    const { monitor, status } = await finished;
    assert.deepEqual(status, { status: "running", running: true });
    await monitor.close();
    await peer.close();
  } finally {
    await server.close();
  }
});

Deno.test("first QMP exchange: no status at all fails with a timeout and closes the connection", async () => {
  const server = await FakeQmpServer.start();
  try {
    // The status gets what the connection left of the budget (about 1.5 s), then gives up.
    const contact = beginFirstContact(server.path, { budgetMs: 1500, statusAtLeastMs: 100 });
    const peer = await server.accept();
    await peer.handshake();
    const finished = finishFirstContact(contact);
    await peer.expect("query-status");
    await assert.rejects(finished, (err: Error) => {
      assert.ok(err instanceof QmpTimeoutError, String(err));
      assert.match(err.message, /query-status/);
      return true;
    });
    await peer.waitClientClose(); // the monitor was closed, not left behind
    await peer.close();
  } finally {
    await server.close();
  }
});

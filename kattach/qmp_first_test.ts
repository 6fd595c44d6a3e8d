/**
 * The first QMP exchange against a scripted QMP peer on a real unix socket: `query-status` gets
 * what is left of the exchange's deadline, not a fixed 5 s of its own (a loaded machine's QEMU
 * answered the connection, then took longer than 5 s to answer the status: its autostart failed).
 */
import assert from "node:assert/strict";
import { FakeQmpServer } from "../vmimage/qmp/_fake_server.ts";
import { QmpTimeoutError } from "../vmimage/mod.ts";
import { beginFirstContact, finishFirstContact } from "./qmp_first.ts";
import { closeFd, INHERITED_FD, listenUnixFd, spawnDetached } from "../host/mod.ts";

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

Deno.test({
  name: "first QMP exchange with real QEMU handed its socket listening: one try, one round trip",
  sanitizeResources: false, // the SIGCHLD watch of spawnDetached
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "kaos-qmp-first-" });
    const sock = `${dir}/qmp.sock`;
    const fd = listenUnixFd(sock);
    let pid = 0;
    try {
      const qemu = spawnDetached([
        "qemu-system-x86_64",
        ...["-M", "none", "-S", "-accel", "tcg", "-nodefaults", "-display", "none"],
        ...["-chardev", `socket,id=qmp,fd=${INHERITED_FD},server=on,wait=off`],
        ...["-mon", "chardev=qmp,mode=control"],
      ], { cwd: dir, logFile: `${dir}/qemu.log`, inheritFd: fd });
      pid = qemu.pid;
      closeFd(fd);
      // Connected at once (the socket listens before QEMU runs); capabilities and the status
      // went out before the greeting and came back behind it.
      const { monitor, status } = await finishFirstContact(beginFirstContact(sock));
      assert.equal(monitor.connectStats.tries, 1);
      assert.deepEqual(status, { status: "prelaunch", running: false });
      assert.equal(monitor.greeting.QMP.version.qemu.major >= 7, true);
      // The monitor works on as usual; a second client after it is accepted too (a kattach
      // restarted attaches again by the path).
      await monitor.close();
      const again = await finishFirstContact(beginFirstContact(sock));
      assert.equal(again.status.status, "prelaunch");
      await again.monitor.close();
    } finally {
      if (pid) Deno.kill(pid, "SIGKILL");
      await Deno.remove(dir, { recursive: true });
    }
  },
});

/**
 * QmpMonitor against a scripted fake QMP server over a real unix socket: framing, ids, events,
 * errors, timeouts, close and quit.
 */
import { assert, assertEquals, assertInstanceOf, assertRejects } from "./_assert.ts";
import { eventLine, FakePeer, FakeQmpServer, GREETING } from "./_fake_server.ts";
import { QmpClosedError, QmpError, QmpProtocolError, QmpTimeoutError } from "./errors.ts";
import type { QmpEvent } from "./messages.ts";
import { QmpMonitor } from "./monitor.ts";
import { queryStatus, quit } from "./commands.ts";

/** Starts a fake server, connects a monitor to it and completes the handshake. */
async function connected(options: { log?: string[] } = {}) {
  const server = await FakeQmpServer.start();
  const log = options.log ?? [];
  const [monitor, peer] = await Promise.all([
    QmpMonitor.connect(server.path, { timeoutMs: 5000, log: (m) => log.push(m) }),
    server.accept().then(async (peer) => {
      await peer.handshake();
      return peer;
    }),
  ]);
  const cleanup = async () => {
    await monitor.close();
    peer.close();
    await server.close();
  };
  return { server, peer, monitor, log, cleanup };
}

Deno.test("connect reads a greeting that arrives one byte at a time", async () => {
  const server = await FakeQmpServer.start();
  try {
    const peerDone = server.accept().then(async (peer) => {
      await peer.sendByteByByte(`${GREETING}\r\n`);
      const req = await peer.expect("qmp_capabilities");
      assertEquals(req.arguments, undefined);
      await peer.reply(req);
      return peer;
    });
    const monitor = await QmpMonitor.connect(server.path, { timeoutMs: 5000 });
    const peer = await peerDone;
    assertEquals(monitor.greeting.QMP.version.qemu, { major: 7, minor: 2, micro: 0 });
    assertEquals(monitor.greeting.QMP.capabilities, ["oob"]);
    await monitor.close();
    peer.close();
  } finally {
    await server.close();
  }
});

Deno.test("a greeting coalesced with an event and a split CRLF loses nothing", async () => {
  const server = await FakeQmpServer.start();
  try {
    const peerDone = server.accept().then(async (peer) => {
      // One write: greeting, a whole event, and the start of another event cut after its CR.
      await peer.send(`${GREETING}\r\n${eventLine("A", { n: 1 })}\r\n${eventLine("B")}\r`);
      await peer.send("\n");
      await peer.reply(await peer.expect("qmp_capabilities"));
      return peer;
    });
    const monitor = await QmpMonitor.connect(server.path, { timeoutMs: 5000 });
    const peer = await peerDone;
    assertEquals(monitor.recentEvents().map((e) => [e.event, e.data]), [["A", { n: 1 }], [
      "B",
      {},
    ]]);
    await monitor.close();
    peer.close();
  } finally {
    await server.close();
  }
});

Deno.test("events between replies reach every consumer in order, with their data", async () => {
  const { peer, monitor, cleanup } = await connected();
  try {
    const first = monitor.events();
    const second = monitor.events();
    const one = monitor.execute("query-status");
    const reqOne = await peer.expect("query-status");
    await peer.sendLine(eventLine("STOP"));
    await peer.reply(reqOne, { status: "paused", running: false });
    assertEquals(await one, { status: "paused", running: false });
    const two = monitor.execute("cont");
    const reqTwo = await peer.expect("cont");
    await peer.send(`${eventLine("RESUME")}\r\n${eventLine("X", { reason: "test" })}\r\n`);
    await peer.reply(reqTwo);
    assertEquals(await two, {});
    for (const consumer of [first, second]) {
      const seen: [string, Record<string, unknown>][] = [];
      for await (const e of consumer) {
        seen.push([e.event, e.data]);
        if (seen.length === 3) break;
      }
      assertEquals(seen, [["STOP", {}], ["RESUME", {}], ["X", { reason: "test" }]]);
    }
  } finally {
    await cleanup();
  }
});

Deno.test("concurrent commands carry unique ids and match out-of-order replies", async () => {
  const { peer, monitor, cleanup } = await connected();
  try {
    const results = [monitor.execute("a"), monitor.execute("b", { x: 1 }), monitor.execute("c")];
    const reqs = [await peer.request(), await peer.request(), await peer.request()];
    assertEquals(reqs.map((r) => r.execute), ["a", "b", "c"]);
    assertEquals(reqs[1].arguments, { x: 1 });
    assertEquals(new Set(reqs.map((r) => JSON.stringify(r.id))).size, 3);
    await peer.reply(reqs[2], "C");
    await peer.reply(reqs[0], "A");
    await peer.reply(reqs[1], "B");
    assertEquals(await Promise.all(results), ["A", "B", "C"]);
  } finally {
    await cleanup();
  }
});

Deno.test("garbage and malformed lines are logged and skipped without harm", async () => {
  const { peer, monitor, log, cleanup } = await connected();
  try {
    const result = monitor.execute("query-status");
    const req = await peer.expect("query-status");
    await peer.send(
      [
        "this is not JSON",
        "[1,2,3]",
        '{"foo": 1}',
        '{"event": 5, "timestamp": {"seconds": 1, "microseconds": 2}}',
        '{"error": "not an object", "id": 1}',
        '{"return": {}, "id": "someone-else"}',
        "\xff\xfe{",
        "",
      ].join("\r\n"),
    );
    await peer.reply(req, { status: "running", running: true });
    assertEquals(await result, { status: "running", running: true });
    assertEquals(log.length, 7);
    assert(log[0].includes("not JSON"), log[0]);
    assert(log[3].includes("malformed event"), log[3]);
    assert(log[5].includes("unknown id"), log[5]);
    assertEquals(monitor.isClosed, false);
  } finally {
    await cleanup();
  }
});

Deno.test("an error reply rejects with QmpError carrying QMP's class", async () => {
  const { peer, monitor, cleanup } = await connected();
  try {
    const result = monitor.execute("device_del", { id: "nope" });
    await peer.replyError(
      await peer.expect("device_del"),
      "GenericError",
      "Device 'nope' not found",
    );
    const err = await assertRejects(() => result, QmpError);
    assertEquals([err.class, err.desc, err.command], [
      "GenericError",
      "Device 'nope' not found",
      "device_del",
    ]);
  } finally {
    await cleanup();
  }
});

Deno.test("a server that closes mid-command rejects everything pending with QmpClosedError", async () => {
  const { peer, monitor, cleanup } = await connected();
  try {
    const stream = monitor.events();
    const waiting = monitor.waitEvent("SHUTDOWN");
    const a = monitor.execute("a");
    const b = monitor.execute("b");
    await peer.request();
    await peer.request();
    peer.close();
    const errA = await assertRejects(() => a, QmpClosedError);
    assertEquals(errA.operation, "a");
    await assertRejects(() => b, QmpClosedError);
    await assertRejects(() => waiting, QmpClosedError);
    await monitor.closed;
    assertEquals(monitor.isClosed, true);
    assertEquals(await stream.next(), { value: undefined, done: true });
    await assertRejects(() => monitor.execute("c"), QmpClosedError);
    await assertRejects(() => monitor.waitEvent("X"), QmpClosedError);
  } finally {
    await cleanup();
  }
});

Deno.test("a command without a reply times out; its late reply is dropped quietly", async () => {
  const { peer, monitor, log, cleanup } = await connected();
  try {
    const slow = monitor.execute("slow", undefined, { timeoutMs: 50 });
    const req = await peer.expect("slow");
    const err = await assertRejects(() => slow, QmpTimeoutError);
    assertEquals([err.operation, err.timeoutMs], ["slow", 50]);
    await peer.reply(req, "late");
    const next = monitor.execute("next");
    await peer.reply(await peer.expect("next"), "ok");
    assertEquals(await next, "ok");
    assertEquals(log, []);
  } finally {
    await cleanup();
  }
});

Deno.test("waitEvent matches name and predicate, and times out", async () => {
  const { peer, monitor, cleanup } = await connected();
  try {
    const wanted = monitor.waitEvent("BLOCK_JOB_COMPLETED", {
      predicate: (e) => e.data.device === "d1",
    });
    await peer.sendLine(eventLine("BLOCK_JOB_COMPLETED", { device: "d0" }));
    await peer.sendLine(eventLine("OTHER", { device: "d1" }));
    await peer.sendLine(eventLine("BLOCK_JOB_COMPLETED", { device: "d1", offset: 7 }));
    assertEquals((await wanted).data, { device: "d1", offset: 7 });
    const err = await assertRejects(
      () => monitor.waitEvent("NEVER", { timeoutMs: 30 }),
      QmpTimeoutError,
    );
    assertEquals(err.operation, "event NEVER");
  } finally {
    await cleanup();
  }
});

Deno.test("an aborted or abandoned event stream unsubscribes", async () => {
  const { peer, monitor, cleanup } = await connected();
  try {
    const controller = new AbortController();
    const stream = monitor.events({ signal: controller.signal });
    await peer.sendLine(eventLine("ONE"));
    const got: QmpEvent[] = [];
    for await (const e of stream) {
      got.push(e);
      controller.abort();
    }
    assertEquals(got.map((e) => e.event), ["ONE"]);
    const other = monitor.events();
    await peer.sendLine(eventLine("TWO"));
    for await (const e of other) {
      assertEquals(e.event, "TWO");
      break;
    }
    assertEquals(await other.next(), { value: undefined, done: true });
  } finally {
    await cleanup();
  }
});

Deno.test("quit resolves whether QEMU replies before closing or just closes", async () => {
  for (const replies of [true, false]) {
    const { peer, monitor, cleanup } = await connected();
    try {
      const done = quit(monitor);
      const req = await peer.expect("quit");
      if (replies) await peer.reply(req);
      await peer.sendLine(eventLine("SHUTDOWN", { guest: false, reason: "host-qmp-quit" }));
      peer.close();
      await done;
      assertEquals(monitor.isClosed, true);
    } finally {
      await cleanup();
    }
  }
});

Deno.test("connect fails with QmpProtocolError when the peer does not greet", async () => {
  const server = await FakeQmpServer.start();
  try {
    const peerDone = server.accept().then(async (peer) => {
      await peer.sendLine('{"return": {}}');
      return peer;
    });
    await assertRejects(
      () => QmpMonitor.connect(server.path, { timeoutMs: 5000 }),
      QmpProtocolError,
      "expected the QMP greeting",
    );
    (await peerDone).close();
  } finally {
    await server.close();
  }
});

Deno.test("connect fails at once when the peer's first line is not JSON (the human monitor)", async () => {
  const server = await FakeQmpServer.start();
  try {
    const peerDone = server.accept().then(async (peer) => {
      await peer.sendLine("QEMU 7.2.22 monitor - type 'help' for more information");
      return peer;
    });
    // The deadline is far away: the rejection comes from the banner, not from the clock.
    await assertRejects(
      () => QmpMonitor.connect(server.path, { timeoutMs: 600_000 }),
      QmpProtocolError,
      "expected the QMP greeting, got not JSON",
    );
    (await peerDone).close();
  } finally {
    await server.close();
  }
});

Deno.test("connect times out when no greeting comes, and when there is no socket", async () => {
  const server = await FakeQmpServer.start();
  try {
    const peerDone = server.accept();
    const err = await assertRejects(
      () => QmpMonitor.connect(server.path, { timeoutMs: 100 }),
      QmpTimeoutError,
    );
    assertEquals(err.operation, "greeting");
    const peer = await peerDone;
    await peer.waitClientClose();
    peer.close();
    const missing = await assertRejects(
      () => QmpMonitor.connect(`${server.path}.missing`, { timeoutMs: 100 }),
      QmpTimeoutError,
    );
    assertInstanceOf(missing.cause, Deno.errors.NotFound);
  } finally {
    await server.close();
  }
});

Deno.test("connect waits for a socket that appears later", async () => {
  const dir = await Deno.makeTempDir({ prefix: "kaos-qmp-test-" });
  const path = `${dir}/late.sock`;
  try {
    const connecting = QmpMonitor.connect(path, { timeoutMs: 5000 });
    await new Promise((r) => setTimeout(r, 100));
    const listener = Deno.listen({ transport: "unix", path });
    const peer = new FakePeer(await listener.accept());
    await peer.handshake();
    const monitor = await connecting;
    // Tried while the socket was missing (every 4 ms for 100 ms), then once more: it says so.
    const stats = monitor.connectStats;
    assertEquals(stats.tries > 2, true, `tries: ${stats.tries}`);
    assertEquals(
      stats.socketMs >= 100 && stats.readyMs >= stats.socketMs,
      true,
      JSON.stringify(stats),
    );
    const status = queryStatus(monitor);
    await peer.reply(await peer.expect("query-status"), { status: "prelaunch", running: false });
    assertEquals(await status, { status: "prelaunch", running: false });
    await monitor.close();
    peer.close();
    listener.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("connect gives up when its signal aborts: waiting for the socket, or for the greeting", async () => {
  const server = await FakeQmpServer.start();
  try {
    const gone = new Error("QEMU exited");
    const noSocket = new AbortController();
    const waiting = QmpMonitor.connect(`${server.path}.missing`, {
      timeoutMs: 60_000,
      signal: noSocket.signal,
    });
    setTimeout(() => noSocket.abort(gone), 50);
    assertEquals(await waiting.then(() => null, (err) => err), gone);
    const noGreeting = new AbortController();
    const peerDone = server.accept();
    const greeting = QmpMonitor.connect(server.path, {
      timeoutMs: 60_000,
      signal: noGreeting.signal,
    });
    const peer = await peerDone; // connected; the greeting never comes
    noGreeting.abort(gone);
    assertEquals(await greeting.then(() => null, (err) => err), gone);
    await peer.waitClientClose(); // the half-made connection is closed, not left open
    peer.close();
  } finally {
    await server.close();
  }
});

Deno.test("close() rejects pending commands and is idempotent", async () => {
  const { peer, monitor, cleanup } = await connected();
  try {
    const pending = assertRejects(() => monitor.execute("a"), QmpClosedError);
    await peer.expect("a");
    await Promise.all([monitor.close(), monitor.close()]);
    await pending;
    await peer.waitClientClose();
  } finally {
    await cleanup();
  }
});

import assert from "node:assert/strict";
import { checkReadiness, SerialWatch, waitReady } from "./health.ts";

Deno.test("health: tcp passes on a listening port and fails on a closed one", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  const accepting = (async () => {
    for await (const c of listener) c.close();
  })();
  const ok = await checkReadiness({ type: "tcp", port: 1 }, { host: "127.0.0.1", port });
  assert.deepEqual(ok, { ok: true, detail: `tcp 127.0.0.1:${port} accepts connections` });
  listener.close();
  await accepting.catch(() => {});
  const closed = await checkReadiness({ type: "tcp", port }, { host: "127.0.0.1" });
  assert.equal(closed.ok, false);
  assert.match(closed.detail, new RegExp(`tcp 127\\.0\\.0\\.1:${port}: `));
});

Deno.test("health: http needs a 2xx answer; a silent server times out", async () => {
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    (req) =>
      new URL(req.url).pathname === "/ready"
        ? new Response("ok")
        : new Response("no", { status: 503 }),
  );
  const port = server.addr.port;
  const check = (path: string) => ({ type: "http" as const, port, path });
  assert.equal((await checkReadiness(check("/ready"), {})).ok, true);
  const down = await checkReadiness(check("/"), {});
  assert.deepEqual(down, { ok: false, detail: `GET http://127.0.0.1:${port}/: HTTP 503` });
  await server.shutdown();

  // A TCP listener that never answers HTTP.
  const mute = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const held: Deno.Conn[] = [];
  const accepting = (async () => {
    for await (const c of mute) held.push(c);
  })();
  const silent = await checkReadiness(
    { type: "http", port: (mute.addr as Deno.NetAddr).port, path: "/" },
    {},
    { probeTimeoutMs: 300 },
  );
  assert.equal(silent.ok, false);
  assert.match(silent.detail, /no answer within 300 ms/);
  held.forEach((c) => c.close());
  mute.close();
  await accepting.catch(() => {});
});

Deno.test("health: serial marker appears in the log while waiting; old output is skipped", async () => {
  const dir = await Deno.makeTempDir({ prefix: "kaos_health_test_" });
  const log = `${dir}/serial.log`;
  await Deno.writeTextFile(log, "boot\nweb: ready (previous boot)\n");
  const from = (await Deno.stat(log)).size;
  const check = { type: "serial" as const, marker: "web: ready" };
  assert.equal((await checkReadiness(check, { serialLog: log })).ok, true);
  assert.equal((await checkReadiness(check, { serialLog: log, serialFrom: from })).ok, false);
  setTimeout(() => Deno.writeTextFileSync(log, "web: ready on :80\n", { append: true }), 200);
  const r = await waitReady(check, { serialLog: log, serialFrom: from }, {
    timeoutMs: 10_000,
    intervalMs: 50,
  });
  assert.deepEqual(r, { ok: true, detail: "serial: web: ready on :80" });
  const missing = await waitReady(
    { type: "serial", marker: "never" },
    { serialLog: log },
    { timeoutMs: 200, intervalMs: 50 },
  );
  assert.equal(missing.ok, false);
  // No CPU reader: the deadline is wall time, and the detail says how long was waited.
  assert.match(missing.detail, /^not ready after \d+ ms: serial: no line with "never" yet$/);
  assert.equal((await checkReadiness(check, {})).detail, "no serial log to watch");
  // vKaOS prefixes a service's lines with its module's name; one that names itself shows it once.
  const twice = { serialLog: log, serialFrom: (await Deno.stat(log)).size };
  Deno.writeTextFileSync(log, "web: web: ready on port 80\n", { append: true });
  assert.deepEqual(await checkReadiness(check, twice), {
    ok: true,
    detail: "serial: web: ready on port 80",
  });
  const once = { serialLog: log, serialFrom: (await Deno.stat(log)).size };
  Deno.writeTextFileSync(log, "hello: web: ready, said hello\n", { append: true });
  assert.deepEqual(await checkReadiness(check, once), {
    ok: true,
    detail: "serial: hello: web: ready, said hello",
  });
  // A guest's escape sequences do not reach the detail that `instance show` prints.
  const evil = { serialLog: log, serialFrom: (await Deno.stat(log)).size };
  Deno.writeTextFileSync(log, "web: ready \x1b]0;owned\x07\x1b[2Jnow\r\n", { append: true });
  assert.deepEqual(await checkReadiness(check, evil), {
    ok: true,
    detail: "serial: web: ready ]0;owned[2Jnow",
  });
  await Deno.remove(dir, { recursive: true });
});

Deno.test("health: a guest's fatal line ends the wait at once, whatever the check", async () => {
  const dir = await Deno.makeTempDir({ prefix: "kaos_health_test_" });
  const log = `${dir}/serial.log`;
  // an earlier boot's fatal line is not this boot's
  await Deno.writeTextFile(log, "KAOS-GUEST: fatal data disk /dev/vdc old\n");
  const from = (await Deno.stat(log)).size;
  setTimeout(() =>
    Deno.writeTextFileSync(
      log,
      "KAOS-GUEST: fatal data disk /dev/vdc needs a manual repair (e2fsck -p exit 4: \x1b[2Jx)" +
        "; not mounted, services not started\r\n",
      { append: true },
    ), 200);
  const r = await waitReady({ type: "tcp", port: 1 }, { serialLog: log, serialFrom: from }, {
    timeoutMs: 60_000,
    intervalMs: 50,
    probeTimeoutMs: 100,
  });
  assert.deepEqual(r, {
    ok: false,
    detail: "the guest cannot start its services: data disk /dev/vdc needs a manual repair " +
      "(e2fsck -p exit 4: [2Jx); not mounted, services not started",
  });
  await Deno.remove(dir, { recursive: true });
});

Deno.test("health: a serial check finds the guest's fatal line in its own pass and ends at once", async () => {
  const dir = await Deno.makeTempDir({ prefix: "kaos_health_test_" });
  const log = `${dir}/serial.log`;
  await Deno.writeTextFile(log, "KAOS-GUEST: fatal module old (an earlier boot)\n");
  const from = (await Deno.stat(log)).size;
  setTimeout(() =>
    Deno.writeTextFileSync(
      log,
      "booting\nKAOS-GUEST: fatal module writer refuses to run: \x1b[1mno\r\nweb: ready\n",
      { append: true },
    ), 200);
  const r = await waitReady({ type: "serial", marker: "web: ready" }, {
    serialLog: log,
    serialFrom: from,
  }, { timeoutMs: 60_000, intervalMs: 50 });
  assert.deepEqual(r, {
    ok: false,
    detail: "the guest cannot start its services: module writer refuses to run: [1mno",
    final: true,
  });
  // Without a fatal line the marker is found as before.
  Deno.writeTextFileSync(log, "");
  setTimeout(() => Deno.writeTextFileSync(log, "x\nweb: ready\n", { append: true }), 100);
  const ok = await waitReady({ type: "serial", marker: "web: ready" }, { serialLog: log }, {
    timeoutMs: 60_000,
    intervalMs: 50,
  });
  assert.deepEqual(ok, { ok: true, detail: "serial: web: ready" });
  await Deno.remove(dir, { recursive: true });
});

Deno.test("health: the deadline counts the guest's CPU time; a starved guest is waited for", async () => {
  const dir = await Deno.makeTempDir({ prefix: "kaos_health_test_" });
  const log = `${dir}/serial.log`;
  await Deno.writeTextFile(log, "booting\n");
  const check = { type: "serial" as const, marker: "web: ready" };
  // Starved: its CPU time stands still, so 200 ms of deadline outlast 600 ms of waiting.
  setTimeout(() => Deno.writeTextFileSync(log, "web: ready\n", { append: true }), 600);
  const starved = await waitReady(check, { serialLog: log }, {
    timeoutMs: 200,
    intervalMs: 50,
    cpuMs: () => 7_000,
  });
  assert.deepEqual(starved, { ok: true, detail: "serial: web: ready" });
  // Busy: its CPU time runs with the wall clock, so the 600 ms deadline comes well before the
  // 6 s ceiling, and the detail says what was counted.
  const from = (await Deno.stat(log)).size;
  const start = Date.now();
  const busy = await waitReady(check, { serialLog: log, serialFrom: from }, {
    timeoutMs: 600,
    intervalMs: 50,
    cpuMs: () => Date.now() - start + 7_000,
  });
  assert.equal(busy.ok, false);
  assert.match(
    busy.detail,
    /^not ready after \d+ ms of its CPU time \(\d+ ms\): serial: no line with "web: ready" yet$/,
  );
  assert.ok(Date.now() - start < 3_000, `${Date.now() - start} ms`);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("SerialWatch: one read serves every check of a guest; the first of marker and fatal line wins", async () => {
  const dir = await Deno.makeTempDir({ prefix: "kaos_health_test_" });
  const log = `${dir}/serial.log`;
  await Deno.writeTextFile(log, "old: web: ready\n");
  const from = (await Deno.stat(log)).size;
  let now = 0;
  const watch = new SerialWatch(log, from, ["vkaos: up", "web: ready"], () => now);
  assert.equal(watch.watches("web: ready"), true);
  assert.equal(watch.watches("KAOS-GUEST: fatal "), true);
  assert.equal(watch.watches("other"), false);
  watch.look(25);
  assert.equal(watch.outcome("web: ready"), null); // the earlier boot's line is skipped
  Deno.writeTextFileSync(log, "vkaos: up\nweb: rea", { append: true });
  now = 10;
  watch.look(25); // the last read is 10 ms old: fresh enough, not read again
  assert.equal(watch.outcome("vkaos: up"), null);
  now = 30;
  watch.look(25);
  assert.deepEqual(watch.outcome("vkaos: up"), { ready: "vkaos: up" });
  assert.equal(watch.outcome("web: ready"), null); // a line not ended yet
  Deno.writeTextFileSync(log, "dy\nKAOS-GUEST: fatal data disk\n", { append: true });
  now = 60;
  watch.look(25);
  assert.deepEqual(watch.outcome("web: ready"), { ready: "web: ready" });
  assert.equal(watch.fatal(), "data disk");
  // The fatal line before a marker fails that check.
  const early = new SerialWatch(log, 0, ["never", "vkaos: up"]);
  Deno.writeTextFileSync(log, "never\n", { append: true });
  early.look();
  assert.deepEqual(early.outcome("vkaos: up"), { ready: "vkaos: up" });
  assert.deepEqual(early.outcome("never"), { fatal: "data disk" });
  // Two serial checks through one watch: both pass, on lines printed once.
  const shared = new SerialWatch(log, from, ["vkaos: up", "web: ready"]);
  const results = await Promise.all(
    ["vkaos: up", "web: ready"].map((marker) =>
      checkReadiness({ type: "serial", marker }, {
        serialLog: log,
        serialFrom: from,
        serial: shared,
      })
    ),
  );
  assert.deepEqual(results.map((r) => r.ok), [true, true]);
  await Deno.remove(dir, { recursive: true });
});

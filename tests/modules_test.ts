/**
 * App Modules that manage themselves: the guest agent (docs/guest.md) and the module commands and
 * configuration changes that go through it (docs/modules.md), against real QEMU guests under a
 * hosted kattach. The busybox `web` fixture first: `config-group set` reloads it in place (same
 * QEMU pid, same guest boot), `web stats` / `web logs` read the guest, `instance stats` shows the
 * guest's own figures, and a paused (silent) guest only costs its own request's deadline; then the
 * same on a q35 machine (virtio-serial-pci).
 * Then the catalogue (modules/): scripts/build-queue signs a queue served on loopback; nginx,
 * Redis and PostgreSQL are installed from it, deployed one instance each, reached from the host
 * through their forwarded ports (HTTP, redis-cli, psql), reloaded and asked for their figures;
 * PostgreSQL's database (on its data disk) survives restarts, a power cut and a `module update` to
 * an image built again (another template cluster).
 */
import assert from "node:assert/strict";
import type { ConfigApplyOutcome, GuestStats, Instance, ModuleRunResult } from "../ipc/mod.ts";
import { AppQueueServer } from "./_appqueue_server.ts";
import { AQ_TIMEOUT_MS, buildFixtures, FIXTURES_OUT, REPO_ROOT, TestKattach } from "./_harness.ts";
import { run } from "./_util.ts";
import { AgentClient, agentPing } from "../vmimage/agent/mod.ts";

type SetResult = { values: Record<string, unknown>; applied?: ConfigApplyOutcome[] };

async function ok(k: TestKattach, ...args: string[]): Promise<string> {
  const r = await k.aq(...args);
  assert.equal(r.code, 0, `aq ${args.join(" ")}: ${r.stderr}`);
  return r.stdout;
}

async function page(port: number): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${port}/`);
  return await res.text();
}

Deno.test({
  name: "modules: web reloads in place through the guest agent; stats, logs, guest figures",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    await buildFixtures();
    const k = await TestKattach.start();
    try {
      await ok(k, "module", "import", `${FIXTURES_OUT}/vkaos`);
      await ok(k, "module", "import", `${FIXTURES_OUT}/web`);
      await ok(k, "config-group", "add", "web", "site", "title=First title");
      await ok(k, "vmimage", "create", "web", "--modules", "web", "--config-groups", "site");
      await ok(k, "deploy", "web", "--wait");
      const before = await k.json<Instance>("instance", "show", "web-1");
      assert.equal(before.state, "running");
      const port = before.forwards!.find((f) => f.guestPort === 80)!.hostPort;
      assert.match(await page(port), /<h1>First title<\/h1>/);

      // The agent sleeps until a client connects (a blocked write, not a poll), answers it, and
      // waits again once it leaves: two connections of our own before kattach's first.
      const sock = `${k.stateDir}/instances/web-1/agent.sock`;
      for (const round of [1, 2]) {
        const agent = await AgentClient.connect(sock, {
          log: (m) => assert.fail(`round ${round}: ${m}`),
        });
        try {
          assert.equal((await agentPing(agent, { timeoutMs: 10_000 })).instance, "web-1");
        } finally {
          await agent.close();
        }
      }
      const stats1 = await k.json<GuestStats>("instance", "stats", "web-1");
      assert.ok(stats1.guest, "the guest agent answers sysinfo");
      assert.ok(stats1.guest.memTotalBytes > 100 * 1024 * 1024);
      assert.ok(stats1.guest.disks.some((d) => d.mount === "/mnt/modules/web"));

      // config-group set: applied to the running instance by reload, not restart
      const set = await k.json<SetResult>("config-group", "set", "site", "title=Second & <b>");
      assert.deepEqual(set.applied?.map((a) => [a.instance, a.mode, a.ok]), [
        ["web-1", "reload", true],
      ]);
      assert.match(await page(port), /<h1>Second &amp; &lt;b&gt;<\/h1>/);
      const after = await k.json<Instance>("instance", "show", "web-1");
      assert.equal(after.pid, before.pid, "same QEMU process");
      const stats2 = await k.json<GuestStats>("instance", "stats", "web-1");
      assert.ok(stats2.guest!.uptimeSeconds > stats1.guest.uptimeSeconds, "same guest boot");
      const human = await ok(k, "config-group", "set", "site", "greeting=welcome");
      assert.match(human, /web-1\s+reload\s+ok\s+reloaded in \d+ ms/);
      assert.match(await page(port), /Welcome to instance web-1/);

      // --no-apply stores only
      const stored = await k.json<SetResult>(
        "config-group",
        "set",
        "site",
        "title=Stored only",
        "--no-apply",
      );
      assert.equal(stored.applied, undefined);
      assert.equal(stored.values.title, "Stored only");
      assert.match(await page(port), /<h1>Second &amp; &lt;b&gt;<\/h1>/);

      // module commands from climod.aq, through the agent
      const stats = await k.json<ModuleRunResult>("web", "stats", "web-1");
      assert.equal(stats.stats?.port, "80");
      assert.equal(stats.stats?.title, "Second & <b>");
      assert.ok(Number(stats.stats?.page_bytes) > 100);
      assert.match(await ok(k, "web", "stats", "web-1"), /^FIGURE\s+VALUE\n(.*\n)*title\s+Second/);
      const logs = await k.json<ModuleRunResult>("web", "logs", "web-1", "--lines", "5");
      assert.ok(logs.lines!.includes("ready on port 80"), logs.lines!.join("\n")); // its own words
      assert.ok(logs.lines!.length <= 5);
      const bad = await k.aq("web", "logs", "web-1", "--lines", "0");
      assert.equal(bad.code, 2, bad.stderr);

      // a silent guest (vCPUs paused): its requests end at their deadline, kattach goes on
      await ok(k, "instance", "pause", "web-1");
      const t0 = Date.now();
      const silent = await k.json<GuestStats>("instance", "stats", "web-1");
      assert.equal(silent.guest, null, "no guest figures from a paused guest");
      assert.equal((await k.json<Instance[]>("instance", "list")).length, 1);
      const elapsed = Date.now() - t0;
      await ok(k, "instance", "resume", "web-1");
      // the late reply to the timed-out request is dropped; the next one is answered
      const again = await k.json<ModuleRunResult>("web", "stats", "web-1");
      assert.equal(again.stats?.title, "Second & <b>");
      console.log(`paused guest: instance stats answered in ${elapsed} ms (agent deadline 3 s)`);

      // the same agent on q35 (virtio-serial-pci rather than virtio-serial-device)
      await ok(k, "instance", "stop", "web-1");
      await ok(k, "instance", "set", "web-1", "--machine", "q35");
      const q35 = await k.json<Instance>("instance", "start", "web-1", "--wait");
      assert.equal(q35.state, "running");
      const argv = (await Deno.readTextFile(`/proc/${q35.pid}/cmdline`)).split("\0");
      assert.equal(argv[argv.indexOf("-M") + 1], "q35");
      assert.ok(argv.includes("virtio-serial-pci,id=agentbus"), argv.join(" "));
      const q35Port = q35.forwards!.find((f) => f.guestPort === 80)!.hostPort;
      const onQ35 = await k.json<SetResult>("config-group", "set", "site", "title=On q35");
      assert.deepEqual(onQ35.applied?.map((a) => [a.instance, a.mode, a.ok]), [
        ["web-1", "reload", true],
      ]);
      assert.match(await page(q35Port), /<h1>On q35<\/h1>/);
      assert.equal((await k.json<ModuleRunResult>("web", "stats", "web-1")).stats?.title, "On q35");
      assert.ok((await k.json<GuestStats>("instance", "stats", "web-1")).guest, "sysinfo on q35");
      assert.equal((await k.json<Instance>("instance", "show", "web-1")).pid, q35.pid);
    } finally {
      await k.dispose();
    }
  },
});

/** Runs a command; its stdout, or a failed assertion naming its stderr. */
async function sh(cmd: string[], env: Record<string, string> = {}): Promise<string> {
  const out = await new Deno.Command(cmd[0], {
    args: cmd.slice(1),
    env,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  assert.ok(out.success, `${cmd.join(" ")}: ${dec.decode(out.stderr)}${dec.decode(out.stdout)}`);
  return dec.decode(out.stdout);
}

Deno.test({
  name: "modules: nginx, Redis and PostgreSQL from a loopback queue: serve, reload live, stats",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const tmp = await Deno.makeTempDir({ prefix: "kaos-modules-queue-" });
    const server = AppQueueServer.start();
    const k = await TestKattach.start();
    try {
      // scripts/build-queue builds the catalogue (cached under build/) and signs a queue
      const pub = (await sh([
        `${REPO_ROOT}/scripts/build-queue`,
        `${tmp}/community`,
        "--key",
        `${tmp}/release.key`,
      ])).trim();
      server.mount("community", `${tmp}/community`);
      await ok(k, "appqueue", "set", "community", "--url", server.url("community"), "--key", pub);
      for (const m of ["vkaos", "nginx", "redis", "postgresql"]) {
        await ok(k, "module", "install", m, "--queue", "community");
      }
      await ok(k, "config-group", "add", "nginx", "site", "title=Catalogue <one>");
      await ok(k, "config-group", "add", "redis", "cache", "password=kaos-redis-pw");
      await ok(
        k,
        "config-group",
        "add",
        "postgresql",
        "db",
        "database=shop",
        "user=shopper",
        "password=kaos-pg-pw1",
      );
      await ok(k, "vmimage", "create", "site", "--modules", "nginx", "--config-groups", "site");
      await ok(k, "vmimage", "create", "cache", "--modules", "redis", "--config-groups", "cache");
      // PostgreSQL with a data disk: its cluster lives there, kept across restarts and updates
      await ok(
        k,
        "vmimage",
        "create",
        "db",
        "--modules",
        "postgresql",
        "--config-groups",
        "db",
        "--data-disk",
        "128M",
      );
      await Promise.all(["site", "cache", "db"].map((v) => ok(k, "deploy", v, "--wait")));
      const show = async (name: string) => await k.json<Instance>("instance", "show", name);
      const fwd = (i: Instance, port: number) => i.forwards!.find((f) => f.guestPort === port)!;

      // nginx serves the configured page; a new title is live without a restart
      const site = await show("site-1");
      assert.equal(site.state, "running");
      const web = fwd(site, 80).hostPort;
      assert.match(await page(web), /<h1>Catalogue &lt;one&gt;<\/h1>/);
      const up1 = (await k.json<GuestStats>("instance", "stats", "site-1")).guest!.uptimeSeconds;
      const set = await k.json<SetResult>("config-group", "set", "site", "title=Reloaded live");
      assert.deepEqual(set.applied?.map((a) => [a.instance, a.mode, a.ok]), [
        ["site-1", "reload", true],
      ]);
      assert.match(await page(web), /<h1>Reloaded live<\/h1>/);
      assert.equal((await show("site-1")).pid, site.pid, "same QEMU process");
      const up2 = (await k.json<GuestStats>("instance", "stats", "site-1")).guest!.uptimeSeconds;
      assert.ok(up2 > up1, `same guest boot (uptime ${up1} s, then ${up2} s)`);
      const ngx = await k.json<ModuleRunResult>("nginx", "stats", "site-1");
      assert.ok(Number(ngx.stats?.requests) >= 2, JSON.stringify(ngx.stats));
      assert.ok(Number(ngx.stats?.active_connections) >= 1);

      // a static site given in the configuration group (`site`: a gzip'd tar, base64), served in
      // place of the page by a live reload; an archive holding a link is refused, nothing changes
      const siteDir = `${tmp}/site`;
      await Deno.mkdir(`${siteDir}/css`, { recursive: true });
      await Deno.writeTextFile(
        `${siteDir}/index.html`,
        "<title>Static</title><h1>My own site</h1>",
      );
      await Deno.writeTextFile(`${siteDir}/css/site.css`, "h1 { color: teal }\n");
      const packed = (dir: string) =>
        sh(["sh", "-c", `tar -czf - -C '${dir}' . | base64 -w0`]).then((t) => t.trim());
      // the value from stdin (`site=@-`: longer than an SSH command may be); one value only
      const site1 = await packed(siteDir);
      const fromStdin = await run([
        Deno.execPath(),
        "run",
        "-A",
        `${REPO_ROOT}/main.ts`,
        "aq",
        "--state",
        k.stateDir,
        "--json",
        "config-group",
        "set",
        "site",
        "site=@-",
      ], { stdin: `${site1}\n`, timeoutMs: AQ_TIMEOUT_MS });
      assert.equal(fromStdin.code, 0, fromStdin.stderr);
      const static1 = JSON.parse(fromStdin.stdout) as SetResult;
      assert.equal(static1.values.site, site1);
      const twice = await k.aq("config-group", "set", "site", "site=@-", "text=@-");
      assert.equal(twice.code, 2);
      assert.match(twice.stderr, /only one value can come from stdin, not site and text/);
      assert.deepEqual(static1.applied?.map((a) => [a.instance, a.mode, a.ok]), [
        ["site-1", "reload", true],
      ]);
      assert.match(await page(web), /<h1>My own site<\/h1>/);
      // `show` and `list` cut the long value to its start and its length
      assert.match(
        await ok(k, "config-group", "show", "site"),
        /site = "H4sI\S+… \(\d+ characters\)/,
      );
      const css = await fetch(`http://127.0.0.1:${web}/css/site.css`);
      assert.equal(css.headers.get("content-type"), "text/css");
      assert.equal(await css.text(), "h1 { color: teal }\n");
      await Deno.symlink("/etc/passwd", `${siteDir}/passwd`);
      const refused = await k.json<SetResult>(
        "config-group",
        "set",
        "site",
        `site=${await packed(siteDir)}`,
      );
      assert.equal(refused.applied?.[0].ok, false);
      assert.match(
        refused.applied![0].detail,
        /site was refused: it holds \.\/passwd -> \/etc\/passwd/,
      );
      assert.match(await page(web), /<h1>My own site<\/h1>/);
      assert.equal((await show("site-1")).pid, site.pid, "same QEMU process");

      // Redis answers PING with the configured password only
      const cache = await show("cache-1");
      const rport = String(fwd(cache, 6379).hostPort);
      assert.equal(
        (await sh(["redis-cli", "-p", rport, "PING"], { REDISCLI_AUTH: "kaos-redis-pw" })).trim(),
        "PONG",
      );
      assert.match(await sh(["redis-cli", "-p", rport, "PING"]), /NOAUTH/);
      const rds = await k.json<ModuleRunResult>("redis", "stats", "cache-1");
      assert.equal(rds.stats?.redis_version, "7.0.15");
      assert.ok(Number(rds.stats?.total_commands_processed) >= 1, JSON.stringify(rds.stats));
      assert.match(await ok(k, "redis", "stats", "cache-1"), /connected_clients\s+\d+/);

      // psql reaches the configured database as the configured user
      const db = await show("db-1");
      let pport = String(fwd(db, 5432).hostPort);
      const psql = (sql: string, password = "kaos-pg-pw1") =>
        sh([
          "psql",
          "-X",
          "-h",
          "127.0.0.1",
          "-p",
          pport,
          "-U",
          "shopper",
          "-d",
          "shop",
          "-Atc",
          sql,
        ], { PGPASSWORD: password, PGCONNECT_TIMEOUT: "20" });
      assert.equal(
        (await psql("SELECT current_database() || ' ' || current_user")).trim(),
        "shop shopper",
      );
      // the image's template cluster was copied onto the instance's data disk at this first start:
      // a plain cluster, the instance's own
      const serial = await Deno.readTextFile(`${k.stateDir}/instances/db-1/serial.log`);
      assert.match(
        serial,
        /postgresql: cluster copied onto the data disk \(\/var\/lib\/postgresql\/pgdata\)/,
      );
      assert.equal(
        (await psql(
          "CREATE TABLE t (x int); INSERT INTO t SELECT generate_series(1, 1000); " +
            "SELECT sum(x) FROM t",
        )).trim(),
        "CREATE TABLE\nINSERT 0 1000\n500500",
      );
      const pg = await k.json<ModuleRunResult>("postgresql", "connections", "db-1");
      assert.ok(Number(pg.stats?.total) >= 1, JSON.stringify(pg.stats));
      assert.equal(pg.stats?.max_connections, "50");
      assert.match(await ok(k, "postgresql", "connections", "db-1"), /^FIGURE\s+VALUE\n/);
      // a new password by reload: the new one logs in at once, the old one no longer
      const repw = await k.json<SetResult>("config-group", "set", "db", "password=kaos-pg-pw2");
      assert.deepEqual(repw.applied?.map((a) => [a.instance, a.mode, a.ok]), [
        ["db-1", "reload", true],
      ]);
      assert.equal((await psql("SELECT count(*) FROM t", "kaos-pg-pw2")).trim(), "1000");
      // the module's admin session (bin/start) made the role and did the reload; still there
      assert.equal(
        (await psql(
          "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'kaos-admin'",
          "kaos-pg-pw2",
        )).trim(),
        "1",
      );
      await assert.rejects(psql("SELECT 1"), /password authentication failed/);
      assert.equal((await show("db-1")).pid, db.pid, "same QEMU process");

      // autovacuum: off for the start, on some seconds after ready (bin/start)
      for (let i = 0;; i++) {
        if ((await psql("SHOW autovacuum", "kaos-pg-pw2")).trim() === "on") break;
        assert.ok(i < 60, "autovacuum was not turned on within 60 s of ready");
        await new Promise((r) => setTimeout(r, 1000));
      }
      // the database survives an instance restart (a new QEMU, a new guest) and a kattach restart
      // followed by a stop and start: the rows, the role's new password
      await ok(k, "instance", "restart", "db-1", "--wait");
      pport = String(fwd(await show("db-1"), 5432).hostPort);
      const rows = async () => (await psql("SELECT count(*), sum(x) FROM t", "kaos-pg-pw2")).trim();
      assert.notEqual((await show("db-1")).pid, db.pid, "a new QEMU process");
      assert.equal(await rows(), "1000|500500");
      await psql("INSERT INTO t VALUES (-1)", "kaos-pg-pw2");
      await k.stop();
      await k.restart();
      await ok(k, "instance", "stop", "db-1");
      await ok(k, "instance", "start", "db-1", "--wait");
      pport = String(fwd(await show("db-1"), 5432).hostPort);
      assert.equal(await rows(), "1001|500499");
      const boots = await Deno.readTextFile(`${k.stateDir}/instances/db-1/serial.log`);
      assert.match(boots, /postgresql: ready on port 5432/);
      assert.doesNotMatch(boots, /no data disk/);

      // A power cut mid-write: QEMU SIGKILLed in a transaction that wrote 50,000 rows and has
      // not committed; the supervisor starts it again (on-failure), vKaOS replays the data disk's
      // journal (e2fsck -p) before the mount, PostgreSQL its WAL: every committed row is there,
      // the cut transaction's are not.
      const cutStarted = performance.now();
      await psql("CREATE TABLE p (n int PRIMARY KEY); CREATE TABLE big (x int)", "kaos-pg-pw2");
      for (let n = 1; n <= 5; n++) await psql(`INSERT INTO p VALUES (${n})`, "kaos-pg-pw2");
      const bulk = psql(
        "BEGIN; INSERT INTO big SELECT generate_series(1, 50000); SELECT pg_sleep(600); COMMIT",
        "kaos-pg-pw2",
      ).then(() => "committed", (err) => String(err));
      const inFlight = "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'PgSleep'";
      // generous deadlines: under TCG on a loaded machine the INSERT and the boot take minutes
      const until = Date.now() + 10 * 60_000;
      while ((await psql(inFlight, "kaos-pg-pw2")).trim() !== "1") {
        assert.ok(Date.now() < until, "the INSERT was not done and waiting within 10 minutes");
        await new Promise((r) => setTimeout(r, 500));
      }
      const cut = await show("db-1");
      Deno.kill(cut.pid!, "SIGKILL");
      assert.notEqual(await bulk, "committed", "the large INSERT was cut");
      let again = await show("db-1");
      const back = Date.now() + 10 * 60_000;
      while (!(again.state === "running" && again.pid !== cut.pid)) {
        assert.ok(Date.now() < back, `db-1 not running again within 10 minutes: ${again.state}`);
        await new Promise((r) => setTimeout(r, 500));
        again = await show("db-1");
      }
      pport = String(fwd(again, 5432).hostPort);
      assert.equal((await psql("SELECT count(*), sum(n) FROM p", "kaos-pg-pw2")).trim(), "5|15");
      assert.equal((await psql("SELECT count(*) FROM big", "kaos-pg-pw2")).trim(), "0");
      assert.equal(await rows(), "1001|500499");
      // this boot's check is the last one logged (earlier output may have moved to serial.log.1)
      const dir = `${k.stateDir}/instances/db-1`;
      const all = await Deno.readTextFile(`${dir}/serial.log.1`).catch(() => "") +
        await Deno.readTextFile(`${dir}/serial.log`);
      const checks = [...all.matchAll(/KAOS-GUEST: data disk \/dev\/vd\w+ checked \(.*\)/g)];
      assert.match(
        checks.at(-1)?.[0] ?? "",
        /\(e2fsck -p exit [01]: kaos-data: recovering journal/,
      );
      console.log(
        `power cut, restart, checks: ${((performance.now() - cutStarted) / 1000).toFixed(1)} s`,
      );

      // A `module update` to a rebuilt image (modules/build again: initdb again, so another
      // template id; the version bumped): the cluster is the instance's, not the build's, so
      // it starts with its rows and takes the new build's settings.
      const updateStarted = performance.now();
      const rebuilt = `${tmp}/rebuilt`;
      await sh([`${REPO_ROOT}/modules/build`, "--out", rebuilt, "--force", "postgresql"]);
      const mf = `${rebuilt}/postgresql/manifest.json`;
      const manifest = JSON.parse(await Deno.readTextFile(mf));
      const oldVersion = manifest.version;
      manifest.version = oldVersion.replace(
        /-kaos(\d+)$/,
        (_: string, n: string) => `-kaos${+n + 1}`,
      );
      assert.notEqual(manifest.version, oldVersion);
      await Deno.writeTextFile(mf, JSON.stringify(manifest, null, 2));
      const templateId = async (aqi: string) =>
        (await sh(["unsquashfs", "-cat", aqi, "usr/share/kaos/pgdata.id"])).trim();
      const oldId = await templateId(`${REPO_ROOT}/build/modules/out/postgresql/postgresql.aqi`);
      const newId = await templateId(`${rebuilt}/postgresql/postgresql.aqi`);
      assert.notEqual(newId, oldId, "the rebuilt image's template is another");
      await sh([
        Deno.execPath(),
        "run",
        "-A",
        `${REPO_ROOT}/main.ts`,
        "appqueue",
        "build",
        "--key",
        `${tmp}/release.key`,
        "--out",
        `${tmp}/community-2`,
        `${rebuilt}/postgresql`,
      ]);
      server.mount("community", `${tmp}/community-2`);
      assert.equal(
        await ok(k, "module", "update", "postgresql"),
        `Updated postgresql from ${oldVersion} to ${manifest.version} (queue community).\n`,
      );
      await ok(k, "instance", "restart", "db-1", "--wait");
      pport = String(fwd(await show("db-1"), 5432).hostPort);
      assert.equal(await rows(), "1001|500499");
      assert.equal((await psql("SELECT count(*), sum(n) FROM p", "kaos-pg-pw2")).trim(), "5|15");
      const updated = await Deno.readTextFile(`${dir}/serial.log`);
      assert.ok(
        updated.includes(
          `postgresql: the cluster on the data disk takes this build's settings (template ${newId}; ` +
            `it was copied from ${oldId})`,
        ),
        updated.slice(-3000),
      );
      console.log(
        `module update to a rebuilt image, restart, rows read: ${
          ((performance.now() - updateStarted) / 1000).toFixed(1)
        } s`,
      );
    } finally {
      await k.dispose();
      await server.close();
      await Deno.remove(tmp, { recursive: true }).catch(() => {});
    }
  },
});

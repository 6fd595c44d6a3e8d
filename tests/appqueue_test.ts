/**
 * AppQueues end to end: a real hosted kattach driven by `aq`, real signed queues built by the
 * author tool and served over HTTP on loopback, real fixture modules (fixtures/build-modules).
 * Every failure case checks that no module row and no file under STATE/modules is left behind.
 */
import assert from "node:assert/strict";
import {
  buildBundle,
  buildQueue,
  generateKeyFile,
  type KeyFile,
  type QueueIndex,
  signPayload,
} from "../appqueue/mod.ts";
import { runMenus } from "../cli/mod.ts";
import {
  type AppQueueInfo,
  type AvailableRelease,
  IpcClient,
  type Module,
  type ModuleCommandInfo,
  type SubscriptionInfo,
  type UpdateResult,
} from "../ipc/mod.ts";
import { AppQueueServer } from "./_appqueue_server.ts";
import { buildFixtures, FIXTURES_OUT, TestKattach } from "./_harness.ts";
import { Scripted } from "./_scripted.ts";
import { makeTestTls } from "./_tls.ts";

const FIXTURES = FIXTURES_OUT;

await buildFixtures();
const work = await Deno.makeTempDir({ prefix: "kaos_appqueue_test_" });
const keys = {
  community: await generateKeyFile(),
  supported: await generateKeyFile(),
  stranger: await generateKeyFile(),
};

/** web 1.1.0: the fixture with a new version, a module command and its appmgr action. */
async function makeWeb110(): Promise<string> {
  const dir = `${work}/web-1.1.0/web`;
  await Deno.mkdir(dir, { recursive: true });
  for (const f of ["web.aqi", "climod.aq", "appmgr.aq", "manifest.json"]) {
    await Deno.copyFile(`${FIXTURES}/web/${f}`, `${dir}/${f}`);
  }
  const edit = async (f: string, change: (j: Record<string, unknown>) => void) => {
    const j = JSON.parse(await Deno.readTextFile(`${dir}/${f}`));
    change(j);
    await Deno.writeTextFile(`${dir}/${f}`, JSON.stringify(j, null, 2));
  };
  await edit("manifest.json", (j) => {
    j.version = "1.1.0";
    // A hostile description: a title change, a screen clear and a bell for the operator's terminal.
    j.description = "Fixture web server \x1b]0;owned\x07\x1b[2J(1.1)";
  });
  await edit("climod.aq", (j) => {
    j.commands = [{ name: "reload", help: "Re-read the configuration", action: "reload" }];
  });
  await edit("appmgr.aq", (j) => {
    j.actions = [{ name: "reload", help: "Reload config", type: "reload-config" }];
  });
  return dir;
}
const web110 = await makeWeb110();

/** vKaOS 0.2.0: the fixture under a newer version (for updates from another publisher). */
async function makeVkaos020(): Promise<string> {
  const dir = `${work}/vkaos-0.2.0/vkaos`;
  await Deno.mkdir(dir, { recursive: true });
  for await (const e of Deno.readDir(`${FIXTURES}/vkaos`)) {
    if (e.isFile) await Deno.copyFile(`${FIXTURES}/vkaos/${e.name}`, `${dir}/${e.name}`);
  }
  const m = JSON.parse(await Deno.readTextFile(`${dir}/manifest.json`));
  m.version = "0.2.0";
  await Deno.writeTextFile(`${dir}/manifest.json`, JSON.stringify(m, null, 2));
  return dir;
}

async function queue(name: string, dirs: string[], key: KeyFile, serial: number) {
  const out = `${work}/${name}`;
  const index = await buildQueue(dirs, {
    out,
    key,
    serial,
    releaseNotes: { "web@1.1.0": "Adds reload" },
  });
  return { out, index };
}
const base = ["vkaos", "web", "hello"].map((m) => `${FIXTURES}/${m}`);
const community1 = await queue("community1", base, keys.community, 1);
const community2 = await queue("community2", [...base, web110], keys.community, 2);
const supported = await queue("supported", [`${FIXTURES}/hello`], keys.supported, 1);
// Another publisher offering the same names (vKaOS in a newer version).
const mirror = await queue(
  "mirror",
  [await makeVkaos020(), `${FIXTURES}/hello`],
  keys.stranger,
  1,
);

const server = AppQueueServer.start();
const SUBSCRIPTION = "kaos-sub-7f3a9c21d4e8b6a5";
server.mount("community", community1.out);
server.mount("supported", supported.out, { subscriptionKey: SUBSCRIPTION });
server.mount("mirror", mirror.out);
// Subscription queues are https only: a loopback server with a certificate of a test CA, which
// kattach trusts through DENO_CERT.
const tls = await makeTestTls(work);
const secure = AppQueueServer.start({ tls });
secure.mount("supported", supported.out, { subscriptionKey: SUBSCRIPTION });

function sha(index: QueueIndex, name: string, part: "image" | "manifest", version?: string) {
  const r = index.releases.find((x) => x.name === name && (!version || x.version === version))!;
  return r.parts[part].sha256;
}

/**
 * A test against a fresh kattach from {@linkcode start} (the community queue pointed at the test
 * server), `before` run first; the kattach is disposed of afterwards.
 */
function kattachTest(
  name: string,
  body: (k: TestKattach) => Promise<void>,
  before: () => void = () => {},
): void {
  Deno.test({
    name,
    sanitizeResources: false,
    sanitizeOps: false,
    fn: async () => {
      before();
      const k = await start();
      try {
        await body(k);
      } finally {
        await k.dispose();
      }
    },
  });
}

/** {@linkcode kattachTest} with the test server's community queue at its first release. */
function queueTest(name: string, body: (k: TestKattach) => Promise<void>): void {
  kattachTest(name, body, () => server.mount("community", community1.out));
}

/** Starts kattach with the community queue pointed at the test server. */
async function start(): Promise<TestKattach> {
  const k = await TestKattach.start(undefined, { env: { DENO_CERT: tls.caFile } });
  const r = await k.aq(
    "appqueue",
    "set",
    "community",
    "--url",
    server.url("community"),
    "--key",
    keys.community.publicKey,
  );
  assert.equal(r.code, 0, r.stderr);
  return k;
}

/** Installed module names, and the entries of STATE/modules (no staging or partial leftovers). */
async function installed(k: TestKattach): Promise<{ rows: string[]; dirs: string[] }> {
  const rows = (await k.json<Module[]>("module", "list")).map((m) => m.name).sort();
  const dirs: string[] = [];
  for await (const e of Deno.readDir(`${k.stateDir}/modules`)) dirs.push(e.name);
  return { rows, dirs: dirs.sort() };
}

async function assertState(k: TestKattach, names: string[]) {
  assert.deepEqual(await installed(k), { rows: [...names].sort(), dirs: [...names].sort() });
}

async function fails(k: TestKattach, args: string[], message: RegExp, code = 1) {
  const r = await k.aq(...args);
  assert.equal(r.code, code, `aq ${args.join(" ")}: ${r.stdout}${r.stderr}`);
  assert.match(r.stderr, message, `aq ${args.join(" ")}`);
  return r;
}

Deno.test({
  name: "appqueue: defaults, add/set/del and validation",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const k = await TestKattach.start();
    try {
      const qs = await k.json<AppQueueInfo[]>("appqueue", "list");
      assert.deepEqual(qs.map((q) => q.name), ["community", "development", "supported"]);
      assert.ok(qs.every((q) => q.publicKey === "" && q.url.startsWith("http")));
      const sub = qs.find((q) => q.name === "supported")!;
      assert.equal(sub.subscription, true);
      assert.ok(sub.url.startsWith("https://"), sub.url);
      // The author tool signs an expiry: 30 days after generation unless told otherwise.
      assert.equal(
        Date.parse(community1.index.expiresAt) - Date.parse(community1.index.generatedAt),
        30 * 86_400_000,
      );
      await fails(k, ["module", "available"], /No AppQueue is configured/);
      await fails(k, ["module", "available", "--queue", "community"], /no public key configured/);
      await fails(k, ["appqueue", "set", "community", "--key", "abc"], /base64 Ed25519/);
      await fails(k, ["appqueue", "set", "community", "--url", "ftp://x/"], /http/);
      await fails(k, ["appqueue", "set", "nope", "--url", "http://x/"], /not configured/);
      await fails(k, ["appqueue", "set", "community"], /Nothing to change/);
      const added = await k.json<AppQueueInfo>(
        "appqueue",
        "add",
        "mirror",
        "--url",
        "http://127.0.0.1:1/m",
        "--key",
        keys.stranger.publicKey,
      );
      assert.equal(added.url, "http://127.0.0.1:1/m/");
      await fails(k, [
        "appqueue",
        "add",
        "mirror",
        "--url",
        "http://x/",
        "--key",
        keys.stranger.publicKey,
      ], /exists already/);
      await fails(
        k,
        ["module", "available", "--queue", "mirror"],
        /Cannot download the index of queue mirror/,
      );
      assert.equal((await k.aq("appqueue", "del", "mirror")).code, 0);
      assert.equal((await k.json<AppQueueInfo[]>("appqueue", "list")).length, 3);
    } finally {
      await k.dispose();
    }
  },
});

queueTest(
  "appqueue: app before vKaOS is refused; install, search, update, module commands",
  async (k) => {
    const before = server.requests.length;
    await fails(k, ["module", "install", "web"], /vKaOS is not installed/);
    assert.ok(
      server.requests.slice(before).every((r) => !r.path.includes("/parts/")),
      "nothing was downloaded",
    );
    await assertState(k, []);

    const avail = await k.json<AvailableRelease[]>("module", "available");
    assert.deepEqual(avail.map((a) => `${a.queue}/${a.name}@${a.version}`).sort(), [
      "community/hello@0.1.0",
      "community/vkaos@0.1.0",
      "community/web@1.0.0",
    ]);
    const found = await k.json<AvailableRelease[]>("module", "search", "page");
    assert.deepEqual(found.map((a) => a.name), ["web"]);

    const r = await k.aq("module", "install", "vkaos");
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /Installed vkaos 0\.1\.0/);
    assert.match(r.stderr, /downloading vkaos\.aqi/, "progress frames reach the CLI");
    // Not a line per 256 KiB frame: the first, at most one a second, and the end.
    const counted = r.stderr.split("\n").filter((l) => l.endsWith(" downloading vkaos.aqi"));
    const [, size] = /\[(\d+)\/\1\] downloading vkaos\.aqi$/m.exec(r.stderr) ?? [];
    assert.ok(size !== undefined, `the download's end is shown: ${r.stderr}`);
    assert.ok(counted.length < Math.ceil(Number(size) / 262144), r.stderr);
    assert.equal((await k.aq("module", "install", "web@1.0.0")).code, 0);
    await fails(k, ["module", "install", "web"], /installed already/);
    await fails(k, ["module", "install", "nosuch"], /not offered/);
    await fails(k, ["module", "install", "web@9.9.9"], /web@9\.9\.9 is not offered/);
    await assertState(k, ["vkaos", "web"]);
    const web = await k.json<Module>("module", "show", "web");
    assert.equal(
      web.files.find((f) => f.part === "image")!.sha256,
      sha(community1.index, "web", "image"),
    );

    const same = await k.json<UpdateResult>("module", "update", "web");
    assert.equal(same.updated, false);

    // A config group that fits the new fields survives the update.
    assert.equal((await k.aq("config-group", "add", "web", "site", "title=Hi")).code, 0);
    server.mount("community", community2.out);
    const listing = await k.json<AvailableRelease[]>("module", "available", "--all-versions");
    assert.equal(listing.find((a) => a.version === "1.1.0")!.releaseNotes, "Adds reload");
    // The module's escape sequences stay data: JSON keeps them escaped, plain text drops them.
    assert.equal(
      listing.find((a) => a.version === "1.1.0")!.description,
      "Fixture web server \x1b]0;owned\x07\x1b[2J(1.1)",
    );
    const plainListing = await k.aq("module", "available", "--all-versions");
    assert.ok(plainListing.stdout.includes("Fixture web server ]0;owned[2J(1.1)"));
    // deno-lint-ignore no-control-regex
    assert.ok(!/[\x00-\x08\x0b-\x1f\x7f]/.test(plainListing.stdout), plainListing.stdout);
    const up = await k.json<UpdateResult>("module", "update", "web");
    assert.equal(up.updated, true);
    assert.equal(up.previous, "1.0.0");
    assert.equal(up.module.version, "1.1.0");
    const manifest = JSON.parse(
      await Deno.readTextFile(`${k.stateDir}/modules/web/manifest.json`),
    );
    assert.equal(manifest.version, "1.1.0");
    // The file records are the new release's, in place of the old ones (none left over).
    const updated = await k.json<Module>("module", "show", "web");
    assert.deepEqual(
      updated.files.map((f) => f.part).sort(),
      web.files.map((f) => f.part).sort(),
    );
    assert.equal(
      updated.files.find((f) => f.part === "image")!.sha256,
      sha(community2.index, "web", "image"),
    );
    await assertState(k, ["vkaos", "web"]);

    // Rollback protection: the old index (serial 1) is refused once serial 2 was seen.
    server.mount("community", community1.out);
    await fails(k, ["module", "available", "--queue", "community"], /older than one seen before/);
    server.mount("community", community2.out);

    // Module commands from climod.aq appear under the module's name.
    const cmds = await k.json<ModuleCommandInfo[]>("module", "commands");
    assert.deepEqual(cmds.map((c) => `${c.module} ${c.command} ${c.type}`), [
      "web reload reload-config",
    ]);
    assert.equal(
      (await k.aq("vmimage", "create", "site", "--modules", "web", "--config-groups", "site"))
        .code,
      0,
    );
    assert.equal((await k.aq("deploy", "site", "--no-start")).code, 0);
    await fails(k, ["web", "reload", "site-1"], /site-1: the instance is not running/);
    await fails(k, ["web", "reload"], /INSTANCE is missing/, 2);
    await fails(k, ["web", "frobnicate", "site-1"], /unknown command/, 2);
    await fails(k, ["module", "del", "web"], /VM images use it/);
  },
);

queueTest("appqueue: a wrong signature or tampered index installs nothing", async (k) => {
  // The queue's key is not the one that signed the index.
  assert.equal(
    (await k.aq("appqueue", "set", "community", "--key", keys.stranger.publicKey)).code,
    0,
  );
  await fails(k, ["module", "install", "vkaos"], /index of queue community.*untrusted key/);
  assert.equal(
    (await k.aq("appqueue", "set", "community", "--key", keys.community.publicKey)).code,
    0,
  );

  // The payload was altered after signing.
  const env = JSON.parse(await Deno.readTextFile(`${community1.out}/index.json`));
  env.payload = env.payload.replace('"version": "0.1.0"', '"version": "0.1.1"');
  server.fault("/community/index.json", {
    body: new TextEncoder().encode(JSON.stringify(env)),
  });
  await fails(k, ["module", "install", "vkaos"], /signature does not match/);

  // Not a signed document at all.
  server.fault("/community/index.json", { body: new TextEncoder().encode("<html>") });
  await fails(k, ["module", "install", "vkaos"], /not a signed JSON document/);

  // Correctly signed, but expired: refused (an old index cannot be replayed forever).
  const payload = JSON.parse(env.payload);
  payload.expiresAt = "2020-01-01T00:00:00.000Z";
  const stale = await signPayload(keys.community, JSON.stringify(payload));
  server.fault("/community/index.json", {
    body: new TextEncoder().encode(JSON.stringify(stale)),
  });
  await fails(
    k,
    ["module", "install", "vkaos"],
    /Cannot use queue community: its index \(serial 1\) expired at 2020-01-01T00:00:00\.000Z/,
  );
  await assertState(k, []);
});

queueTest(
  "appqueue: digest mismatch and truncated download leave nothing; the download resumes",
  async (k) => {
    const image = `/community/parts/${sha(community1.index, "vkaos", "image")}`;
    server.fault(image, { corrupt: true });
    await fails(
      k,
      ["module", "install", "vkaos"],
      /vkaos\.aqi of vkaos 0\.1\.0: its sha256 is [0-9a-f]{64}, the signed index says/,
    );
    await assertState(k, []);

    const cut = 3 * 1024 * 1024 + 17;
    server.fault(image, { truncateAfter: cut });
    await fails(k, ["module", "install", "vkaos"], /truncated download/);
    await assertState(k, []);
    const partial = await Deno.stat(
      `${k.stateDir}/appqueue-cache/${image.split("/").pop()}.part`,
    );
    assert.equal(partial.size, cut);

    const before = server.requests.length;
    assert.equal((await k.aq("module", "install", "vkaos")).code, 0);
    const resumed = server.requests.slice(before).filter((r) => r.path === image);
    assert.deepEqual(resumed.map((r) => [r.range, r.status]), [[`bytes=${cut}-`, 206]]);
    await assertState(k, ["vkaos"]);

    // A manifest whose digest is wrong fails the same way for an app module.
    server.fault(`/community/parts/${sha(community1.index, "hello", "manifest")}`, {
      corrupt: true,
    });
    await fails(k, ["module", "install", "hello"], /manifest\.json of hello 0\.1\.0: its sha256/);
    await assertState(k, ["vkaos"]);
  },
);

queueTest(
  "appqueue: supported queue needs the subscription key, which is never shown",
  async (k) => {
    assert.equal(
      (await k.aq(
        "appqueue",
        "set",
        "supported",
        "--url",
        secure.url("supported"),
        "--key",
        keys.supported.publicKey,
        "--subscription",
      )).code,
      0,
    );
    assert.equal((await k.aq("module", "install", "vkaos")).code, 0);
    const before = secure.seen("/supported/").length;
    await fails(
      k,
      ["module", "install", "hello", "--queue", "supported"],
      /no subscription key.*\n.*system subscription set/,
    );
    assert.equal(secure.seen("/supported/").length, before, "nothing was asked without a key");

    await k.json("system", "subscription", "set", "wrong-key-0000");
    await fails(
      k,
      ["module", "install", "hello", "--queue", "supported"],
      /refused this host's subscription key \(HTTP 403\)/,
    );
    await assertState(k, ["vkaos"]);

    const shown = await k.aq("system", "subscription", "set", SUBSCRIPTION);
    assert.equal(shown.code, 0);
    assert.equal(shown.stdout, "Subscription key: set (…b6a5)\n");
    const info = await k.json<SubscriptionInfo>("system", "subscription", "show");
    assert.deepEqual(info, { set: true, last4: "b6a5" });
    const r = await k.aq("module", "install", "hello", "--queue", "supported");
    assert.equal(r.code, 0, r.stderr);
    await assertState(k, ["hello", "vkaos"]);
    assert.ok(secure.seen("/supported/parts/").every((x) => x.subscription));
    const qs = await k.json<AppQueueInfo[]>("appqueue", "list");
    assert.deepEqual(qs.find((q) => q.name === "supported")!.modules, ["hello"]);
    for (const text of [k.log, JSON.stringify(qs), (await k.aq("system", "status")).stdout]) {
      assert.ok(!text.includes(SUBSCRIPTION), "the key is never logged or shown");
    }
    await k.json("system", "subscription", "clear");
    await fails(k, ["module", "update", "hello"], /no subscription key/);
  },
);

kattachTest(
  "appqueue: the subscription key goes only over https, only to its origin",
  async (k) => {
    await k.json("system", "subscription", "set", SUBSCRIPTION);
    const key = keys.supported.publicKey;
    await fails(
      k,
      [
        "appqueue",
        "add",
        "paid",
        "--url",
        "http://127.0.0.1:1/p/",
        "--key",
        key,
        "--subscription",
      ],
      /Cannot add queue paid: a subscription queue needs an https:\/\/ URL, not http:\/\/127\.0\.0\.1:1/,
    );
    await fails(
      k,
      ["appqueue", "set", "community", "--subscription"],
      /Cannot set queue community: a subscription queue needs an https:\/\/ URL/,
    );
    await fails(
      k,
      ["appqueue", "set", "supported", "--url", server.url("supported"), "--key", key],
      /needs an https:\/\/ URL/,
    );
    // Another origin needs the operator to say --subscription again, in the same command.
    await fails(
      k,
      ["appqueue", "set", "supported", "--url", secure.url("supported"), "--key", key],
      /Cannot move subscription queue supported from https:\/\/127\.0\.0\.1:8701 to https:\/\/127\.0\.0\.1:\d+/,
    );
    const moved = await k.aq(
      "appqueue",
      "set",
      "supported",
      "--url",
      secure.url("supported"),
      "--key",
      key,
      "--subscription",
    );
    assert.equal(moved.code, 0, moved.stderr);
    // A queue without the subscription flag never gets the key, and a 403 from it does not
    // suggest sending it there.
    server.mount("paywall", supported.out, { subscriptionKey: SUBSCRIPTION });
    assert.equal(
      (await k.aq("appqueue", "add", "paywall", "--url", server.url("paywall"), "--key", key))
        .code,
      0,
    );
    const refused = await fails(
      k,
      ["module", "available", "--queue", "paywall"],
      /Queue paywall refused access \(HTTP 403\)/,
    );
    assert.ok(!/subscription/i.test(refused.stderr), refused.stderr);
    assert.ok(server.seen("/paywall/").length > 0);
    assert.ok(server.seen("/paywall/").every((r) => !r.subscription));
  },
);

queueTest(
  "appqueue: a module stays bound to the key that first signed it (vKaOS too)",
  async (k) => {
    for (const m of ["vkaos", "hello"]) {
      assert.equal((await k.aq("module", "install", m)).code, 0);
    }
    const add = ["appqueue", "add", "mirror", "--url", server.url("mirror")];
    assert.equal((await k.aq(...add, "--key", keys.stranger.publicKey)).code, 0);
    assert.equal((await k.aq("module", "del", "hello")).code, 0);

    // The same name in two queues: the operator chooses.
    await fails(
      k,
      ["module", "install", "hello"],
      /Module hello is offered by several queues: community \(0\.1\.0\), mirror \(0\.1\.0\)\n.*--queue/,
    );
    // A reinstall signed by another key is refused; the first signer's works.
    const before = server.seen("/mirror/parts/").length;
    await fails(
      k,
      ["module", "install", "hello", "--queue", "mirror"],
      /Cannot install hello from queue:mirror: the name is bound to publisher key .{12}…, which first signed it, and this module is signed by .{12}…\n.*--allow-new-publisher/,
    );
    assert.equal(server.seen("/mirror/parts/").length, before, "nothing was downloaded");
    await assertState(k, ["vkaos"]);
    assert.equal((await k.aq("module", "install", "hello", "--queue", "community")).code, 0);

    // vKaOS alike: an update from another publisher needs --allow-new-publisher.
    await fails(
      k,
      ["module", "update", "vkaos", "--queue", "mirror"],
      /Cannot install vkaos from queue:mirror: the name is bound/,
    );
    assert.equal((await k.json<Module>("module", "show", "vkaos")).version, "0.1.0");
    const up = await k.json<UpdateResult>(
      "module",
      "update",
      "vkaos",
      "--queue",
      "mirror",
      "--allow-new-publisher",
    );
    assert.equal(up.module.version, "0.2.0");
    assert.match(
      k.log,
      /vkaos: publisher key .{12}… replaced by .{12}… \(--allow-new-publisher\)/,
    );

    // A bundle and an unsigned directory are held to the binding too.
    const strange = `${work}/hello-mirror.kaosbundle`;
    await buildBundle(`${FIXTURES}/hello`, { out: strange, key: keys.stranger });
    assert.equal((await k.aq("module", "del", "hello")).code, 0);
    await fails(k, ["module", "import", strange], /from bundle: the name is bound/);
    await fails(k, ["module", "import", `${FIXTURES}/hello`], /this module is not signed/);
    await assertState(k, ["vkaos"]);
    const bundled = await k.aq("module", "import", strange, "--allow-new-publisher");
    assert.equal(bundled.code, 0, bundled.stderr);
    // Now bound to the new key: the mirror's own release is accepted, the old publisher's not.
    assert.equal((await k.aq("module", "del", "hello")).code, 0);
    await fails(k, ["module", "install", "hello", "--queue", "community"], /the name is bound/);
    assert.equal((await k.aq("module", "install", "hello", "--queue", "mirror")).code, 0);
    await assertState(k, ["hello", "vkaos"]);
  },
);

/** A ustar header block with any name (the writer refuses bad ones, so this one is hand-made). */
function rawTarEntry(name: string, data: Uint8Array): Uint8Array {
  const block = new Uint8Array(512 + Math.ceil(data.length / 512) * 512);
  const put = (off: number, s: string) => block.set(new TextEncoder().encode(s), off);
  put(0, name);
  put(100, "0000644\0");
  put(108, "0000000\0");
  put(116, "0000000\0");
  put(124, data.length.toString(8).padStart(11, "0") + "\0");
  put(136, "00000000000\0");
  block[156] = 0x30;
  put(257, "ustar\x0000");
  block.fill(0x20, 148, 156);
  let sum = 0;
  for (let i = 0; i < 512; i++) sum += block[i];
  put(148, sum.toString(8).padStart(6, "0") + "\0 ");
  block.set(data, 512);
  return block;
}

kattachTest("appqueue: bundle import — signed, untrusted, tampered, path traversal", async (k) => {
  const vkaos = `${work}/vkaos.kaosbundle`;
  const hello = `${work}/hello.kaosbundle`;
  const strange = `${work}/hello-stranger.kaosbundle`;
  await buildBundle(`${FIXTURES}/vkaos`, { out: vkaos, key: keys.community });
  await buildBundle(`${FIXTURES}/hello`, { out: hello, key: keys.community });
  await buildBundle(`${FIXTURES}/hello`, { out: strange, key: keys.stranger });

  await fails(k, ["module", "import", hello], /vKaOS is not installed/);
  await assertState(k, []);
  const ok = await k.aq("module", "import", vkaos);
  assert.equal(ok.code, 0, ok.stderr);
  await fails(k, ["module", "import", strange], /untrusted key/);

  const bytes = await Deno.readFile(hello);
  const tampered = bytes.slice();
  const header = findEntry(bytes, "hello.aqi");
  tampered[header + 512 + 100] ^= 0x01; // inside hello.aqi's data
  const tamperedPath = `${work}/tampered.kaosbundle`;
  await Deno.writeFile(tamperedPath, tampered);
  await fails(
    k,
    ["module", "import", tamperedPath],
    /the sha256 of hello\.aqi is [0-9a-f]{64}, the signed manifest says/,
  );

  // A bundle whose first entry climbs out of the directory, or is absolute.
  const withEntry = (name: string) => {
    const entry = rawTarEntry(name, new TextEncoder().encode("#!/bin/sh\n"));
    const out = new Uint8Array(entry.length + bytes.length);
    out.set(entry);
    out.set(bytes, entry.length);
    return out;
  };
  const evilPath = `${work}/evil.kaosbundle`;
  await Deno.writeFile(evilPath, withEntry("../../evil.sh"));
  await fails(
    k,
    ["module", "import", evilPath],
    /entry "\.\.\/\.\.\/evil\.sh": the path holds a '\.\.' component/,
  );
  const absPath = `${work}/abs.kaosbundle`;
  await Deno.writeFile(absPath, withEntry("/etc/evil"));
  await fails(k, ["module", "import", absPath], /the path is absolute/);
  await assertState(k, ["vkaos"]);
  assert.ok(!(await exists(`${k.stateDir}/evil.sh`)) && !(await exists(`${work}/evil.sh`)));

  const good = await k.aq("module", "import", hello);
  assert.equal(good.code, 0, good.stderr);
  await assertState(k, ["hello", "vkaos"]);
});

/** The offset of the ustar header of `name`. */
function findEntry(tar: Uint8Array, name: string): number {
  const want = new TextEncoder().encode(name + "\0");
  for (let off = 0; off < tar.length; off += 512) {
    if (want.every((b, i) => tar[off + i] === b)) return off;
  }
  throw new Error(`${name} is not in the archive`);
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch {
    return false;
  }
}

queueTest("appqueue: the menus' module install offers what the queues offer", async (k) => {
  const s = new Scripted();
  const done = runMenus(s.terminal, { connect: () => IpcClient.connect(`${k.stateDir}/run`) });
  const title = "module in the AppQueues (NAME[@VERSION]), type to filter:";
  const indexReads = () => server.seen("/community/index.json").length;
  try {
    await s.waitFor("Log out");
    await s.choose("App Modules");
    // The queue cannot be read: nothing to pick, and the prompt says why.
    server.fault("/community/index.json", { body: new TextEncoder().encode("<html>") });
    let mark = s.text.length;
    await s.choose("module install");
    await s.waitFor(
      /\(no module in the AppQueues to choose from: .*not a signed JSON document/,
      mark,
    );
    await s.waitFor("NAME[@VERSION]", s.text.lastIndexOf("type a name)"));
    await s.keys("\x03");
    await s.waitFor("Cancelled.", mark);

    assert.equal((await k.aq("module", "import", `${FIXTURES}/vkaos`)).code, 0);
    mark = s.text.length;
    await s.choose("module install");
    await s.waitForSelect(title);
    assert.match(s.text.slice(mark), /vkaos {2}0\.1\.0 {2}community {2}\(installed: 0\.1\.0\)/);
    assert.match(s.text.slice(mark), /hello {2}0\.1\.0 {2}community {2}Fixture/);
    const reads = indexReads();
    await s.keys("we"); // typing filters what was fetched, without reading the index again
    await s.waitForSelect(`${title} we`);
    assert.equal(indexReads(), reads);
    await s.choose("web  1.0.0  community");
    await s.waitForSelect("--queue: install from this queue, type to filter:");
    await s.choose("(leave out)");
    await s.waitFor("--allow-new-publisher", mark);
    await s.line("");
    await s.waitFor("= module install web\n", mark);
    await s.waitFor("Installed web 1.0.0.", mark);
    const installed = await k.json<Module[]>("module", "list");
    assert.deepEqual(installed.map((m) => m.name), ["vkaos", "web"]);

    // The next pick list is fetched anew: web is installed now.
    mark = s.text.length;
    await s.choose("module install");
    await s.waitForSelect(title);
    assert.match(s.text.slice(mark), /web {2}1\.0\.0 {2}community {2}\(installed: 1\.0\.0\)/);
    await s.keys("\x03");
    await s.waitFor("Cancelled.", mark);
    await s.logOut(done);
  } finally {
    s.terminal.close();
    await done.catch(() => {});
  }
});

Deno.test({
  name: "appqueue: cleanup",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    await server.close();
    await secure.close();
    await Deno.remove(work, { recursive: true });
  },
});

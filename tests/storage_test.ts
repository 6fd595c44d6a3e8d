/**
 * Guest storage for real, in hosted mode on loop devices the test makes (files in a temp dir;
 * detached in `finally`): `kattach --hosted --storage-disks` offers only those; `storage init`
 * needs --yes, refuses a mounted disk and disks it was not given, makes ext4 labelled
 * `KAOS-<name>` and mounts it; a deploy goes to the storage with the most free space (or the one
 * its VM image names) and its overlay and runtime files live there; `storage del` is refused
 * while instances or VM images use it; after kattach restarts with the storages unmounted (as
 * after a reboot) they are mounted again by UUID and the instance starts from its overlay there.
 * Also `system log` (lines from the file across the restart, and --follow).
 */
import assert from "node:assert/strict";
import type { Instance, LogResult, StorageInfo, StorageList, SystemStatus } from "../ipc/mod.ts";
import { buildFixtures, FIXTURES_OUT, killGuests, REPO_ROOT, TestKattach } from "./_harness.ts";
import { run, waitFor } from "./_util.ts";

async function makeLoop(dir: string, name: string, mib: number): Promise<string> {
  const file = `${dir}/${name}.img`;
  const f = await Deno.open(file, { write: true, create: true });
  await f.truncate(mib * 1024 * 1024);
  f.close();
  const r = await run(["losetup", "--find", "--show", file]);
  assert.equal(r.code, 0, `losetup ${file}: ${r.stderr}`);
  return r.stdout.trim();
}

function mountsUnder(dir: string): string[] {
  return Deno.readTextFileSync("/proc/mounts").split("\n").map((l) => l.split(" ")[1] ?? "")
    .filter((t) => t === dir || t.startsWith(`${dir}/`));
}

function mountSource(target: string): string | undefined {
  return Deno.readTextFileSync("/proc/mounts").split("\n").map((l) => l.split(" "))
    .find((f) => f[1] === target)?.[0];
}

Deno.test("storage on loop devices: init, refusals, placement, del, restart, system log", async () => {
  await buildFixtures();
  const tmp = await Deno.makeTempDir({ prefix: "kaos-st-" });
  const state = `${tmp}/s`;
  const loops: string[] = [];
  let k: TestKattach | undefined;
  let follower: Deno.ChildProcess | undefined;
  try {
    const small = await makeLoop(tmp, "small", 160);
    const big = await makeLoop(tmp, "big", 320);
    const busy = await makeLoop(tmp, "busy", 96);
    loops.push(small, big, busy);
    // A disk mounted elsewhere is in use.
    assert.equal((await run(["mkfs.ext4", "-q", "-F", busy])).code, 0);
    await Deno.mkdir(`${tmp}/busy`);
    assert.equal((await run(["mount", busy, `${tmp}/busy`])).code, 0);

    k = await TestKattach.start(state, {
      args: ["--storage-disks", [small, big, busy].join(",")],
    });

    // No storage yet: status and list say so.
    const s0 = await k.json<SystemStatus>("system", "status");
    assert.match(s0.storage?.notice ?? "", /No guest storage/);
    const l0 = await k.json<StorageList>("storage", "list");
    assert.deepEqual(l0.disks.map((d) => d.device).sort(), [small, big, busy].sort());
    assert.match(l0.disks.find((d) => d.device === busy)!.inUseBy, /mounted on .*\/busy/);
    assert.equal(l0.disks.find((d) => d.device === busy)!.label, "ext4");
    assert.ok(l0.disks.find((d) => d.device === small)!.candidate);
    assert.match(l0.notice ?? "", /No guest storage/);

    // Refusals: no --yes (usage), a mounted disk, a disk hosted mode was not given.
    const noYes = await k.aq("storage", "init", small);
    assert.equal(noYes.code, 2, noYes.stderr);
    assert.match(noYes.stderr, /destroys everything on .*--yes/);
    const mounted = await k.aq("storage", "init", busy, "--yes");
    assert.equal(mounted.code, 1, mounted.stderr);
    assert.match(mounted.stderr, /in use \(mounted on/);
    const foreign = await k.aq("storage", "init", "/dev/sda", "--yes");
    assert.equal(foreign.code, 1, foreign.stderr);
    assert.match(foreign.stderr, /no such local disk[\s\S]*--storage-disks/);

    // Two storages.
    const a = await k.json<StorageInfo>("storage", "init", small, "--name", "small", "--yes");
    const b = await k.json<StorageInfo>("storage", "init", big, "--name", "big", "--yes");
    assert.equal(a.state, "mounted");
    assert.equal(b.mountpoint, `${state}/storage/big`);
    assert.equal(mountSource(b.mountpoint), big);
    const label = await run(["blkid", "-o", "value", "-s", "LABEL", big]);
    assert.equal(label.stdout.trim(), "KAOS-big");
    const uuid = await run(["blkid", "-o", "value", "-s", "UUID", big]);
    assert.equal(uuid.stdout.trim(), b.uuid);
    const again = await k.aq("storage", "init", small, "--name", "other", "--yes");
    assert.equal(again.code, 1);
    assert.match(again.stderr, /KaOS storage small/);
    const s1 = await k.json<SystemStatus>("system", "status");
    assert.deepEqual(s1.storage, { mounted: ["big", "small"], missing: [], notice: null });

    // A deploy lands on the storage with the most free space; its files live there.
    for (const m of ["vkaos", "web"]) {
      assert.equal((await k.aq("module", "import", `${FIXTURES_OUT}/${m}`)).code, 0);
    }
    assert.equal((await k.aq("config-group", "add", "web", "site", "title=st")).code, 0);
    assert.equal(
      (await k.aq("vmimage", "create", "web", "--modules", "web", "--config-groups", "site"))
        .code,
      0,
    );
    const [inst] = await k.json<(Instance & { outcome: string; reason?: string })[]>(
      "deploy",
      "web",
    );
    assert.equal(inst.outcome, "started", inst.reason);
    assert.equal(inst.storage, "big");
    const dir = `${state}/storage/big/instances/web-1`;
    const overlayName = [...Deno.readDirSync(dir)].map((e) => e.name)
      .find((n) => /^web(-[0-9a-f]{16})?\.qcow2$/.test(n));
    assert.ok(overlayName, `no overlay of web in ${dir}`);
    const overlay = await Deno.stat(`${dir}/${overlayName}`);
    assert.equal(overlay.dev, (await Deno.stat(b.mountpoint)).dev, "overlay on the storage");
    await waitFor(
      async () => await Deno.stat(`${dir}/qmp.sock`).then(() => true, () => false),
      () => `the QMP socket in ${dir}`,
    );
    await assert.rejects(Deno.stat(`${state}/instances/web-1`));
    // A VM image can name its storage.
    assert.equal(
      (await k.aq(
        ...["vmimage", "create", "pinned", "--modules", "web", "--config-groups", "site"],
        ...["--storage", "small"],
      )).code,
      0,
    );
    const [pinned] = await k.json<Instance[]>("deploy", "pinned", "--no-start");
    assert.equal(pinned.storage, "small");
    const bad = await k.aq("vmimage", "create", "x", "--modules", "web", "--storage", "nope");
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /storage nope does not exist/);

    // Not while instances live there.
    const busyDel = await k.aq("storage", "del", "big");
    assert.equal(busyDel.code, 1);
    assert.match(busyDel.stderr, /1 instance\(s\) live there \(web-1\)/);

    // Restart as after a reboot: storages unmounted, kattach mounts them again by UUID.
    assert.equal((await k.aq("instance", "stop", "web-1")).code, 0);
    await k.stop();
    for (const t of mountsUnder(`${state}/storage`)) {
      assert.equal((await run(["umount", t])).code, 0);
    }
    await k.restart();
    assert.equal(mountSource(b.mountpoint), big);
    assert.equal(mountSource(a.mountpoint), small);
    assert.match(k.log, /storage: big \(.*\) mounted on/);
    const started = await k.json<Instance>("instance", "start", "web-1");
    assert.equal(started.storage, "big");
    assert.equal((await Deno.stat(`${dir}/${overlayName}`)).ino, overlay.ino, "the same overlay");

    // system log: lines of both runs from the file on the data partition.
    const log = await k.json<LogResult>("system", "log", "--lines", "400");
    assert.equal(log.file, `${state}/log/kattach.log`);
    const text = log.lines.join("\n");
    assert.match(text, /deploy: web × 1 on big: web-1/); // before the restart
    assert.match(text, /storage: big \(.*\) mounted on/); // after it
    assert.match(log.lines[0], /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ /);
    const five = await k.json<LogResult>("system", "log", "--lines", "5");
    assert.equal(five.lines.length, 5);

    // --follow streams new lines until the client leaves.
    follower = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", `${REPO_ROOT}/main.ts`, "aq", "--state", state, "system", "log"]
        .concat(["--lines", "0", "--follow"]),
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    let streamed = "";
    const reading = (async () => {
      for await (const t of follower.stdout.pipeThrough(new TextDecoderStream())) streamed += t;
    })();
    await new Promise((r) => setTimeout(r, 1500)); // let it connect before the line is logged
    assert.equal((await k.aq("instance", "del", "pinned-1")).code, 0);
    await waitFor(
      () => /instance: deleted pinned-1/.test(streamed),
      () => `the followed log to show the deletion; got: ${streamed}`,
    );
    follower.kill("SIGTERM");
    await follower.status;
    await reading;
    await follower.stderr.cancel();
    follower = undefined;

    // del: refused while a VM image asks for it; then allowed, and the disk is free again.
    const pinnedDel = await k.aq("storage", "del", "small");
    assert.equal(pinnedDel.code, 1, `${pinnedDel.stderr}\n${k.log.slice(-3000)}`);
    assert.match(pinnedDel.stderr, /VM image\(s\) pinned ask for it/);
    assert.equal((await k.aq("vmimage", "del", "pinned")).code, 0);
    assert.equal((await k.aq("storage", "del", "small")).code, 0);
    assert.equal(mountSource(a.mountpoint), undefined);
    const l1 = await k.json<StorageList>("storage", "list");
    assert.deepEqual(l1.storages.map((s) => s.name), ["big"]);
    assert.ok(l1.disks.find((d) => d.device === small)!.candidate);
    assert.match(l1.disks.find((d) => d.device === big)!.inUseBy, /KaOS storage big/);
  } finally {
    try {
      follower?.kill("SIGKILL");
    } catch { /* gone */ }
    await killGuests(state);
    await k?.stop("SIGKILL");
    for (const t of mountsUnder(tmp).reverse()) await run(["umount", "-l", t]);
    for (const l of loops) await run(["losetup", "-d", l]);
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
  }
});

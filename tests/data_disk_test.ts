/**
 * `module update` with a different image, and the data disk that survives it, against real QEMU:
 * an instance's overlay over the old image is recreated over the new one at its next start
 * (overlays are keyed by the image's digest), and its data disk (`vmimage create … --data-disk`,
 * formatted and mounted by vKaOS, which records each boot on it) keeps what was written across
 * the update and the restarts. The new image differs in content and in size. vKaOS checks the disk
 * before every mount; one that needs a manual repair fails the start at once, with the reason.
 */
import assert from "node:assert/strict";
import { buildQueue, generateKeyFile } from "../appqueue/mod.ts";
import type { Instance, UpdateResult, VmImage } from "../ipc/mod.ts";
import { AppQueueServer } from "./_appqueue_server.ts";
import { buildFixtures, FIXTURES_OUT, TestKattach } from "./_harness.ts";
import { run } from "./_util.ts";

/** web 1.1.0 with another image: 4 MiB larger and holding one more file. */
async function makeWebWithNewImage(work: string): Promise<string> {
  const dir = `${work}/web-1.1.0/web`;
  await Deno.mkdir(dir, { recursive: true });
  for (const f of ["web.aqi", "climod.aq", "appmgr.aq", "manifest.json"]) {
    await Deno.copyFile(`${FIXTURES_OUT}/web/${f}`, `${dir}/${f}`);
  }
  const image = `${dir}/web.aqi`;
  const size = (await Deno.stat(image)).size;
  await Deno.truncate(image, size + 4 * 1024 * 1024);
  for (
    const argv of [
      ["e2fsck", "-f", "-y", image],
      ["resize2fs", image],
      ["debugfs", "-w", "-R", `write ${dir}/manifest.json /VERSION-1.1.0`, image],
    ]
  ) {
    const r = await run(argv, { timeoutMs: 60_000 });
    assert.ok(r.code === 0 || (argv[0] === "e2fsck" && r.code === 1), `${argv[0]}: ${r.stderr}`);
  }
  const m = JSON.parse(await Deno.readTextFile(`${dir}/manifest.json`));
  m.version = "1.1.0";
  await Deno.writeTextFile(`${dir}/manifest.json`, JSON.stringify(m, null, 2));
  return dir;
}

/** The boot records vKaOS wrote on a (stopped) instance's data disk. */
async function bootsOnDataDisk(stateDir: string, name: string, work: string): Promise<string[]> {
  const raw = `${work}/${name}-data.raw`;
  const conv = await run([
    "qemu-img",
    "convert",
    "-O",
    "raw",
    `${stateDir}/instances/${name}/data.qcow2`,
    raw,
  ], { timeoutMs: 60_000 });
  assert.equal(conv.code, 0, conv.stderr);
  const cat = await run(["debugfs", "-R", "cat /.kaos-boots", raw], { timeoutMs: 60_000 });
  await Deno.remove(raw);
  return cat.stdout.split("\n").filter((l) => l.startsWith("boot "));
}

/** Damages a stopped instance's data disk so that `e2fsck -p` cannot repair it (root not a dir). */
async function breakDataDisk(stateDir: string, name: string, work: string): Promise<void> {
  const disk = `${stateDir}/instances/${name}/data.qcow2`;
  const raw = `${work}/${name}-broken.raw`;
  for (
    const argv of [
      ["qemu-img", "convert", "-O", "raw", disk, raw],
      ["debugfs", "-w", "-R", "sif <2> mode 0100644", raw],
      ["debugfs", "-w", "-R", "ssv state 0", raw],
      // into the same file (-n): its owner and mode stay those KaOS gave it
      ["qemu-img", "convert", "-n", "-O", "qcow2", raw, disk],
    ]
  ) {
    const r = await run(argv, { timeoutMs: 60_000 });
    assert.equal(r.code, 0, `${argv.join(" ")}: ${r.stderr}`);
  }
  await Deno.remove(raw);
}

/** What the instance's guest printed on its console, all boots. */
async function serialLog(stateDir: string, name: string): Promise<string> {
  const dir = `${stateDir}/instances/${name}`;
  const old = await Deno.readTextFile(`${dir}/serial.log.1`).catch(() => "");
  return old + await Deno.readTextFile(`${dir}/serial.log`);
}

function overlaysOf(stateDir: string, name: string): string[] {
  return [...Deno.readDirSync(`${stateDir}/instances/${name}`)].map((e) => e.name)
    .filter((n) => n.endsWith(".qcow2") && n !== "data.qcow2");
}

Deno.test({
  name: "module update with a new image: overlays recreated over it; the data disk survives",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await buildFixtures();
    const work = await Deno.makeTempDir({ prefix: "kaos-datadisk-" });
    const key = await generateKeyFile();
    const base = [`${FIXTURES_OUT}/vkaos`, `${FIXTURES_OUT}/web`];
    const q1 = await buildQueue(base, { out: `${work}/q1`, key, serial: 1 });
    const web110 = await makeWebWithNewImage(work);
    const q2 = await buildQueue([base[0], web110], { out: `${work}/q2`, key, serial: 2 });
    const image = (q: typeof q1, v: string) =>
      q.releases.find((r) => r.name === "web" && r.version === v)!.parts.image;
    assert.notEqual(image(q1, "1.0.0").sha256, image(q2, "1.1.0").sha256);
    assert.notEqual(image(q1, "1.0.0").size, image(q2, "1.1.0").size);

    const server = AppQueueServer.start();
    server.mount("community", `${work}/q1`);
    const k = await TestKattach.start();
    const show = (name: string) => k.json<Instance>("instance", "show", name);
    try {
      const set = await k.aq(
        ...["appqueue", "set", "community", "--url", server.url("community")],
        ...["--key", key.publicKey],
      );
      assert.equal(set.code, 0, set.stderr);
      for (const m of ["vkaos", "web"]) {
        const r = await k.aq("module", "install", m);
        assert.equal(r.code, 0, r.stderr);
      }
      const img = await k.json<VmImage>(
        ...["vmimage", "create", "site", "--modules", "web", "--data-disk", "16M"],
      );
      assert.equal(img.dataDiskMiB, 16);
      const bad = await k.aq("vmimage", "create", "x", "--modules", "web", "--data-disk", "lots");
      assert.equal(bad.code, 2);
      assert.match(bad.stderr, /--data-disk takes a size such as 512M or 2G, not "lots"/);

      // First boot: a blank data disk, formatted by vKaOS, one boot recorded.
      const d = await k.aq("deploy", "site", "--wait", "--json");
      assert.equal(d.code, 0, d.stderr);
      assert.equal((await show("site-1")).state, "running");
      assert.match(
        await serialLog(k.stateDir, "site-1"),
        /KAOS-GUEST: data disk \/dev\/vd\w+ formatted/,
      );
      const before = overlaysOf(k.stateDir, "site-1");
      assert.deepEqual(before, [`web-${image(q1, "1.0.0").sha256.slice(0, 16)}.qcow2`]);
      assert.equal((await k.aq("instance", "stop", "site-1")).code, 0);
      assert.deepEqual(await bootsOnDataDisk(k.stateDir, "site-1", work), ["boot site-1 web"]);

      // The update brings another image (other content, other size).
      server.mount("community", `${work}/q2`);
      const up = await k.json<UpdateResult>("module", "update", "web");
      assert.equal(up.updated, true);
      assert.equal(up.module.version, "1.1.0");

      // Next start: the overlay over the old image is gone, the new one is over the new image.
      const again = await k.aq("instance", "start", "site-1", "--wait");
      assert.equal(again.code, 0, again.stderr);
      assert.equal((await show("site-1")).state, "running");
      const after = overlaysOf(k.stateDir, "site-1");
      assert.deepEqual(after, [`web-${image(q2, "1.1.0").sha256.slice(0, 16)}.qcow2`]);
      const info = await run([
        "qemu-img",
        "info",
        "--output=json",
        `${k.stateDir}/instances/site-1/${after[0]}`,
      ]);
      assert.equal(JSON.parse(info.stdout)["virtual-size"], image(q2, "1.1.0").size);
      assert.equal((await k.aq("instance", "restart", "site-1", "--wait")).code, 0);
      assert.equal((await k.aq("instance", "stop", "site-1")).code, 0);

      // The data disk kept what the earlier boots wrote: three boots, one formatting.
      assert.deepEqual(await bootsOnDataDisk(k.stateDir, "site-1", work), [
        "boot site-1 web",
        "boot site-1 web",
        "boot site-1 web",
      ]);
      const serial = await serialLog(k.stateDir, "site-1");
      assert.equal([...serial.matchAll(/data disk \/dev\/vd\w+ formatted/g)].length, 1);
      assert.equal([...serial.matchAll(/KAOS-GUEST: data disk \/dev\/vd\w+ on \/data/g)].length, 3);
      // Checked before every mount (vKaOS runs e2fsck -p; the disk is ext4 with a journal).
      assert.equal([...serial.matchAll(/data disk \/dev\/vd\w+ checked \(e2fsck -p/g)].length, 2);

      // A data disk that needs a manual repair: the start fails at once and says why.
      await breakDataDisk(k.stateDir, "site-1", work);
      const broken = await k.aq("instance", "start", "site-1", "--wait");
      assert.equal(broken.code, 1, broken.stderr);
      const why =
        /the guest cannot start its services: data disk \/dev\/vd\w+ needs a manual repair \(e2fsck -p exit 4: .*Root inode is not a directory/;
      assert.match(broken.stderr, why);
      assert.match((await show("site-1")).lastExit ?? "", why);
      await k.aq("instance", "stop", "site-1");
    } finally {
      await k.dispose();
      await server.close();
      await Deno.remove(work, { recursive: true });
    }
  },
});

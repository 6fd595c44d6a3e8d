import assert from "node:assert/strict";
import { readUstar, writeUstar } from "../lib/ustar.ts";
import { extractBundle, isBundleFile } from "./bundle.ts";
import { buildBundle, buildQueue, keygen, readKeyFile } from "./publish.ts";
import { generateKeyFile } from "./signing.ts";
import { openIndex } from "./index_format.ts";

/** A small valid app module directory (a fake squashfs image: only the magic matters). */
async function makeModule(dir: string, version = "1.0.0"): Promise<string> {
  await Deno.mkdir(dir, { recursive: true });
  const image = new Uint8Array(4096);
  image.set(new TextEncoder().encode("hsqs"));
  await Deno.writeFile(`${dir}/demo.aqi`, image);
  await Deno.writeTextFile(
    `${dir}/manifest.json`,
    JSON.stringify({
      format: "kaos-module/1",
      name: "demo",
      version,
      kind: "app",
      description: "demo module",
      image: { format: "squashfs" },
    }),
  );
  await Deno.writeTextFile(`${dir}/climod.aq`, '{"format":"kaos-climod/1","fields":[]}');
  await Deno.writeTextFile(
    `${dir}/appmgr.aq`,
    '{"format":"kaos-appmgr/1","service":{"exec":["bin/demo"]},"readiness":{"type":"tcp","port":80}}',
  );
  return dir;
}

Deno.test("bundle: build, verify and extract; a stranger's key and altered files are refused", async () => {
  const work = await Deno.makeTempDir({ prefix: "kaos_bundle_test_" });
  const key = await generateKeyFile();
  const stranger = await generateKeyFile();
  const src = await makeModule(`${work}/src/demo`);
  await buildBundle(src, { out: `${work}/demo.kaosbundle`, key, releaseNotes: "first" });
  assert.ok(await isBundleFile(`${work}/demo.kaosbundle`));
  assert.ok(!await isBundleFile(src));

  await Deno.mkdir(`${work}/x1`);
  const got = await extractBundle(`${work}/demo.kaosbundle`, {
    into: `${work}/x1`,
    trusted: [stranger.publicKey, key.publicKey],
  });
  assert.equal(got.publicKey, key.publicKey);
  assert.equal(got.release.releaseNotes, "first");
  assert.deepEqual(
    [...Deno.readDirSync(`${work}/x1/demo`)].map((e) => e.name).sort(),
    ["appmgr.aq", "climod.aq", "demo.aqi", "manifest.json"],
  );

  await Deno.mkdir(`${work}/x2`);
  await assert.rejects(
    extractBundle(`${work}/demo.kaosbundle`, { into: `${work}/x2`, trusted: [stranger.publicKey] }),
    /untrusted key/,
  );
  await assert.rejects(
    extractBundle(`${work}/demo.kaosbundle`, { into: `${work}/x2`, trusted: [] }),
    /no AppQueue key is configured/,
  );

  // Re-pack with a changed image but the original signed bundle.json.
  const entries = readUstar(await Deno.readFile(`${work}/demo.kaosbundle`));
  const image = entries.find((e) => e.path === "demo.aqi")!;
  image.data[100] = 1;
  await Deno.writeFile(`${work}/bad.kaosbundle`, writeUstar(entries));
  await assert.rejects(
    extractBundle(`${work}/bad.kaosbundle`, { into: `${work}/x2`, trusted: [key.publicKey] }),
    /the sha256 of demo\.aqi is [0-9a-f]{64}, the signed manifest says/,
  );
  // An extra file, and a missing signature.
  await Deno.writeFile(
    `${work}/extra.kaosbundle`,
    writeUstar([...readUstar(await Deno.readFile(`${work}/demo.kaosbundle`)), {
      path: "run.sh",
      data: new Uint8Array(1),
    }]),
  );
  await assert.rejects(
    extractBundle(`${work}/extra.kaosbundle`, { into: `${work}/x2`, trusted: [key.publicKey] }),
    /unexpected entry "run\.sh"/,
  );
  await Deno.writeFile(`${work}/nosig.kaosbundle`, writeUstar(entries.slice(1)));
  await assert.rejects(
    extractBundle(`${work}/nosig.kaosbundle`, { into: `${work}/x2`, trusted: [key.publicKey] }),
    /has no bundle\.json/,
  );
  assert.deepEqual([...Deno.readDirSync(`${work}/x2`)], []);
  await Deno.remove(work, { recursive: true });
});

Deno.test("publish: keygen never overwrites; build writes parts by digest and a signed index", async () => {
  const work = await Deno.makeTempDir({ prefix: "kaos_publish_test_" });
  const key = await keygen(`${work}/key.json`);
  assert.equal((await Deno.stat(`${work}/key.json`)).mode! & 0o777, 0o600);
  await assert.rejects(keygen(`${work}/key.json`), /Cannot write key file .*File exists/);
  assert.deepEqual(await readKeyFile(`${work}/key.json`), key);

  const v1 = await makeModule(`${work}/v1/demo`, "1.0.0");
  const v2 = await makeModule(`${work}/v2/demo`, "1.1.0");
  const first = await buildQueue([v1], { out: `${work}/q`, key });
  assert.equal(first.serial, 1);
  const second = await buildQueue([v1, v2], {
    out: `${work}/q`,
    key,
    releaseNotes: { "demo@1.1.0": "better" },
  });
  assert.equal(second.serial, 2, "the serial grows with each build");
  const index = await openIndex(await Deno.readFile(`${work}/q/index.json`), {
    publicKey: key.publicKey,
    queue: "test",
  });
  assert.deepEqual(index.releases.map((r) => `${r.name}@${r.version}:${r.releaseNotes}`), [
    "demo@1.0.0:",
    "demo@1.1.0:better",
  ]);
  for (const r of index.releases) {
    for (const p of Object.values(r.parts)) {
      assert.equal((await Deno.stat(`${work}/q/parts/${p.sha256}`)).size, p.size);
    }
  }
  await Deno.remove(work, { recursive: true });
});

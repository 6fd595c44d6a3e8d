import assert from "node:assert/strict";
import { compareVersions, openIndex, pickRelease, type QueueIndex } from "./index_format.ts";
import { generateKeyFile, signPayload } from "./signing.ts";

const part = (c: string, size = 10) => ({ sha256: c.repeat(64), size });
const release = (name: string, version: string) => ({
  name,
  version,
  kind: "app" as const,
  imageFormat: "ext4" as const,
  description: "",
  releaseNotes: "",
  parts: { manifest: part("a"), image: part("b"), climod: part("c"), appmgr: part("d") },
});

Deno.test("index: versions compare numerically, pre-releases first", () => {
  const sorted = ["1.10.0", "1.2.0", "1.2.0-rc1", "0.9.9", "1.2.1"].sort(compareVersions);
  assert.deepEqual(sorted, ["0.9.9", "1.2.0-rc1", "1.2.0", "1.2.1", "1.10.0"]);
  const idx: QueueIndex = {
    format: "kaos-appqueue-index/1",
    serial: 1,
    generatedAt: "",
    expiresAt: "2099-01-01T00:00:00.000Z",
    releases: [release("web", "1.2.0"), release("web", "1.10.0"), release("db", "1.0.0")],
  };
  assert.equal(pickRelease(idx, "web")!.version, "1.10.0");
  assert.equal(pickRelease(idx, "web", "1.2.0")!.version, "1.2.0");
  assert.equal(pickRelease(idx, "web", "9.9.9"), undefined);
  assert.equal(pickRelease(idx, "nope"), undefined);
});

Deno.test("index: a signed index opens; bad content is refused with a clear error", async () => {
  const key = await generateKeyFile();
  const sign = async (payload: unknown) =>
    new TextEncoder().encode(JSON.stringify(await signPayload(key, JSON.stringify(payload))));
  const good = {
    format: "kaos-appqueue-index/1",
    serial: 3,
    generatedAt: "now",
    expiresAt: new Date(Date.now() + 86_400_000).toISOString(),
    releases: [release("web", "1.0.0")],
  };
  const idx = await openIndex(await sign(good), { publicKey: key.publicKey, queue: "community" });
  assert.equal(idx.releases[0].releaseNotes, "");
  const bad = async (payload: unknown, message: RegExp) =>
    await assert.rejects(
      openIndex(await sign(payload), { publicKey: key.publicKey, queue: "community" }),
      message,
    );
  await bad({ ...good, releases: [release("web", "1.0.0"), release("web", "1.0.0")] }, /twice/);
  await bad({ ...good, serial: 0 }, /Invalid the index of queue community: serial/);
  await bad({ ...good, releases: [{ ...release("web", "1.0.0"), name: "../x" }] }, /name/);
  await bad(
    { ...good, releases: [{ ...release("web", "1.0.0"), parts: { manifest: part("a") } }] },
    /parts/,
  );
  await bad({ ...good, extra: true }, /Unrecognized key/i);
  const { expiresAt: _, ...noExpiry } = good;
  await bad(noExpiry, /Invalid the index of queue community: expiresAt/);
  await bad(
    { ...good, expiresAt: "2020-01-01T00:00:00.000Z" },
    /Cannot use queue community: its index \(serial 3\) expired at 2020-01-01T00:00:00.000Z/,
  );
  // The clock decides: the same index opens before its expiry and is refused after it.
  const at = (iso: string) => ({
    publicKey: key.publicKey,
    queue: "community",
    now: new Date(iso),
  });
  const later = await sign({ ...good, expiresAt: "2030-06-01T00:00:00.000Z" });
  assert.equal((await openIndex(later, at("2030-05-31T23:59:59Z"))).serial, 3);
  await assert.rejects(openIndex(later, at("2030-06-01T00:00:00Z")), /expired/);
});

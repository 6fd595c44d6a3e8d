import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { fetchBytes, type FetchFn, fetchPart, HttpStatusError } from "./fetch.ts";

const data = Uint8Array.from({ length: 300_000 }, (_, i) => (i * 7) % 251);
const digest = createHash("sha256").update(data).digest("hex");

/** A fake server: serves `body`, honours Range unless told not to, can break after n bytes. */
function fakeFetch(
  o: { body?: Uint8Array; breakAfter?: number; ignoreRange?: boolean; status?: number } = {},
) {
  const seen: (string | null)[] = [];
  const f: FetchFn = (_url, init) => {
    const range = new Headers(init?.headers).get("range");
    seen.push(range);
    if (o.status) return Promise.resolve(new Response("no", { status: o.status }));
    let body = o.body ?? data;
    let status = 200;
    const headers = new Headers();
    const m = range && /^bytes=(\d+)-$/.exec(range);
    if (m && !o.ignoreRange) {
      headers.set("content-range", `bytes ${m[1]}-${body.length - 1}/${body.length}`);
      body = body.subarray(Number(m[1]));
      status = 206;
    }
    const cut = o.breakAfter;
    let sent = false;
    const stream = new ReadableStream<Uint8Array>({
      pull(c) {
        if (!sent) {
          sent = true;
          c.enqueue(body.slice(0, cut ?? body.length));
        } else if (cut === undefined) {
          c.close();
        } else {
          c.error(new Error("connection reset"));
        }
      },
    });
    return Promise.resolve(new Response(stream, { status, headers }));
  };
  return { f, seen };
}

async function tmp(): Promise<string> {
  return await Deno.makeTempDir({ prefix: "kaos_fetch_test_" });
}

Deno.test("fetchPart: downloads, verifies, reports progress and renames into place", async () => {
  const dir = await tmp();
  const { f } = fakeFetch();
  const progress: number[] = [];
  const r = await fetchPart("http://q/parts/x", {
    fetch: f,
    sha256: digest,
    size: data.length,
    dest: `${dir}/out`,
    label: "x",
    onProgress: (done) => progress.push(done),
  });
  assert.deepEqual(r, { resumedFrom: 0, downloaded: data.length });
  assert.deepEqual(await Deno.readFile(`${dir}/out`), data);
  assert.equal(progress.at(-1), data.length);
  await assert.rejects(Deno.stat(`${dir}/out.part`));
  await Deno.remove(dir, { recursive: true });
});

Deno.test("fetchPart: a broken transfer keeps the partial file and the next call resumes it", async () => {
  const dir = await tmp();
  const opts = { sha256: digest, size: data.length, dest: `${dir}/out`, label: "img of web 1.0.0" };
  await assert.rejects(
    fetchPart("http://q/p", { ...opts, fetch: fakeFetch({ breakAfter: 100_000 }).f }),
    /img of web 1\.0\.0: the transfer ended after 100000 of 300000 bytes \(truncated download\)/,
  );
  assert.equal((await Deno.stat(`${dir}/out.part`)).size, 100_000);
  const { f, seen } = fakeFetch();
  const r = await fetchPart("http://q/p", { ...opts, fetch: f });
  assert.deepEqual(seen, ["bytes=100000-"]);
  assert.deepEqual(r, { resumedFrom: 100_000, downloaded: 200_000 });
  assert.deepEqual(await Deno.readFile(`${dir}/out`), data);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("fetchPart: a server that ignores Range is downloaded again from the start", async () => {
  const dir = await tmp();
  await Deno.writeFile(`${dir}/out.part`, data.subarray(0, 5000));
  const { f } = fakeFetch({ ignoreRange: true });
  const r = await fetchPart("http://q/p", {
    fetch: f,
    sha256: digest,
    size: data.length,
    dest: `${dir}/out`,
    label: "x",
  });
  assert.deepEqual(r, { resumedFrom: 0, downloaded: data.length });
  assert.deepEqual(await Deno.readFile(`${dir}/out`), data);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("fetchPart: wrong digest, too many bytes and HTTP errors leave nothing", async () => {
  const dir = await tmp();
  const opts = { size: data.length, dest: `${dir}/out`, label: "web.aqi" };
  await assert.rejects(
    fetchPart("http://q/p", { ...opts, sha256: "0".repeat(64), fetch: fakeFetch().f }),
    (e: Error & { code?: string }) =>
      /web\.aqi: its sha256 is [0-9a-f]{64}, the signed index says 0{64}/.test(e.message) &&
      e.code === "digest-mismatch",
  );
  const bigger = new Uint8Array(data.length + 1);
  await assert.rejects(
    fetchPart("http://q/p", { ...opts, sha256: digest, fetch: fakeFetch({ body: bigger }).f }),
    /sent more than the 300000 bytes/,
  );
  await assert.rejects(
    fetchPart("http://q/p", { ...opts, sha256: digest, fetch: fakeFetch({ status: 403 }).f }),
    (e) => e instanceof HttpStatusError && e.status === 403,
  );
  assert.deepEqual([...Deno.readDirSync(dir)], []);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("fetchBytes: size limit, and network errors name the URL but never the headers", async () => {
  const { f } = fakeFetch();
  await assert.rejects(
    fetchBytes("http://q/index.json", { fetch: f, maxBytes: 1000, label: "the index" }),
    /the index: larger than 1000 bytes/,
  );
  assert.equal(
    (await fetchBytes("http://q/i", { fetch: f, maxBytes: 1e6, label: "i" })).length,
    data.length,
  );
  const failing: FetchFn = () => Promise.reject(new TypeError("connection refused"));
  await assert.rejects(
    fetchBytes("http://h:1/q/index.json?x=1", {
      fetch: failing,
      maxBytes: 10,
      label: "the index",
      headers: { "X-KaOS-Subscription": "secret-key" },
    }),
    (e: Error) =>
      e.message === "Cannot download the index from http://h:1/q/index.json: connection refused" &&
      !e.message.includes("secret"),
  );
});

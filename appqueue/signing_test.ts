import assert from "node:assert/strict";
import {
  decodeBase64,
  encodeBase64,
  generateKeyFile,
  openEnvelope,
  PublicKey,
  signPayload,
  verifySignature,
} from "./signing.ts";

const enc = new TextEncoder();

Deno.test("signing: sign and verify round trip; keys are 32 raw bytes in base64", async () => {
  const key = await generateKeyFile();
  assert.equal(decodeBase64(key.publicKey).length, 32);
  assert.ok(PublicKey.safeParse(key.publicKey).success);
  const env = await signPayload(key, '{"a":1}');
  assert.ok(await verifySignature(key.publicKey, enc.encode(env.payload), env.signature));
  assert.ok(!await verifySignature(key.publicKey, enc.encode('{"a":2}'), env.signature));
  assert.ok(!await verifySignature(key.publicKey, enc.encode(env.payload), "AAAA"));
  const opened = await openEnvelope(enc.encode(JSON.stringify(env)), {
    trusted: [key.publicKey],
    label: "test document",
  });
  assert.deepEqual(opened, { payload: '{"a":1}', publicKey: key.publicKey });
});

Deno.test("signing: base64 round trip of every byte value", () => {
  const all = Uint8Array.from({ length: 256 }, (_, i) => i);
  assert.deepEqual(decodeBase64(encodeBase64(all)), all);
  assert.ok(!PublicKey.safeParse(encodeBase64(new Uint8Array(31))).success);
  assert.ok(!PublicKey.safeParse("not base64!").success);
});

Deno.test("signing: untrusted key, altered payload, swapped key and junk are refused", async () => {
  const key = await generateKeyFile();
  const other = await generateKeyFile();
  const env = await signPayload(key, "payload");
  const open = (e: unknown, trusted = [key.publicKey]) =>
    openEnvelope(enc.encode(typeof e === "string" ? e : JSON.stringify(e)), {
      trusted,
      label: "the index",
    });
  await assert.rejects(open(env, [other.publicKey]), /the index: it is signed by an untrusted key/);
  await assert.rejects(open({ ...env, payload: "payload!" }), /signature does not match/);
  await assert.rejects(
    open({ ...env, publicKey: other.publicKey }, [key.publicKey, other.publicKey]),
    /signature does not match/,
  );
  await assert.rejects(open("<html>"), /not a signed JSON document/);
  await assert.rejects(open({ ...env, extra: 1 }), /malformed signature envelope/);
});

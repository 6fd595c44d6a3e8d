/** readChunks: small reads into a small buffer, a bigger one once a read fills it; bytes intact. */
import assert from "node:assert/strict";
import { readChunks } from "./protocol.ts";

Deno.test("readChunks: 8 KiB first, 64 KiB once a read fills the buffer; every byte comes through", async () => {
  const data = Uint8Array.from({ length: 200_000 }, (_, i) => (i * 7919) % 251);
  const sizes: number[] = [];
  let at = 0;
  const conn = {
    read(buf: Uint8Array): Promise<number | null> {
      sizes.push(buf.length);
      if (at >= data.length) return Promise.resolve(null);
      // A short first read (a small frame), then as much as fits.
      const n = Math.min(buf.length, data.length - at, sizes.length === 1 ? 100 : Infinity);
      buf.set(data.subarray(at, at + n));
      at += n;
      return Promise.resolve(n);
    },
  };
  const chunks: Uint8Array[] = [];
  for await (const c of readChunks(conn)) chunks.push(c);
  assert.deepEqual(sizes.slice(0, 3), [8192, 8192, 65536]);
  assert.ok(sizes.slice(2).every((s) => s === 65536));
  const joined = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  chunks.reduce((off, c) => (joined.set(c, off), off + c.length), 0);
  assert.deepEqual(joined, data);
  // The server's reader stays at its own size.
  const small: number[] = [];
  at = 0;
  for await (const _ of readChunks({ read: (b) => (small.push(b.length), conn.read(b)) }, 8192)) {
    // drain
  }
  assert.ok(small.every((s) => s === 8192));
});

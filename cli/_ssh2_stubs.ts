/**
 * What npm:ssh2 loads with its server and our configured server can never run, replaced in the
 * sshd's bundle (/kaos/sshd.js, buildroot/appliance/bundle-front-ends; issue 13: the sshd's
 * memory). The bundle leaves these require() ids out (`--external`) and its require() answers them
 * from here; `deno run`/`deno test` of the sources load the real modules and ignore this table.
 * Each stub throws a clear error if it is ever reached. Why none is reached (ssh2 1.17.0):
 *
 * - `./protocol/SFTP.js` (SFTP, with node:fs and node:assert): server.js builds an SFTP only in
 *   the `accept` of a session's `sftp` event, and cli/ssh_server.ts answers that event with reject
 *   (the sftp subsystem is refused; lib/utils.js only compares a constructor with it).
 * - `./crypto/poly1305.js` (a WebAssembly module with a 16 MiB memory): crypto.js loads it at its
 *   start and calls poly1305_auth only in the chacha20-poly1305@openssh.com cipher, which
 *   SSH_CIPHERS does not offer (AES-GCM and AES-CTR only), so the key exchange never picks it.
 * - `bcrypt-pbkdf` (with tweetnacl): keyParser.js calls it only for an OpenSSH private key
 *   encrypted with a passphrase (without one it returns an error first), keygen.js only when asked
 *   for a passphrase; cli/host_keys.ts makes and reads its host keys without one.
 * - `node:zlib`: ssh2's zlib.js makes one inflate stream at its start (to reach its handle's
 *   class) and compresses only for a negotiated `zlib` or `zlib@openssh.com`; the server offers
 *   `compress: ["none"]` only.
 *
 * One is not a stub but a small stand-in that is reached: `node:assert` for asn1 (ssh2's BER
 * reader and writer), which calls only `assert.ok` and `assert.equal` (argument checks); Deno's
 * node:assert would touch 2.3 MiB more of the deno binary at the sshd's start. The stand-in
 * throws as Node's does (an AssertionError, code ERR_ASSERTION, the message given); any other
 * function of node:assert is missing, and the bundle script checks that only asn1 requires it.
 */

/** The global the bundle's require() reads the stubs from (set when cli/_ssh2.ts loads). */
export const SSH2_STUBS_KEY = Symbol.for("kaos.ssh2.stubs");

function unreachable(what: string, why: string): never {
  throw new Error(
    `${what} is left out of this sshd (${why}; cli/_ssh2_stubs.ts): a bug if reached`,
  );
}

const NO_SFTP = "the server refuses the sftp subsystem";
const NO_CHACHA = "the server offers AES-GCM and AES-CTR only, no chacha20-poly1305";
const NO_PASSPHRASE = "host keys are made and read without a passphrase";
const NO_ZLIB = "the server offers no compression";

/** ssh2's SFTP, which it builds only for an accepted sftp subsystem. */
class SFTP {
  constructor() {
    unreachable("ssh2's SFTP", NO_SFTP);
  }
}

/** Node's zlib handle class, as ssh2's zlib.js reaches it through createInflate(). */
class ZlibHandle {
  constructor() {
    unreachable("zlib compression", NO_ZLIB);
  }
}

/** Node's assert.AssertionError as far as asn1 can see it (name, code, message). */
class AssertionError extends Error {
  override name = "AssertionError";
  code = "ERR_ASSERTION";
}

/** node:assert's `ok` and `equal` (loose, ==), the two functions asn1 calls. */
const assertStandIn = {
  ok(value: unknown, message?: string): void {
    if (!value) {
      throw new AssertionError(message ?? "The expression evaluated to a falsy value");
    }
  },
  equal(actual: unknown, expected: unknown, message?: string): void {
    // deno-lint-ignore eqeqeq
    if (actual != expected && !(actual !== actual && expected !== expected)) {
      throw new AssertionError(message ?? `${String(actual)} == ${String(expected)}`);
    }
  },
};

/** The stubs by the require() id the bundle leaves out. */
export const SSH2_STUBS: Readonly<Record<string, unknown>> = Object.freeze({
  "./protocol/SFTP.js": { SFTP },
  // The emscripten module factory: malloc and cwrap are called at ssh2's start, the wrapped
  // poly1305_auth only by the chacha20-poly1305 cipher.
  "./crypto/poly1305.js": () =>
    Promise.resolve({
      _malloc: () => 0,
      cwrap: () => () => unreachable("Poly1305 (chacha20-poly1305)", NO_CHACHA),
    }),
  "bcrypt-pbkdf": {
    pbkdf: () => unreachable("bcrypt-pbkdf (passphrase-encrypted keys)", NO_PASSPHRASE),
  },
  "node:assert": Object.assign(
    (value: unknown, message?: string) => assertStandIn.ok(value, message),
    assertStandIn,
  ),
  "node:zlib": {
    createInflate: () => ({ _handle: { constructor: ZlibHandle } }),
    // The values of Node's zlib.constants that ssh2's zlib.js reads at its start.
    constants: {
      DEFLATE: 1,
      INFLATE: 2,
      Z_DEFAULT_CHUNK: 16384,
      Z_DEFAULT_COMPRESSION: -1,
      Z_DEFAULT_MEMLEVEL: 8,
      Z_DEFAULT_STRATEGY: 0,
      Z_DEFAULT_WINDOWBITS: 15,
      Z_PARTIAL_FLUSH: 1,
    },
  },
});

(globalThis as Record<symbol, unknown>)[SSH2_STUBS_KEY] = SSH2_STUBS;

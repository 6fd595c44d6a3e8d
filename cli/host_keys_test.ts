import {
  deepStrictEqual as assertEquals,
  match as assertMatch,
  ok as assert,
  rejects,
  throws,
} from "node:assert/strict";
import { isUserError } from "../lib/errors.ts";
import { MALFORMED_HOST_KEY } from "../tests/_ssh.ts";
import { generateHostKey, loadOrCreateHostKeys } from "./host_keys.ts";

/** `ssh-keygen -l -f FILE`: the fingerprint OpenSSH computes from the private key file. */
async function opensshFingerprint(path: string): Promise<string> {
  const out = await new Deno.Command("ssh-keygen", { args: ["-l", "-f", path] }).output();
  assert(out.success, new TextDecoder().decode(out.stderr));
  return new TextDecoder().decode(out.stdout).split(" ")[1];
}

Deno.test("host keys: generated once (0600, dir 0700), reused afterwards, readable by OpenSSH", async () => {
  const dir = `${await Deno.makeTempDir()}/keys`;
  try {
    const first = await loadOrCreateHostKeys(dir);
    assertEquals(first.map((k) => k.type), ["ssh-ed25519"]); // no RSA key: never served
    assertEquals((await Deno.stat(dir)).mode! & 0o777, 0o700);
    for (const key of first) {
      assertEquals((await Deno.stat(key.path)).mode! & 0o777, 0o600);
      assertEquals(await opensshFingerprint(key.path), key.fingerprint);
      assertEquals((await Deno.readTextFile(`${key.path}.pub`)).trim(), key.publicKey);
    }
    const second = await loadOrCreateHostKeys(dir);
    assertEquals(second, first);
    assertEquals([...Deno.readDirSync(dir)].filter((e) => e.name.includes(".tmp-")), []);
  } finally {
    await Deno.remove(dir.replace(/\/keys$/, ""), { recursive: true });
  }
});

Deno.test("host keys: two starts racing on an empty dir end up with the same keys", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const [a, b] = await Promise.all([loadOrCreateHostKeys(dir), loadOrCreateHostKeys(dir)]);
    assertEquals(a.map((k) => k.fingerprint), b.map((k) => k.fingerprint));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("host keys: an unusable key file is kept aside (never deleted) and a new key made", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/ssh_host_ed25519_key`;
  const now = () => new Date("2026-11-28T02:30:15.123Z");
  try {
    const rsa = `${dir}/rsa`;
    const keygen = await new Deno.Command("ssh-keygen", {
      args: ["-q", "-t", "rsa", "-b", "2048", "-N", "", "-f", rsa],
    }).output();
    assert(keygen.success, new TextDecoder().decode(keygen.stderr));
    const cases: [string, string, RegExp][] = [
      ["the malformed key of ssh2's keygen", MALFORMED_HOST_KEY, /Malformed OpenSSH private key/],
      ["garbage", "garbage\n", /./],
      ["an empty file", "", /the file is empty/],
      ["an RSA key", await Deno.readTextFile(rsa), /not an ssh-ed25519 private key/],
      ["a public key", await Deno.readTextFile(`${rsa}.pub`), /not an ssh-ed25519 private key/],
    ];
    const kept: string[] = [];
    for (const [what, text, reason] of cases) {
      await Deno.writeTextFile(path, text, { mode: 0o600 });
      const [key] = await loadOrCreateHostKeys(dir, { now });
      // The same second each time: the kept files get -2, -3… and none is overwritten.
      const keptAs = `${path}.bad-20261128T023015Z${
        kept.length === 0 ? "" : `-${kept.length + 1}`
      }`;
      assertEquals(key.replaced?.keptAs, keptAs, what);
      assertMatch(key.replaced!.reason, reason, what);
      kept.push(text);
      assertEquals(await opensshFingerprint(path), key.fingerprint, what);
      assertEquals((await Deno.stat(path)).mode! & 0o777, 0o600);
      assertEquals((await Deno.readTextFile(`${path}.pub`)).trim(), key.publicKey, what);
      // The next start uses the new key as it is, and says nothing of a replacement.
      const [again] = await loadOrCreateHostKeys(dir, { now });
      const { replaced: _, ...plain } = key;
      assertEquals(again, plain);
      await Deno.remove(path);
    }
    for (const [i, text] of kept.entries()) {
      const name = `${path}.bad-20261128T023015Z${i === 0 ? "" : `-${i + 1}`}`;
      assertEquals(await Deno.readTextFile(name), text);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("host keys: a key file that cannot be read is an error; nothing is moved or made", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/ssh_host_ed25519_key`;
  try {
    // A directory where the key belongs: reading it fails (EISDIR), as an I/O error would.
    await Deno.mkdir(path);
    await Deno.writeTextFile(`${path}/inside`, "x");
    await rejects(loadOrCreateHostKeys(dir), (err) => {
      assert(isUserError(err));
      assertMatch(err.message, new RegExp(`^Cannot read SSH host key ${path}: `));
      assertMatch(err.hint, /left as it is and no new key is made/);
      return true;
    });
    assertEquals([...Deno.readDirSync(dir)].map((e) => e.name), ["ssh_host_ed25519_key"]);
    assertEquals(await Deno.readTextFile(`${path}/inside`), "x");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("host keys: an RSA host key an earlier release left is neither used nor touched", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const keygen = await new Deno.Command("ssh-keygen", {
      args: ["-q", "-t", "rsa", "-b", "2048", "-N", "", "-f", `${dir}/ssh_host_rsa_key`],
    }).output();
    assert(keygen.success, new TextDecoder().decode(keygen.stderr));
    const before = await Deno.readTextFile(`${dir}/ssh_host_rsa_key`);
    const keys = await loadOrCreateHostKeys(dir);
    assertEquals(keys.map((k) => k.type), ["ssh-ed25519"]);
    assertEquals(await Deno.readTextFile(`${dir}/ssh_host_rsa_key`), before);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("host keys: a malformed key from the keygen is never saved; another is made", async () => {
  const malformed = MALFORMED_HOST_KEY;
  const good = generateHostKey();
  const made: string[] = [];
  const key = generateHostKey(() => (made.push("x"), made.length < 3 ? malformed : good));
  assertEquals(key, good);
  assertEquals(made.length, 3);
  throws(() => generateHostKey(() => malformed, 5), /no usable ed25519 host key in 5 tries/);
  // The real keygen's key: OpenSSH reads it.
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/k`, generateHostKey(), { mode: 0o600 });
    assert((await opensshFingerprint(`${dir}/k`)).startsWith("SHA256:"));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

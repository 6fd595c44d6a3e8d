import { deepStrictEqual as assertEquals, ok as assert, rejects, throws } from "node:assert/strict";
import { isUserError } from "../lib/errors.ts";
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

Deno.test("host keys: an unreadable key file is an error and is left as it is", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/ssh_host_ed25519_key`, "garbage\n", { mode: 0o600 });
    await rejects(loadOrCreateHostKeys(dir), (err) => {
      assert(isUserError(err));
      assert(err.message.startsWith(`Cannot use SSH host key ${dir}/ssh_host_ed25519_key`));
      assert(err.hint.includes("Remove the file"));
      return true;
    });
    assertEquals(await Deno.readTextFile(`${dir}/ssh_host_ed25519_key`), "garbage\n");
    // An RSA key where the ed25519 key belongs is refused too.
    await Deno.remove(`${dir}/ssh_host_ed25519_key`);
    const keygen = await new Deno.Command("ssh-keygen", {
      args: ["-q", "-t", "rsa", "-b", "2048", "-N", "", "-f", `${dir}/ssh_host_ed25519_key`],
    }).output();
    assert(keygen.success, new TextDecoder().decode(keygen.stderr));
    await rejects(loadOrCreateHostKeys(dir), (err) => isUserError(err));
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
  // What ssh2's keygen made once in some 330 keys: the public key's leading 0 byte dropped.
  const malformed = [
    "-----BEGIN OPENSSH PRIVATE KEY-----",
    "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMgAAAAtz",
    "c2gtZWQyNTUxOQAAAB+TG3dBIsavv1qGurhHa1a2YAXZRx+iyzbkFYto9hf4AAAA",
    "kHQQawN0EGsDAAAAC3NzaC1lZDI1NTE5AAAAH5Mbd0Eixq+/Woa6uEdrVrZgBdlH",
    "H6LLNuQVi2j2F/gAAAA/dNXaw2JcRJ4pnOY52TqBPhYoI7Xvv6mUrtqDEdzRHTGT",
    "G3dBIsavv1qGurhHa1a2YAXZRx+iyzbkFYto9hf4AAAACWthb3MtaG9zdAECAwQF",
    "Bg==",
    "-----END OPENSSH PRIVATE KEY-----",
    "",
  ].join("\n");
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

/** Unit tests of password hashing, the password policy and authorized-key parsing. */
import {
  deepStrictEqual as assertEquals,
  ok as assert,
  throws as assertThrows,
} from "node:assert/strict";
import { UserError } from "../lib/errors.ts";
import {
  checkPasswordPolicy,
  DEFAULT_PASSWORD,
  hashPassword,
  isDefaultPassword,
  parsePublicKey,
  publicKeyLine,
  verifyPassword,
} from "./auth.ts";

Deno.test("scrypt hashes: salted, verified, wrong passwords and malformed hashes refused", async () => {
  const a = await hashPassword("correct horse");
  const b = await hashPassword("correct horse");
  assert(a.startsWith("scrypt$16384$8$1$"), a);
  assert(a !== b, "two hashes of one password differ (salt)");
  assert(await verifyPassword("correct horse", a));
  assert(await verifyPassword("correct horse", b));
  assert(!(await verifyPassword("correct horsE", a)));
  assert(!(await verifyPassword("correct horse", "")));
  assert(!(await verifyPassword("correct horse", "scrypt$99999999$8$1$AA==$AA==")));
  assert(!(await verifyPassword("x", "md5$abc")));
});

Deno.test("the password policy", () => {
  const refused = (pw: string, re: RegExp) =>
    assertThrows(
      () => checkPasswordPolicy(pw, { user: "aqcli" }),
      (e) => e instanceof UserError && re.test(e.message) && e.hint !== "",
    );
  refused("short", /shorter than 8/);
  refused(DEFAULT_PASSWORD, /default password/);
  refused("AQCLI", /shorter/);
  refused("x".repeat(257), /longer than 256/);
  refused("abc\ndefgh", /control characters/);
  checkPasswordPolicy("a perfectly fine passphrase", { user: "aqcli" });
  assert(isDefaultPassword(DEFAULT_PASSWORD));
  assert(!isDefaultPassword(DEFAULT_PASSWORD + " "));
  assertEquals(DEFAULT_PASSWORD, "kaos-0.1.0-dev");
});

Deno.test("public keys: parsed like ssh-keygen, bad lines refused with a hint", async () => {
  const dir = await Deno.makeTempDir();
  try {
    for (const type of ["ed25519", "rsa", "ecdsa"]) {
      const path = `${dir}/${type}`;
      const gen = await new Deno.Command("ssh-keygen", {
        args: ["-q", "-t", type, "-N", "", "-C", `me@${type}`, "-f", path],
      }).output();
      assert(gen.success);
      const line = (await Deno.readTextFile(`${path}.pub`)).trim();
      const k = parsePublicKey(`  ${line}  `);
      const fp = new TextDecoder().decode(
        (await new Deno.Command("ssh-keygen", { args: ["-l", "-f", `${path}.pub`] }).output())
          .stdout,
      );
      assert(fp.includes(k.fingerprint), `${fp} vs ${k.fingerprint}`);
      assertEquals(k.comment, `me@${type}`);
      assertEquals(publicKeyLine(k), line);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
  for (
    const bad of [
      "",
      "ssh-ed25519",
      "ssh-dss AAAAB3NzaC1kc3MAAACBAP",
      "ssh-ed25519 not*base64",
      "ssh-ed25519 AAAAB3NzaC1yc2EAAAADAQABAAABAQ==", // an RSA blob under an ed25519 name
      "ssh-ed25519 AAAA\nssh-rsa AAAA",
    ]
  ) {
    assertThrows(() => parsePublicKey(bad), (e) => e instanceof UserError && e.hint !== "", bad);
  }
});

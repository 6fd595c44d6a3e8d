import { deepStrictEqual as assertEquals, match as assertMatch } from "node:assert/strict";
import { REPLACED_WARNING_DAYS, sshHostKeyStatus } from "./ssh_host_key.ts";

Deno.test("ssh host key status: fingerprint, the latest kept key, a warning while recent", async () => {
  const state = await Deno.makeTempDir();
  try {
    // No sshd has run here: nothing to say.
    assertEquals(await sshHostKeyStatus(state), {
      fingerprint: null,
      replaced: null,
      notice: null,
    });
    const dir = `${state}/ssh`;
    await Deno.mkdir(dir);
    const key = `${dir}/ssh_host_ed25519_key`;
    const made = await new Deno.Command("ssh-keygen", {
      args: ["-q", "-t", "ed25519", "-N", "", "-C", "kaos-host", "-f", key],
    }).output();
    assertEquals(made.success, true);
    const listed = await new Deno.Command("ssh-keygen", {
      args: ["-l", "-f", `${dir}/ssh_host_ed25519_key.pub`],
    }).output();
    const fingerprint = new TextDecoder().decode(listed.stdout).split(" ")[1];
    assertEquals(await sshHostKeyStatus(state), { fingerprint, replaced: null, notice: null });
    // Two replacements in one second and an older one: the latest is told.
    for (const name of ["20261120T010000Z", "20261128T023015Z", "20261128T023015Z-2"]) {
      await Deno.writeTextFile(`${dir}/ssh_host_ed25519_key.bad-${name}`, "garbage\n");
    }
    await Deno.writeTextFile(`${dir}/ssh_host_ed25519_key.bad-nonsense`, "x");
    const at = Date.parse("2026-11-28T02:30:15Z");
    const recent = await sshHostKeyStatus(state, at + 3_600_000);
    assertEquals(recent.replaced, {
      at: "2026-11-28T02:30:15Z",
      keptAs: `${dir}/ssh_host_ed25519_key.bad-20261128T023015Z-2`,
    });
    assertMatch(recent.notice!, /^the SSH host key was replaced at 2026-11-28T02:30:15Z: /);
    assertMatch(
      recent.notice!,
      new RegExp(`kept as ${dir}/ssh_host_ed25519_key\\.bad-20261128T023015Z-2;`),
    );
    assertEquals(recent.notice!.endsWith(`the new key's fingerprint is ${fingerprint}`), true);
    // Later, the status still tells the replacement, but no longer as a warning.
    const later = await sshHostKeyStatus(state, at + REPLACED_WARNING_DAYS * 86_400_000 + 1);
    assertEquals([later.replaced, later.notice], [recent.replaced, null]);
  } finally {
    await Deno.remove(state, { recursive: true });
  }
});

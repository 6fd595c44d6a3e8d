/**
 * The SSH host key on disk, end to end: a hosted kattach starts its supervised sshd over a state
 * directory whose host key is the malformed kind ssh2's keygen made before b4ffa9f (the sshd used
 * to stop at every start: "Cannot use SSH host key …: Malformed OpenSSH private key"). The sshd
 * keeps that file aside, makes a new key, logs both files and the new fingerprint, and serves
 * the new key; `system status` and the login banner tell the operator. A key file that cannot be
 * read at all is not replaced: the sshd says why and does not listen.
 */
import {
  deepStrictEqual as assertEquals,
  match as assertMatch,
  ok as assert,
} from "node:assert/strict";
import type { SystemStatus } from "../ipc/mod.ts";
import { DEFAULT_PASSWORD } from "../kattach/auth.ts";
import { KattachWithSshd, MALFORMED_HOST_KEY, writeLoginScript } from "./_ssh.ts";
import { run, Tmux, waitFor } from "./_util.ts";

/** The fingerprint of the ed25519 host key served on `port`, as OpenSSH's client sees it. */
async function servedFingerprint(port: number): Promise<string> {
  const scan = await run(["ssh-keyscan", "-t", "ed25519", "-p", String(port), "127.0.0.1"]);
  const line = scan.stdout.split("\n").find((l) => l.includes("ssh-ed25519"));
  assert(line, `ssh-keyscan: ${scan.stderr}`);
  const [, type, blob] = line.split(" ");
  const fp = await run(["sh", "-c", `echo "${type} ${blob}" | ssh-keygen -l -f -`]);
  return fp.stdout.split(" ")[1];
}

Deno.test("a malformed SSH host key on disk: kept aside, a new key served, status and banner say so", async () => {
  const work = await Deno.makeTempDir({ prefix: "kaos_host_key_" });
  const state = `${work}/state`;
  const keyFile = `${state}/ssh/ssh_host_ed25519_key`;
  await Deno.mkdir(`${state}/ssh`, { recursive: true, mode: 0o700 });
  await Deno.writeTextFile(keyFile, MALFORMED_HOST_KEY, { mode: 0o600 });
  const k = new KattachWithSshd(state);
  const tmux = new Tmux({ name: "kaos_host_key" });
  try {
    await k.ready();
    const warned = new RegExp(
      "sshd: ssh: WARNING: the SSH host key (\\S+) could not be used \\(Malformed OpenSSH " +
        "private key\\); it is kept as (\\S+) and a new host key (SHA256:\\S+) is in its place: " +
        "SSH clients that knew the old key will warn that the host key changed",
    ).exec(k.log);
    assert(warned, k.log);
    const [, file, keptAs, fingerprint] = warned;
    assertEquals(file, keyFile);
    assertMatch(keptAs, /\/ssh_host_ed25519_key\.bad-\d{8}T\d{6}Z$/);
    assertEquals(await Deno.readTextFile(keptAs), MALFORMED_HOST_KEY); // kept as it was
    assertEquals(await servedFingerprint(k.port), fingerprint);

    const status = await k.aq.json<SystemStatus>("system", "status");
    assertEquals(status.sshHostKey?.fingerprint, fingerprint);
    assertEquals(status.sshHostKey?.replaced?.keptAs, keptAs);
    const notice = status.sshHostKey?.notice ?? "";
    assert(status.warnings.includes(notice), JSON.stringify(status.warnings));
    assertMatch(notice, /^the SSH host key was replaced at \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ: /);
    assert(notice.endsWith(`the new key's fingerprint is ${fingerprint}`), notice);
    const text = (await k.aq.aq("system", "status")).stdout;
    assert(text.includes(`Warning: ${notice}\n`), text);
    assertMatch(text, /^SSH host key: +SHA256:\S+ \(new since /m);

    // The login banner says it too (after the forced change of the default password).
    const script = `${work}/login.sh`;
    await writeLoginScript(script, { port: k.port, password: DEFAULT_PASSWORD });
    await tmux.start(script);
    await tmux.waitFor("New password");
    await tmux.type("Tr1cky-new-pass");
    await tmux.waitFor("Retype new password");
    await tmux.type("Tr1cky-new-pass");
    await tmux.waitFor(/AppQueue CLI[^\n]*\n\s*Warning: the SSH host key was replaced at/);

    // The sshd's next start uses the new key as it is: same fingerprint, no second replacement.
    const pids = k.sshdPids();
    Deno.kill(pids.at(-1)!, "SIGKILL");
    await k.ready({ listening: 2 });
    assertEquals(await servedFingerprint(k.port), fingerprint);
    assertEquals((k.log.match(/WARNING: the SSH host key/g) ?? []).length, 1);
    const kept = [...Deno.readDirSync(`${state}/ssh`)].filter((e) => e.name.includes(".bad-"));
    assertEquals(kept.length, 1);
  } finally {
    await tmux.stop();
    await k.stop();
    await Deno.remove(work, { recursive: true }).catch(() => {});
  }
});

Deno.test("an SSH host key file that cannot be read: the sshd says why and stops; nothing is moved", async () => {
  const work = await Deno.makeTempDir({ prefix: "kaos_host_key_" });
  const state = `${work}/state`;
  const keyFile = `${state}/ssh/ssh_host_ed25519_key`;
  // A directory where the key belongs: reading it fails (EISDIR), as an I/O error would.
  await Deno.mkdir(keyFile, { recursive: true });
  const k = new KattachWithSshd(state);
  try {
    await waitFor(
      () => /sshd: ssh: Cannot read SSH host key \S+: Is a directory/.test(k.log),
      () => `the sshd's refusal; log:\n${k.log}`,
      { timeoutMs: 30_000 },
    );
    assertMatch(k.log, new RegExp(`Cannot read SSH host key ${keyFile}: .*no new key is made`));
    assert(!/ssh: listening/.test(k.log), k.log);
    assertEquals([...Deno.readDirSync(`${state}/ssh`)].map((e) => e.name), [
      "ssh_host_ed25519_key",
    ]);
    assert((await Deno.stat(keyFile)).isDirectory);
  } finally {
    await k.stop();
    await Deno.remove(work, { recursive: true }).catch(() => {});
  }
});

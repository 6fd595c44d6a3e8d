/**
 * `sshd --wait-go` (how kattach starts it, kattach/services.ts startSshdService): the process starts
 * at once but reads no state and does not listen until kattach writes `go` on its stdin (the
 * firewall is in, the state directory mounted); EOF before that ends it. Real processes, a real
 * TCP port on loopback.
 */
import assert from "node:assert/strict";
import { REPO_ROOT } from "./_harness.ts";
import { exitOrKill } from "./_harness.ts";
import { freePort, waitFor } from "./_util.ts";

const START_MS = 120_000; // a Deno start on a loaded machine

/** Starts sshd_main.ts --supervised --wait-go; its stderr lines collect in `lines`. */
function startSshd(state: string, port: number) {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      ...["run", "-A", `${REPO_ROOT}/sshd_main.ts`, "--supervised", "--wait-go"],
      ...["--state", state, "--port", String(port), "--listen", "127.0.0.1"],
    ],
    stdin: "piped",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const lines: string[] = [];
  const pump = (async () => {
    let rest = "";
    for await (const text of child.stderr.pipeThrough(new TextDecoderStream())) {
      const parts = (rest + text).split("\n");
      rest = parts.pop()!;
      lines.push(...parts);
    }
  })();
  return { child, lines, pump };
}

async function connects(port: number): Promise<string | null> {
  try {
    const c = await Deno.connect({ hostname: "127.0.0.1", port });
    try {
      const buf = new Uint8Array(64);
      const n = await c.read(buf);
      return n === null ? "" : new TextDecoder().decode(buf.subarray(0, n));
    } finally {
      c.close();
    }
  } catch (err) {
    if (err instanceof Deno.errors.ConnectionRefused) return null;
    throw err;
  }
}

Deno.test("sshd --wait-go: no host keys read, no port open before `go`; then the banner", async () => {
  const state = await Deno.makeTempDir({ prefix: "kaos-sshd-go-" });
  const port = freePort();
  const { child, lines, pump } = startSshd(state, port);
  try {
    await waitFor(
      () => lines.some((l) => /waiting for kattach's go/.test(l)),
      () => `the sshd's "waiting for kattach's go" line; it said:\n${lines.join("\n")}`,
      {
        timeoutMs: START_MS,
      },
    );
    // It waits in a read of its stdin, which nobody wrote: nothing of the state, no listener.
    assert.equal(await Deno.stat(`${state}/ssh`).then(() => true, () => false), false);
    assert.equal(await connects(port), null, "port open before go");
    const writer = child.stdin.getWriter();
    await writer.write(new TextEncoder().encode("go\n"));
    await waitFor(
      () => lines.some((l) => l.startsWith(`ssh: listening on 127.0.0.1:${port}`)),
      () => `the sshd's listening line after go; it said:\n${lines.join("\n")}`,
      { timeoutMs: START_MS },
    );
    assert.match((await connects(port)) ?? "refused", /^SSH-2\.0-/);
    assert.equal((await Deno.stat(`${state}/ssh/ssh_host_ed25519_key`)).isFile, true);
    await writer.close(); // EOF: kattach went away
    await exitOrKill(child, "the sshd ending at EOF on stdin");
    assert.equal((await child.status).code, 0);
    await pump;
    assert(lines.some((l) => /kattach went away: stopping/.test(l)), lines.join("\n"));
  } finally {
    try {
      child.kill("SIGKILL");
    } catch { /* ended */ }
    await Deno.remove(state, { recursive: true });
  }
});

Deno.test("sshd --wait-go: EOF before `go` ends it with nothing read or opened", async () => {
  const state = await Deno.makeTempDir({ prefix: "kaos-sshd-go-" });
  const port = freePort();
  const { child, lines, pump } = startSshd(state, port);
  try {
    await waitFor(
      () => lines.some((l) => /waiting for kattach's go/.test(l)),
      () => `the sshd's "waiting for kattach's go" line; it said:\n${lines.join("\n")}`,
      {
        timeoutMs: START_MS,
      },
    );
    await child.stdin.close();
    await exitOrKill(child, "the sshd ending at EOF before go");
    assert.equal((await child.status).code, 0);
    await pump;
    assert(lines.some((l) => /kattach went away: stopping/.test(l)), lines.join("\n"));
    assert(!lines.some((l) => /listening/.test(l)), lines.join("\n"));
    assert.equal(await Deno.stat(`${state}/ssh`).then(() => true, () => false), false);
  } finally {
    try {
      child.kill("SIGKILL");
    } catch { /* ended */ }
    await Deno.remove(state, { recursive: true });
  }
});

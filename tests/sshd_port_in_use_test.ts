/**
 * The sshd (`sshd_main.ts`, what the appliance bundles, and `main.ts sshd` alike: cli/sshd.ts)
 * on a port another process holds: one clear line on stderr, no stack trace, and its own exit
 * status, so kattach's supervisor logs one line per retry. Real processes, loopback.
 */
import assert from "node:assert/strict";
import { SSHD_EXIT_PORT_IN_USE } from "../cli/sshd.ts";
import { REPO_ROOT } from "./_harness.ts";

Deno.test("sshd: a port in use is one clear line and its own exit status", async () => {
  const state = await Deno.makeTempDir({ prefix: "kaos-sshd-inuse-" });
  const holder = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (holder.addr as Deno.NetAddr).port;
  try {
    const r = await new Deno.Command(Deno.execPath(), {
      args: [
        ...["run", "-A", `${REPO_ROOT}/sshd_main.ts`],
        ...["--state", state, "--port", String(port), "--listen", "127.0.0.1"],
      ],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1" },
    }).output();
    const err = new TextDecoder().decode(r.stderr);
    assert.equal(r.code, SSHD_EXIT_PORT_IN_USE, err);
    assert.notEqual(SSHD_EXIT_PORT_IN_USE, 1); // not the status of an uncaught error
    const lines = err.trim().split("\n").filter((l) => !/^(Download|Check|Warning)\b/.test(l));
    assert.deepEqual(lines, [
      `ssh: port ${port} on 127.0.0.1 is in use: another process listens there; free it or ` +
      "choose another port",
    ]);
  } finally {
    holder.close();
    await Deno.remove(state, { recursive: true }).catch(() => {});
  }
});

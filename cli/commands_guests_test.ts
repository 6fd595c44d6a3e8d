/**
 * `instance start|restart --wait` over a real unix socket with the real IPC server: an instance
 * that comes back running exits 0; one that did not become ready (readiness failed, the restart
 * policy is starting it again) exits 1 and says why. The dispatch is a small fake standing for
 * kattach's answer.
 */
import assert from "node:assert/strict";
import { IpcClient } from "../ipc/client.ts";
import { type Dispatch, serveIpc } from "../ipc/server.ts";
import { commands } from "./commands.ts";
import { EXIT } from "./oneline.ts";
import { INSTANCE_BASE, runLine } from "./oneline_test_util.ts";

const base = INSTANCE_BASE;

Deno.test("instance start|restart --wait: exit 1 and the reason when not ready", async () => {
  const dir = await Deno.makeTempDir({ prefix: "kaos-cli-guests-" });
  let answer: Record<string, unknown> = {};
  const dispatch: Dispatch = (action) => {
    if (action !== "instance.start" && action !== "instance.restart") {
      throw new Error(`unexpected ${action}`);
    }
    return Promise.resolve(answer);
  };
  const server = await serveIpc({ runDir: `${dir}/run`, dispatch, log: () => {} });
  const run = (words: string[]) => runLine(words, () => IpcClient.connect(`${dir}/run`));
  try {
    const lastExit =
      "not ready: web: not ready after 120 s of its CPU time (15 min); restarting in 1 s (on-failure)";
    answer = { ...base, state: "starting", lastExit };
    for (const verb of ["start", "restart"]) {
      const r = await run(["instance", verb, "web-1", "--wait"]);
      assert.equal(r.code, EXIT.failed, `${verb}: ${r.out}${r.err}`);
      assert.equal(
        r.err,
        `Error: web-1 did not become ready (it is starting; last exit: ${lastExit}); ` +
          "see `instance show web-1`\n",
      );
      // Without --wait a start that is under way is what was asked for.
      const plain = await run(["instance", verb, "web-1"]);
      assert.equal(plain.code, EXIT.ok, plain.err);
      assert.equal(plain.err, "");
    }
    answer = { ...base, state: "running", pid: 42 };
    const ok = await run(["instance", "restart", "web-1", "--wait"]);
    assert.equal(ok.code, EXIT.ok, ok.err);
    assert.equal(ok.err, "");
  } finally {
    await server.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("instance console: no --json offered; given, a usage error before kattach is asked", async () => {
  const help = await runLine(["instance", "console", "--help"]);
  assert.equal(help.code, EXIT.ok);
  assert.match(help.out, /^ {2}instance console NAME$/m);
  assert.doesNotMatch(help.out, /--json/);
  const stats = await runLine(["instance", "stats", "--help"]);
  assert.match(stats.out, /^ {2}instance stats NAME \[--json\]$/m); // one that has JSON keeps it
  const json = await runLine(["instance", "console", "web-1", "--json"]);
  assert.equal(json.code, EXIT.usage);
  assert.equal(
    json.err,
    "Error: instance console has no JSON output (it takes over the terminal)\n" +
      "Usage: instance console NAME\n",
  );
  assert.equal(json.out, "");
});

Deno.test("instance stats: each NIC's traffic as the guest sees it; a user-mode NIC not counted", () => {
  const stats = commands.find((c) => c.path.join(" ") === "instance stats")!;
  const text = stats.render({
    instance: "web-1",
    pid: 42,
    status: "running",
    cpuSeconds: 1.5,
    rssBytes: 1 << 20,
    memoryBytes: 256 << 20,
    uptimeSeconds: 3,
    blocks: [],
    net: [
      {
        index: 0,
        vlan: 10,
        mode: "tap",
        tap: "kt0a4b53000001",
        counters: { rxBytes: 5000, rxPackets: 40, txBytes: 1000, txPackets: 10 },
        why: null,
      },
      {
        index: 1,
        vlan: null,
        mode: "user",
        tap: null,
        counters: null,
        why: "not counted (user-mode network)",
      },
    ],
    guest: null,
  });
  assert.match(text, /^Network \(as the guest sees it\):\n {2}NIC +VLAN +TAP +RECEIVED +PACKETS/m);
  assert.match(text, /^ {2}net0 +10 +kt0a4b53000001 +4\.9 KiB +40 +1000 B +10$/m);
  assert.match(text, /^ {2}net1: not counted \(user-mode network\)$/m);
  assert.doesNotMatch(text, /net1 .*\b0\b/);
});

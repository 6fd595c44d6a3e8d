/**
 * Commit-confirmed on a real kattach: kattach runs bridged inside a network namespace this test
 * creates, its sshd on port 1289 there; an "operator" in another test namespace reaches it over
 * a veth uplink with the real OpenSSH client. A lockout is rolled back by the timer, a change is
 * confirmed from a new SSH connection, and a lockout left pending when kattach is killed is
 * rolled back when it starts again.
 */
import { deepStrictEqual as assertEquals, ok } from "node:assert/strict";
import { TestKattach } from "./_harness.ts";
import { sshKeyOpts } from "./_ssh.ts";
import { run, waitFor } from "./_util.ts";

const tag = `${Deno.pid % 100000}${Math.floor(Math.random() * 1000)}`;
const HOST = `fkh${tag}`;
const OPERATOR = `fko${tag}`;
const inNs = (ns: string, ...argv: string[]) => ["ip", "netns", "exec", ns, ...argv];

async function sh(argv: string[]): Promise<string> {
  const r = await run(argv, { timeoutMs: 20_000 });
  if (r.code !== 0) throw new Error(`${argv.join(" ")} exited ${r.code}: ${r.stderr.trim()}`);
  return r.stdout;
}

Deno.test({
  name:
    "commit-confirmed: lockouts roll back (timer, kattach killed), confirm from a new connection",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    const dir = await Deno.makeTempDir({ prefix: "kaos-fw-kattach-" });
    let k: TestKattach | undefined;
    try {
      for (const ns of [HOST, OPERATOR]) await sh(["ip", "netns", "add", ns]);
      await sh(inNs(HOST, "ip", "link", "set", "lo", "up"));
      await sh(
        inNs(
          HOST,
          "ip",
          "link",
          "add",
          "up0",
          "type",
          "veth",
          "peer",
          "name",
          "eth0",
          "netns",
          OPERATOR,
        ),
      );
      await sh(inNs(HOST, "ip", "addr", "add", "192.0.2.1/24", "dev", "up0"));
      await sh(inNs(HOST, "ip", "link", "set", "up0", "up"));
      await sh(inNs(OPERATOR, "ip", "addr", "add", "192.0.2.2/24", "dev", "eth0"));
      await sh(inNs(OPERATOR, "ip", "link", "set", "eth0", "up"));
      const key = `${dir}/id_ed25519`;
      await sh(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key]);

      const state = `${dir}/state`;
      const options = { wrap: inNs(HOST), sshPort: 1289, network: "bridged" as const };
      k = await TestKattach.start(state, options);
      await k.json("network", "set", "--uplink", "up0");
      await k.json("system", "ssh-key", "add", (await Deno.readTextFile(`${key}.pub`)).trim());
      /** One SSH connection from the operator's namespace running a one-line command. */
      const ssh = (...words: string[]) =>
        run(
          inNs(
            OPERATOR,
            "ssh",
            ...sshKeyOpts(key, { connectTimeoutS: 3 }),
            "-p",
            "1289",
            "aqcli@192.0.2.1",
            ...words,
          ),
          { timeoutMs: 15_000 },
        );
      const reachable = async () => (await ssh("firewall", "mgmt", "list")).code === 0;
      await waitFor(reachable, () => `sshd on 192.0.2.1:1289 from ${OPERATOR}:\n${k!.log}`);
      const status = () =>
        k!.json<{ current: { id: number; state: string } }>("firewall", "status");

      await t.step(
        "bad input is refused and changes nothing; status warns while 1289 is open",
        async () => {
          const gen = (await status()).current.id;
          const usage = await k!.aq(
            "firewall",
            "rule",
            "add",
            "--chain",
            "sideways",
            "--action",
            "drop",
          );
          assertEquals(usage.code, 2, usage.stderr);
          ok(usage.stderr.includes("--chain takes input or forward, not"), usage.stderr);
          const bad = await k!.aq("firewall", "mgmt", "add", "10.0.0.1/8");
          assertEquals(bad.code, 1, bad.stderr);
          ok(bad.stderr.includes("did you mean 10.0.0.0/8?"), bad.stderr);
          const gone = await k!.aq("firewall", "forward", "add", "web-1", "80");
          assertEquals(gone.code, 1, gone.stderr);
          assertEquals((await status()).current.id, gen);
          const sys = await k!.aq("system", "status");
          ok(
            sys.stdout.includes("Warning: TCP 1289 (the AppQueue CLI) is open to any source"),
            sys.stdout,
          );
        },
      );

      await t.step("a lockout is rolled back when nobody confirms", async () => {
        const r = await k!.json<{ applied: { generation: { state: string } } }>(
          "firewall",
          "mgmt",
          "add",
          "198.51.100.0/24",
          "--confirm-within",
          "20", // long enough for a loaded machine to see the lockout first
        );
        assertEquals(r.applied.generation.state, "pending");
        ok(!await reachable(), "a source outside 198.51.100.0/24 still got in");
        await waitFor(reachable, () => `the rollback to let ${OPERATOR} in again:\n${k!.log}`, {
          timeoutMs: 90_000,
        });
        assertEquals(await k!.json("firewall", "mgmt", "list"), []);
        assertEquals((await status()).current.state, "confirmed");
        ok(k!.log.includes("rolled back (not confirmed in time)"), k!.log);
      });

      await t.step("a change confirmed from a new SSH connection stays", async () => {
        await k!.json("firewall", "mgmt", "add", "192.0.2.2/32");
        const confirmed = await ssh("firewall", "confirm");
        assertEquals(confirmed.code, 0, confirmed.stderr);
        ok(/Confirmed generation \d+/.test(confirmed.stdout), confirmed.stdout);
        assertEquals((await status()).current.state, "confirmed");
        const shown = await k!.aq("firewall", "show");
        ok(shown.stdout.includes("tcp dport 1289 ip saddr @mgmt"), shown.stdout);
        ok(shown.stdout.includes("192.0.2.2"), shown.stdout);
      });

      await t.step(
        "a lockout pending when kattach is killed is rolled back at its next start",
        async () => {
          await k!.json(
            "firewall",
            "rule",
            "add",
            "--chain",
            "input",
            "--action",
            "drop",
            "--proto",
            "tcp",
            "--port",
            "1289",
            "--from",
            "192.0.2.0/24",
            "--note",
            "lock me out",
          );
          assertEquals((await status()).current.state, "pending");
          ok(!await reachable(), "the drop rule let the operator in");
          await k!.stop("SIGKILL");
          const rules = await sh(inNs(HOST, "nft", "list", "chain", "inet", "kaos", "user_input"));
          ok(
            rules.includes("lock me out"),
            "the pending ruleset stays in the kernel while kattach is down",
          );
          await k!.restart();
          await waitFor(reachable, () => `the operator let in again after the restart:\n${k!.log}`);
          assertEquals(await k!.json("firewall", "rule", "list"), []);
          assertEquals((await status()).current.state, "confirmed");
        },
      );
    } finally {
      await k?.stop("SIGKILL");
      for (const ns of [HOST, OPERATOR]) await run(["ip", "netns", "del", ns]);
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  },
});

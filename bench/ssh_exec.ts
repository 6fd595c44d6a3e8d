/**
 * One-line command over SSH (issue 13): `ssh -p PORT aqcli@127.0.0.1 system status --json` with
 * key authentication against KaOS' sshd (a hosted kattach), next to the same OpenSSH client
 * against OpenSSH's sshd running `true` (started by the bench on a loopback port with a
 * throw-away config and host key; needs the openssh-server package; its own service need not run). Runs alternate;
 * prints medians and the ratio beside the 1.2× goal. Prints figures only.
 *
 *   scripts/deno run -A bench/ssh_exec.ts [--rounds R]
 */
import { parseCliOrExit } from "../lib/cli_args.ts";
import { kattachArgv } from "../lib/hosted_kattach.ts";
import { connectKattach, freePort, listening, stopChildren, waitUntil } from "./_util.ts";

const USAGE = "usage: bench/ssh_exec.ts [--rounds R (1-500, default 30)]";
const cli = parseCliOrExit(Deno.args, { usage: USAGE, options: { rounds: { type: "string" } } });
const ROUNDS = Number(cli.values.rounds ?? 30);
if (!Number.isInteger(ROUNDS) || ROUNDS < 1 || ROUNDS > 500) {
  console.error(`Error: bad rounds\n${USAGE}`);
  Deno.exit(2);
}
const SSHD = ["/usr/sbin/sshd", "/usr/bin/sshd"].find((p) => {
  try {
    return Deno.statSync(p).isFile;
  } catch {
    return false;
  }
});
if (!SSHD) {
  console.error(
    "Error: OpenSSH's sshd is not installed\nHint: apt-get install openssh-server (the bench starts its own sshd; the service need not run)",
  );
  Deno.exit(1);
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

async function run(cmd: string, args: string[]): Promise<string> {
  const out = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
  if (!out.success) {
    throw new Error(`${cmd} ${args.join(" ")}: ${new TextDecoder().decode(out.stderr)}`);
  }
  return new TextDecoder().decode(out.stdout);
}

const dir = await Deno.makeTempDir({ prefix: "kaos-bench-ssh-" });
const children: Deno.ChildProcess[] = [];
try {
  await run("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "bench", "-f", `${dir}/key`]);
  await run("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", `${dir}/host_key`]);
  const pub = (await Deno.readTextFile(`${dir}/key.pub`)).trim();
  await Deno.writeTextFile(`${dir}/authorized_keys`, `${pub}\n`, { mode: 0o600 });

  // KaOS: a hosted kattach with its sshd; the key added through IPC.
  const kaosPort = freePort();
  const state = `${dir}/state`;
  children.push(
    new Deno.Command(Deno.execPath(), {
      args: kattachArgv({ state, sshPort: kaosPort, denoOptions: [] }).slice(1),
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn(),
  );
  const c = await connectKattach(state, 120_000);
  await c.call("auth.keys.add", { key: pub });
  c.close();
  await waitUntil("KaOS' sshd", 60_000, () => listening(kaosPort));

  // OpenSSH: its own sshd on a loopback port, a throw-away config, this user, key only.
  const osshPort = freePort();
  await Deno.mkdir("/run/sshd", { recursive: true, mode: 0o755 }).catch(() => {});
  const user = (await run("id", ["-un"])).trim();
  await Deno.writeTextFile(
    `${dir}/sshd_config`,
    [
      `Port ${osshPort}`,
      "ListenAddress 127.0.0.1",
      `HostKey ${dir}/host_key`,
      `PidFile ${dir}/sshd.pid`,
      `AuthorizedKeysFile ${dir}/authorized_keys`,
      "PasswordAuthentication no",
      "KbdInteractiveAuthentication no",
      "PubkeyAuthentication yes",
      "PermitRootLogin prohibit-password",
      "StrictModes no",
      "UsePAM no",
      "UseDNS no",
      `AllowUsers ${user}`,
      "",
    ].join("\n"),
  );
  children.push(
    new Deno.Command(SSHD, {
      args: ["-D", "-e", "-f", `${dir}/sshd_config`],
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn(),
  );
  await waitUntil("OpenSSH's sshd", 30_000, () => listening(osshPort));

  const opts = [
    ...["-F", "/dev/null", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null"],
    ...["-o", "LogLevel=ERROR", "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes"],
    ...["-o", "PreferredAuthentications=publickey", "-i", `${dir}/key`],
  ];
  const kaos = [...opts, "-p", String(kaosPort), "aqcli@127.0.0.1", "system", "status", "--json"];
  const openssh = [...opts, "-p", String(osshPort), `${user}@127.0.0.1`, "true"];
  const once = async (args: string[]) => {
    const t0 = performance.now();
    await run("ssh", args);
    return performance.now() - t0;
  };
  JSON.parse(await run("ssh", kaos)); // a real answer, and both warmed up
  await run("ssh", openssh);
  const load0 = Deno.readTextFileSync("/proc/loadavg").split(" ").slice(0, 3).join(" ");
  const k: number[] = [];
  const o: number[] = [];
  for (let i = 0; i < ROUNDS; i++) {
    k.push(await once(kaos));
    o.push(await once(openssh));
  }
  const load1 = Deno.readTextFileSync("/proc/loadavg").split(" ").slice(0, 3).join(" ");
  const mk = median(k);
  const mo = median(o);
  console.log(
    `bench/ssh_exec: ${ROUNDS} rounds, alternating; load ${load0} → ${load1}; ${navigator.hardwareConcurrency} cores`,
  );
  console.log(
    `KaOS sshd, system status --json:  median ${mk.toFixed(0)} ms (min ${
      Math.min(...k).toFixed(0)
    })`,
  );
  console.log(
    `OpenSSH sshd, true (baseline):    median ${mo.toFixed(0)} ms (min ${
      Math.min(...o).toFixed(0)
    })`,
  );
  console.log(`ratio ${(mk / mo).toFixed(2)}× (goal ≤ 1.2×)`);
} finally {
  await stopChildren(children);
  await Deno.remove(dir, { recursive: true }).catch(() => {});
}

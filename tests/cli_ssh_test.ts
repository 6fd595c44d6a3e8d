/**
 * End-to-end tests of the AppQueue CLI over SSH: a real hosted kattach starts its supervised
 * sshd (`--ssh-port`), and the real OpenSSH client (sshpass, ssh-keygen) logs in, in a real pty
 * (tmux) for the menus: the default password, the forced change, arrow-key navigation, a VLAN
 * and a configuration group made through the menus; exec mode with --json and exit codes; wrong
 * passwords, an unknown user, forwarding refused, key logins, and the sshd respawned when killed.
 */
import {
  deepStrictEqual as assertEquals,
  doesNotMatch as assertNotMatch,
  match as assertMatch,
  ok as assert,
} from "node:assert/strict";
import { REPO_ROOT, TestKattach } from "./_harness.ts";

const DEFAULT_PASSWORD = "kaos-0.1.0-dev";
const NEW_PASSWORD = "Tr1cky-new-pass";

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a command to completion. */
async function run(argv: string[], env: Record<string, string> = {}): Promise<Run> {
  const out = await new Deno.Command(argv[0], {
    args: argv.slice(1),
    env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/** Polls until `check` holds; fails with `describe()` after a generous deadline. */
async function waitFor(
  check: () => boolean | Promise<boolean>,
  describe: () => string | Promise<string>,
  limitMs = 30_000,
): Promise<void> {
  const deadline = Date.now() + limitMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`gave up waiting: ${await describe()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

/** A hosted kattach with its supervised sshd on a free port. */
class Kattach {
  readonly state: string;
  readonly port = freePort();
  readonly aq: TestKattach;
  #child: Deno.ChildProcess;
  #log: string[] = [];
  #pumps: Promise<void>;

  constructor(state: string) {
    this.state = state;
    this.aq = new TestKattach(state);
    this.#child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        `${REPO_ROOT}/main.ts`,
        "kattach",
        "--hosted",
        "--state",
        state,
        "--ssh-port",
        String(this.port),
      ],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const pump = async (s: ReadableStream<Uint8Array>) => {
      for await (const t of s.pipeThrough(new TextDecoderStream())) this.#log.push(t);
    };
    this.#pumps = Promise.all([pump(this.#child.stdout), pump(this.#child.stderr)]).then(() => {});
  }

  get log(): string {
    return this.#log.join("");
  }

  /** Pids of the sshd children kattach has started, in order. */
  sshdPids(): number[] {
    return [...this.log.matchAll(/sshd: started \(pid (\d+)\)/g)].map((m) => Number(m[1]));
  }

  async ready(listening = 1): Promise<void> {
    await waitFor(
      () => (this.log.match(/ssh: listening on 127\.0\.0\.1:\d+/g) ?? []).length >= listening,
      () => `sshd listening; log:\n${this.log}`,
    );
  }

  async stop(signal: Deno.Signal = "SIGTERM"): Promise<void> {
    try {
      this.#child.kill(signal);
    } catch { /* gone */ }
    await this.#child.status;
    await this.#pumps;
  }
}

const COMMON = [
  "-F",
  "/dev/null",
  "-o",
  "StrictHostKeyChecking=no",
  "-o",
  "UserKnownHostsFile=/dev/null",
  "-o",
  "LogLevel=ERROR",
  "-o",
  "ConnectTimeout=20",
];
const PASSWORD_OPTS = [
  ...COMMON,
  "-o",
  "PubkeyAuthentication=no",
  "-o",
  "PreferredAuthentications=password",
  "-o",
  "NumberOfPasswordPrompts=1",
];

function sshPw(k: Kattach, password: string, args: string[], user = "aqcli") {
  return run(
    ["sshpass", "-e", "ssh", ...PASSWORD_OPTS, "-p", String(k.port), `${user}@127.0.0.1`, ...args],
    { SSHPASS: password },
  );
}

/** A tmux server of our own running one command in a 110x40 window. */
class Tmux {
  readonly socket = `kaos_cli_ssh_${Deno.pid}_${Math.random().toString(36).slice(2)}`;

  async start(script: string): Promise<void> {
    const r = await run([
      "tmux",
      "-L",
      this.socket,
      "-f",
      "/dev/null",
      "new-session",
      "-d",
      "-x",
      "110",
      "-y",
      "40",
      "-s",
      "t",
      `sh ${script}; echo "[ssh exited $?]"; sleep 60`,
    ]);
    assertEquals(r.code, 0, r.stderr);
  }

  async screen(): Promise<string> {
    return (await run(["tmux", "-L", this.socket, "capture-pane", "-p", "-t", "t"])).stdout;
  }

  async keys(...keys: string[]): Promise<void> {
    const r = await run(["tmux", "-L", this.socket, "send-keys", "-t", "t", ...keys]);
    assertEquals(r.code, 0, r.stderr);
  }

  async type(text: string): Promise<void> {
    if (text) await this.keys("-l", text);
    await this.keys("Enter");
  }

  async waitFor(text: string | RegExp): Promise<string> {
    let screen = "";
    await waitFor(async () => {
      screen = await this.screen();
      return typeof text === "string" ? screen.includes(text) : text.test(screen);
    }, () => `${text} on screen:\n${screen}`);
    return screen;
  }

  /** The highlighted entry of the select on screen. */
  async active(): Promise<string> {
    const line = (await this.screen()).split("\n").findLast((l) => l.includes("❯"));
    return line ? line.slice(line.indexOf("❯") + 1).trim() : "";
  }

  /** Moves the cursor with the arrow keys to the entry starting with `label`; presses Enter. */
  async choose(label: string): Promise<void> {
    await this.waitFor("❯");
    for (let i = 0, last = ""; i < 40 && !(await this.active()).startsWith(label); i++) {
      last = await this.active();
      await this.keys("Up");
      await this.#settle(last);
      if ((await this.active()) === last) break;
    }
    for (let i = 0; i < 40; i++) {
      const now = await this.active();
      if (now.startsWith(label)) {
        await this.keys("Enter");
        return;
      }
      await this.keys("Down");
      await this.#settle(now);
    }
    throw new Error(`no entry ${label} on screen:\n${await this.screen()}`);
  }

  async #settle(previous: string): Promise<void> {
    for (let i = 0; i < 10 && (await this.active()) === previous; i++) {
      await new Promise((r) => setTimeout(r, 30));
    }
  }

  async stop(): Promise<void> {
    await run(["tmux", "-L", this.socket, "kill-server"]);
  }
}

const fixtures = `${REPO_ROOT}/fixtures/out`;

Deno.test("the AppQueue CLI over SSH against a real kattach", async (t) => {
  const built = await run([`${REPO_ROOT}/fixtures/build-modules`]);
  assertEquals(built.code, 0, built.stderr);
  const work = await Deno.makeTempDir({ prefix: "kaos_cli_ssh_" });
  const k = new Kattach(`${work}/state`);
  try {
    await k.ready();
    for (const m of ["vkaos", "web"]) {
      const r = await k.aq.aq("module", "import", `${fixtures}/${m}`);
      assertEquals(r.code, 0, r.stderr);
    }

    await t.step("exec is refused until the default password is changed", async () => {
      const r = await sshPw(k, DEFAULT_PASSWORD, ["vlan", "list"]);
      assertEquals(r.code, 1);
      assertMatch(r.stderr, /the default password must be changed first/);
    });

    await t.step("wrong passwords and an unknown user are refused and logged", async () => {
      const wrong = await sshPw(k, "not-the-password", ["vlan", "list"]);
      assert(wrong.code !== 0);
      assertMatch(wrong.stderr, /Permission denied/);
      const stranger = await sshPw(k, DEFAULT_PASSWORD, ["vlan", "list"], "root");
      assert(stranger.code !== 0);
      assertMatch(stranger.stderr, /Permission denied/);
      await waitFor(
        () =>
          k.log.includes('auth failed user="root"') && k.log.includes('auth failed user="aqcli"'),
        () => k.log,
      );
      assertNotMatch(k.log, /not-the-password/);
    });

    await t.step("menus in a real pty: forced change, a VLAN and a config group", async () => {
      const script = `${work}/login.sh`;
      const ssh = ["ssh", ...PASSWORD_OPTS, "-t", "-p", String(k.port), "aqcli@127.0.0.1"];
      await Deno.writeTextFile(
        script,
        `SSHPASS=${DEFAULT_PASSWORD} exec sshpass -e ${ssh.join(" ")}\n`,
      );
      const tmux = new Tmux();
      try {
        await tmux.start(script);
        await tmux.waitFor("New password");
        await tmux.type(DEFAULT_PASSWORD); // the policy refuses the default itself
        await tmux.waitFor("Retype new password");
        await tmux.type(DEFAULT_PASSWORD);
        await tmux.waitFor(/default password[\s\S]*Hint: [\s\S]*New password/);
        await tmux.type("short");
        await tmux.waitFor(/Retype new password[\s\S]*Retype new password|short.*\n.*Retype/);
        await tmux.type("short");
        await tmux.waitFor("shorter than 8 characters");
        await tmux.type(NEW_PASSWORD);
        await tmux.waitFor(/shorter than 8 characters[\s\S]*Retype new password/);
        await tmux.type(NEW_PASSWORD);
        await tmux.waitFor("Password changed.");
        await tmux.waitFor(/KaOS .* AppQueue CLI/);

        await tmux.choose("Networking");
        await tmux.choose("vlan add");
        await tmux.waitFor("? ID");
        await tmux.type("10");
        await tmux.waitFor("? NAME");
        await tmux.type("web");
        await tmux.waitFor("? CIDR");
        await tmux.type("10.0.10.0/24");
        await tmux.waitFor("--gateway");
        await tmux.type("");
        await tmux.waitFor("--pool");
        await tmux.type("");
        let screen = await tmux.waitFor("Added VLAN 10.");
        assertMatch(screen, /= vlan add 10 web 10\.0\.10\.0\/24/);

        await tmux.keys("C-c"); // back to the top
        await tmux.waitFor("Log out");
        await tmux.choose("Configuration Groups");
        await tmux.choose("config-group add");
        await tmux.waitFor("module (MODULE)");
        await tmux.choose("web");
        await tmux.waitFor("? NAME");
        await tmux.type("site");
        await tmux.waitFor("title");
        await tmux.type(""); // keep the default
        await tmux.waitFor("port");
        await tmux.type("8080");
        await tmux.waitFor("greeting");
        await tmux.choose("welcome");
        screen = await tmux.waitFor("Added configuration group site.");
        assertMatch(screen, /= config-group add web site port=8080 greeting=welcome/);
        assertNotMatch(screen, new RegExp(NEW_PASSWORD));

        await tmux.keys("C-c");
        await tmux.waitFor("Log out");
        await tmux.choose("Log out");
        await tmux.waitFor("[ssh exited 0]");
      } finally {
        await tmux.stop();
      }
    });

    await t.step("exec mode: --json, exit codes and stderr as aq", async () => {
      const vlans = await sshPw(k, NEW_PASSWORD, ["vlan", "list", "--json"]);
      assertEquals(vlans.code, 0, vlans.stderr);
      const list = JSON.parse(vlans.stdout) as { id: number; name: string; cidr: string }[];
      assertEquals(list.map((v) => [v.id, v.name, v.cidr]), [[10, "web", "10.0.10.0/24"]]);
      const group = await sshPw(k, NEW_PASSWORD, ["config-group", "show", "site", "--json"]);
      assertEquals(group.code, 0, group.stderr);
      const g = JSON.parse(group.stdout) as { module: string; values: Record<string, unknown> };
      assertEquals(g.module, "web");
      assertEquals(String(g.values.port), "8080");
      assertEquals(g.values.greeting, "welcome");
      // The same answers as aq, byte for byte.
      const local = await k.aq.aq("vlan", "list", "--json");
      assertEquals(vlans.stdout, local.stdout);
      const missing = await sshPw(k, NEW_PASSWORD, ["vlan", "show", "99"]);
      const missingLocal = await k.aq.aq("vlan", "show", "99");
      assertEquals([missing.code, missing.stderr], [missingLocal.code, missingLocal.stderr]);
      assertEquals(missing.code, 1);
      const usage = await sshPw(k, NEW_PASSWORD, ["vlan", "frob"]);
      assertEquals(usage.code, 2);
      assertMatch(usage.stderr, /Error: /);
      const quoted = await sshPw(k, NEW_PASSWORD, [
        "vlan",
        "reserve",
        "10",
        "10.0.10.7",
        "--note",
        "'the printer'",
      ]);
      assertEquals(quoted.code, 0, quoted.stderr);
      assertMatch(quoted.stdout, /10\.0\.10\.7 \(the printer\)/);
      const old = await sshPw(k, DEFAULT_PASSWORD, ["vlan", "list"]);
      assertMatch(old.stderr, /Permission denied/);
      const policy = await sshPw(k, NEW_PASSWORD, ["system", "password"]);
      assertEquals(policy.code, 2);
      assertMatch(policy.stderr, /interactive/);
      const reboot = await sshPw(k, NEW_PASSWORD, ["system", "reboot"]);
      assertEquals(reboot.code, 1);
      assertMatch(reboot.stderr, /not available in hosted mode/);
    });

    await t.step("SSH keys added with a one-line command log in", async () => {
      const key = `${work}/id_test`;
      const gen = await run([
        "ssh-keygen",
        "-q",
        "-t",
        "ed25519",
        "-N",
        "",
        "-C",
        "tester",
        "-f",
        key,
      ]);
      assertEquals(gen.code, 0, gen.stderr);
      const pub = (await Deno.readTextFile(`${key}.pub`)).trim();
      const keyLogin = () =>
        run([
          "ssh",
          ...COMMON,
          "-o",
          "BatchMode=yes",
          "-o",
          "IdentitiesOnly=yes",
          "-o",
          "PreferredAuthentications=publickey",
          "-i",
          key,
          "-p",
          String(k.port),
          "aqcli@127.0.0.1",
          "system",
          "ssh-key",
          "list",
        ]);
      assert((await keyLogin()).code !== 0);
      const added = await sshPw(k, NEW_PASSWORD, ["system", "ssh-key", "add", `'${pub}'`]);
      assertEquals(added.code, 0, added.stderr);
      const bad = await sshPw(k, NEW_PASSWORD, [
        "system",
        "ssh-key",
        "add",
        "ssh-ed25519",
        "AAAAnope",
      ]);
      assertEquals(bad.code, 1);
      assertMatch(bad.stderr, /Cannot add the SSH key[\s\S]*Hint: /);
      const listed = await keyLogin();
      assertEquals(listed.code, 0, listed.stderr);
      assertMatch(listed.stdout, /SHA256:\S+\s+ssh-ed25519\s+tester/);
      const del = await sshPw(k, NEW_PASSWORD, ["system", "ssh-key", "del", "tester"]);
      assertEquals(del.code, 0, del.stderr);
      assert((await keyLogin()).code !== 0);
    });

    await t.step("port forwarding is refused", async () => {
      const target = Deno.listen({ hostname: "127.0.0.1", port: 0 });
      try {
        const port = (target.addr as Deno.NetAddr).port;
        const w = await sshPw(k, NEW_PASSWORD, ["-W", `127.0.0.1:${port}`]);
        assert(w.code !== 0);
        assertMatch(w.stderr, /administratively prohibited|open failed|stdio forwarding failed/);
        await waitFor(() => k.log.includes("refused port forwarding"), () => k.log);
      } finally {
        target.close();
      }
    });

    await t.step("kattach restarts the sshd when it is killed", async () => {
      const [first] = k.sshdPids();
      Deno.kill(first, "SIGKILL");
      await waitFor(() => k.sshdPids().length >= 2, () => k.log);
      await k.ready(2);
      assertMatch(k.log, /sshd: killed by SIGKILL; restarting in \d+ ms/);
      const r = await sshPw(k, NEW_PASSWORD, ["vlan", "list"]);
      assertEquals(r.code, 0, r.stderr);
      assertMatch(r.stdout, /10\s+web/);
    });

    await t.step("when kattach dies (SIGKILL), its sshd goes too", async () => {
      const pid = k.sshdPids().at(-1)!;
      await k.stop("SIGKILL");
      // Gone: no such process, or a zombie (exited, not yet reaped by whoever adopted it).
      const gone = async () => {
        const stat = await Deno.readTextFile(`/proc/${pid}/stat`).catch(() => "");
        return stat === "" || stat.slice(stat.lastIndexOf(")") + 2).startsWith("Z");
      };
      await waitFor(gone, () => `sshd ${pid} still running`);
    });
  } finally {
    await k.stop();
    await Deno.remove(work, { recursive: true }).catch(() => {});
  }
});

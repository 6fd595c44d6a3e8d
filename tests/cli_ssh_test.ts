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
import { DEFAULT_PASSWORD } from "../kattach/auth.ts";
import { FRONT_END_V8_FLAGS_OPTION } from "../lib/v8_flags.ts";
import { FIXTURES_OUT, REPO_ROOT } from "./_harness.ts";
import { KattachWithSshd, sshKeyOpts, sshPasswordOpts, sshPw, writeLoginScript } from "./_ssh.ts";
import { run, Tmux, waitFor, withDeadline } from "./_util.ts";

const NEW_PASSWORD = "Tr1cky-new-pass";

Deno.test("the AppQueue CLI over SSH against a real kattach", async (t) => {
  const built = await run([`${REPO_ROOT}/fixtures/build-modules`]);
  assertEquals(built.code, 0, built.stderr);
  const work = await Deno.makeTempDir({ prefix: "kaos_cli_ssh_" });
  const k = new KattachWithSshd(`${work}/state`);
  try {
    await k.ready();
    // The sshd runs with the front-ends' V8 flags (no TurboFan; lib/v8_flags.ts), as on the
    // appliance, not kattach's.
    const sshdArgv = Deno.readTextFileSync(`/proc/${k.sshdPids().at(-1)}/cmdline`).split("\0");
    assertEquals(sshdArgv.filter((a) => a.startsWith("--v8-flags=")), [FRONT_END_V8_FLAGS_OPTION]);
    for (const m of ["vkaos", "web"]) {
      const r = await k.aq.aq("module", "import", `${FIXTURES_OUT}/${m}`);
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
      const stranger = await sshPw(k, DEFAULT_PASSWORD, ["vlan", "list"], { user: "root" });
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
      await writeLoginScript(script, { port: k.port, password: DEFAULT_PASSWORD });
      const tmux = new Tmux({ name: "kaos_cli_ssh" });
      try {
        await tmux.start(script);
        await tmux.waitFor("New password");
        // kattach's policy answers right after the first entry, and the password is asked
        // again with the reason: no retype of a password it refuses.
        await tmux.type(DEFAULT_PASSWORD); // the policy refuses the default itself
        await tmux.waitFor(/default password\s+Hint: [^\n]*\s+\? New password/);
        await tmux.type("short");
        await tmux.waitFor(/shorter than 8 characters\s+Hint: [^\n]*\s+\? New password/);
        assertNotMatch(await tmux.screen(), /Retype new password/);
        await tmux.type(NEW_PASSWORD);
        await tmux.waitFor(/shorter than 8 characters[\s\S]*Retype new password/);
        await tmux.type(NEW_PASSWORD);
        await tmux.waitFor("Password changed.");
        await tmux.waitFor(/KaOS .* AppQueue CLI/);

        await tmux.choose("Networking");
        await tmux.choose("vlan ›"); // Networking holds vlan, network and firewall pages
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
        for (const flag of ["--uplink", "--nat", "--isolate"]) {
          await tmux.waitFor(`? ${flag}`);
          await tmux.choose("(leave out)");
        }
        let screen = await tmux.waitFor("Added VLAN 10.");
        assertMatch(screen, /= vlan add 10 web 10\.0\.10\.0\/24/);

        await tmux.keys("C-c"); // back to Networking
        await tmux.waitForSelect("Networking");
        await tmux.keys("C-c"); // back to the top
        await tmux.waitForSelect("KaOS");
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
        await tmux.waitForSelect("KaOS");
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
      // KEY=@-: the value comes from the session's stdin (values longer than an SSH command)
      const piped = await sshPw(
        k,
        NEW_PASSWORD,
        ["config-group", "set", "site", "title=@-", "--no-apply", "--json"],
        { stdin: "Typed into stdin\n" },
      );
      assertEquals(piped.code, 0, piped.stderr);
      assertEquals(JSON.parse(piped.stdout).values.title, "Typed into stdin");
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

    await t.step(
      "system log --follow: Ctrl+C in a pty ends it (130); its IPC connection goes",
      async () => {
        // The sshd's sockets (its IPC connections to kattach and the SSH connections) while idle.
        const sshd = k.sshdPids().at(-1)!;
        const sockets = () =>
          [...Deno.readDirSync(`/proc/${sshd}/fd`)].filter((e) => {
            try {
              return Deno.readLinkSync(`/proc/${sshd}/fd/${e.name}`).startsWith("socket:");
            } catch {
              return false; // closed meanwhile
            }
          }).length;
        const idle = sockets();
        const follow = (tty: string[]) => {
          const child = new Deno.Command("sshpass", {
            args: [
              "-e",
              "ssh",
              ...sshPasswordOpts(),
              ...tty,
              "-p",
              String(k.port),
              "aqcli@127.0.0.1",
            ]
              .concat(["system", "log", "--follow", "--lines", "1"]),
            env: { SSHPASS: NEW_PASSWORD },
            stdin: "piped",
            stdout: "piped",
            stderr: "null",
          }).spawn();
          let out = "";
          const read = (async () => {
            for await (const t of child.stdout.pipeThrough(new TextDecoderStream())) out += t;
          })();
          return { child, read, out: () => out };
        };
        // ssh -tt: the key goes through the pty as the byte 0x03, not as a signal to ssh.
        const tty = follow(["-tt"]);
        await waitFor(
          () => /sshd: /.test(tty.out()),
          () => `a log line from --follow; got ${tty.out()}`,
        );
        const writer = tty.child.stdin.getWriter();
        await writer.write(new Uint8Array([0x03]));
        const status = await withDeadline(tty.child.status, 30_000, "ssh -tt to end after Ctrl+C");
        await tty.read;
        await writer.close().catch(() => {});
        assertEquals(status.code, 130, tty.out());
        assertMatch(tty.out(), /\^C\r?\n/);
        await waitFor(
          () => sockets() === idle,
          () => `the sshd's sockets back to ${idle}: ${sockets()}`,
        );
        // Without a pty the client leaving (killed) ends the follow's IPC connection too.
        const plain = follow([]);
        await waitFor(() => /sshd: /.test(plain.out()), () => `a log line; got ${plain.out()}`);
        assert(sockets() > idle, "the follow holds an IPC connection and an SSH one");
        plain.child.kill("SIGKILL");
        await plain.child.status;
        await plain.read;
        await waitFor(
          () => sockets() === idle,
          () => `the sshd's sockets back to ${idle}: ${sockets()}`,
        );
      },
    );

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
          ...sshKeyOpts(key),
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
      await k.ready({ listening: 2 });
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

/**
 * The appliance's front-end bundles (buildroot/appliance/bundle-front-ends: /kaos/sshd.js and
 * /kaos/console.js, code-split into /kaos/fe.d/, minified) work as the appliance runs them, against a real
 * hosted kattach: the sshd answers a key login's one-line commands and opens the menus in a pty
 * (both load chunks at the first login: the backend, zod's schemas, the prompts), and the console
 * waits for a key, then loads its login and asks kattach (the forced password change follows).
 * Real processes, OpenSSH's client, tmux; loopback only.
 */
import { deepStrictEqual as assertEquals, match as assertMatch } from "node:assert/strict";
import { ACTIVATE_PROMPT } from "../cli/console.ts";
import { DEFAULT_PASSWORD } from "../kattach/auth.ts";
import { FRONT_END_V8_FLAGS_OPTION } from "../lib/v8_flags.ts";
import { exitOrKill, REPO_ROOT, TestKattach } from "./_harness.ts";
import { sshKeyOpts } from "./_ssh.ts";
import { freePort, run, Tmux, waitFor } from "./_util.ts";

const START_MS = 120_000; // a Deno start on a loaded machine

Deno.test("front-end bundles: the split sshd.js and console.js against a real kattach", async (t) => {
  const work = await Deno.makeTempDir({ prefix: "kaos_fe_bundles_" });
  const k = await TestKattach.start(`${work}/state`);
  let sshd: Deno.ChildProcess | undefined;
  let pump: Promise<void> | undefined;
  const tmuxes: Tmux[] = [];
  try {
    const built = await run([`${REPO_ROOT}/buildroot/appliance/bundle-front-ends`, `${work}/kaos`]);
    assertEquals(built.code, 0, built.stderr);
    const files = [...Deno.readDirSync(`${work}/kaos/fe.d`)].map((e) => e.name);
    // Code-split: the entries are small; what they load at a login or key is in other files.
    for (const entry of ["sshd.js", "console.js"]) {
      const size = (await Deno.stat(`${work}/kaos/${entry}`)).size;
      assertEquals(size < 16_384, true, `${entry} is ${size} bytes`);
    }
    assertEquals(files.filter((f) => f.startsWith("sshd_backend-")).length, 1, files.join(" "));
    assertEquals(files.filter((f) => f.startsWith("session-")).length, 1, files.join(" "));
    const deno = (js: string, ...args: string[]) => [
      ...["run", "-A", FRONT_END_V8_FLAGS_OPTION, "--no-config", `${work}/kaos/${js}`],
      ...args,
    ];

    const key = `${work}/id_ed25519`;
    const keygen = await run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key]);
    assertEquals(keygen.code, 0, keygen.stderr);
    await k.json("system", "ssh-key", "add", (await Deno.readTextFile(`${key}.pub`)).trim());

    const port = freePort();
    sshd = new Deno.Command(Deno.execPath(), {
      args: deno("sshd.js", "--supervised", "--state", k.stateDir, "--port", String(port))
        .concat(["--listen", "127.0.0.1"]),
      stdin: "piped", // held open: its end stops the sshd (--supervised)
      stdout: "null",
      stderr: "piped",
    }).spawn();
    let log = "";
    pump = (async () => {
      for await (const text of sshd!.stderr.pipeThrough(new TextDecoderStream())) log += text;
    })();
    await waitFor(() => log.includes("listening"), () => `the bundled sshd listening:\n${log}`, {
      timeoutMs: START_MS,
    });
    const ssh = (...words: string[]) =>
      run(["ssh", ...sshKeyOpts(key), "-p", String(port), "aqcli@127.0.0.1", ...words]);

    await t.step("sshd.js: one-line commands over a key login, answers as aq's", async () => {
      const vlans = await ssh("vlan", "list", "--json");
      assertEquals(vlans.code, 0, vlans.stderr + log);
      assertEquals(vlans.stdout, (await k.aq("vlan", "list", "--json")).stdout);
      const missing = await ssh("vlan", "show", "99");
      assertEquals(missing.code, 1, missing.stderr);
      assertEquals(missing.stderr, (await k.aq("vlan", "show", "99")).stderr);
      const usage = await ssh("vlan", "frob");
      assertEquals(usage.code, 2);
      assertMatch(usage.stderr, /Error: /);
    });

    await t.step("sshd.js: what the bundle leaves out of ssh2 is refused cleanly", async () => {
      // cli/_ssh2_stubs.ts: chacha20-poly1305, SFTP and compression are never negotiated.
      const chacha = await run([
        // LogLevel first (ssh takes an option's first value): the refusal is logged at INFO.
        ...[
          "ssh",
          "-o",
          "LogLevel=INFO",
          ...sshKeyOpts(key),
          "-c",
          "chacha20-poly1305@openssh.com",
        ],
        ...["-p", String(port), "aqcli@127.0.0.1", "vlan", "list"],
      ]);
      assertEquals(chacha.code, 255, chacha.stderr);
      assertMatch(chacha.stderr, /Unable to negotiate .*no matching cipher found/);
      const sftp = await run([
        ...["ssh", "-o", "LogLevel=INFO", ...sshKeyOpts(key), "-s", "-p", String(port)],
        ...["aqcli@127.0.0.1", "sftp"],
      ]);
      assertEquals(sftp.code === 0, false, sftp.stderr);
      assertMatch(sftp.stderr, /subsystem request failed/);
      await waitFor(
        () => log.includes("refused the sftp subsystem"),
        () => `sftp refused:\n${log}`,
      );
      const zipped = await run([
        ...["ssh", ...sshKeyOpts(key), "-o", "Compression=yes", "-p", String(port)],
        ...["aqcli@127.0.0.1", "vlan", "list", "--json"],
      ]);
      assertEquals(zipped.code, 0, zipped.stderr + log);
      assertEquals(zipped.stdout, (await k.aq("vlan", "list", "--json")).stdout);
      assertEquals(log.includes("left out of this sshd"), false, log);
    });

    await t.step("sshd.js: the menus in a pty", async () => {
      const script = `${work}/menu.sh`;
      await Deno.writeTextFile(
        script,
        `exec ssh ${sshKeyOpts(key).join(" ")} -t -p ${port} aqcli@127.0.0.1\n`,
      );
      const tmux = new Tmux({ name: "kaos_fe_menu" });
      tmuxes.push(tmux);
      await tmux.start(script);
      await tmux.waitFor(/KaOS .* AppQueue CLI/);
      await tmux.waitFor("❯");
    });

    await t.step("console.js --wait-key: a key, then the login through kattach", async () => {
      const script = `${work}/console.sh`;
      const argv = [Deno.execPath(), ...deno("console.js", "console", "--state", k.stateDir)];
      await Deno.writeTextFile(script, `exec ${argv.join(" ")} --tty pts --wait-key\n`);
      const tmux = new Tmux({ name: "kaos_fe_console" });
      tmuxes.push(tmux);
      await tmux.start(script);
      await tmux.waitFor(ACTIVATE_PROMPT, START_MS);
      const before = await tmux.screen();
      assertEquals(before.includes("Password for"), false, before);
      await tmux.keys("Enter");
      await tmux.waitFor("Password for aqcli");
      await tmux.type(DEFAULT_PASSWORD);
      await tmux.waitFor("The default password must be changed");
      await tmux.waitFor("New password");
    });
  } finally {
    for (const tmux of tmuxes) await tmux.stop();
    if (sshd) {
      await sshd.stdin.close().catch(() => {});
      await exitOrKill(sshd, "the bundled sshd ending at EOF on stdin");
      await pump;
    }
    await k.dispose();
    await Deno.remove(work, { recursive: true }).catch(() => {});
  }
});

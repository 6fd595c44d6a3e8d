/**
 * Integration tests of the SSH front door with the real OpenSSH client (ssh, sshpass, ssh-keygen,
 * ssh-keyscan) and a real pty (tmux), against a server started in-process on 127.0.0.1:0.
 */
import {
  deepStrictEqual as assertEquals,
  doesNotMatch as assertNotMatch,
  match as assertMatch,
  ok as assert,
} from "node:assert/strict";
import { input, select } from "@inquirer/prompts";
import { UserError } from "../lib/errors.ts";
import {
  MUST_CHANGE_MESSAGE,
  SSH_KEX,
  type SshBackend,
  type SshServer,
  startSshServer,
} from "../cli/ssh_server.ts";
import { sshKeyOpts, sshPasswordOpts, sshPw, writeLoginScript } from "./_ssh.ts";
import { run, Tmux, waitFor } from "./_util.ts";

const work = await Deno.makeTempDir({ prefix: "kaos_ssh_test_" });
const keysDir = `${work}/hostkeys`;

/** An in-memory backend: a password map, an echoing exec and a two-prompt menu. */
class TestBackend implements SshBackend {
  passwords = new Map<string, string>([["aqcli", "s3cret"]]);
  mustChange = false;
  keys: string[] = [];
  changed: string[] = [];
  /** Every new password checked (right after its first entry). */
  checked: string[] = [];
  /** How each shell ended: "returned" or the name of the error it threw. */
  shellEnds: string[] = [];

  checkPassword(user: string, password: string): Promise<"ok" | "must-change" | "denied"> {
    if (this.passwords.get(user) !== password) return Promise.resolve("denied");
    return Promise.resolve(this.mustChange ? "must-change" : "ok");
  }

  authorizedKeys(_user: string): Promise<string[]> {
    return Promise.resolve(this.keys);
  }

  /** The test's policy: 6 characters at least. */
  #policy(newPassword: string): void {
    if (newPassword.length < 6) {
      throw new UserError("Cannot set the password: it is too short", { hint: "Use 6 characters" });
    }
  }

  async checkNewPassword(_user: string, newPassword: string): Promise<void> {
    this.checked.push(newPassword);
    await Promise.resolve();
    this.#policy(newPassword);
  }

  async changePassword(user: string, newPassword: string): Promise<void> {
    await Promise.resolve();
    this.#policy(newPassword);
    this.passwords.set(user, newPassword);
    this.mustChange = false;
    this.changed.push(newPassword);
  }

  async exec(line: string, io: Parameters<SshBackend["exec"]>[1]): Promise<number> {
    if (line === "boom") throw new Error("a bug in a handler");
    if (line === "usererror") throw new UserError("Cannot do that", { hint: "Try another" });
    const [word, status] = line.split(" ");
    if (word === "status") {
      io.stdout.write(`exit with ${status} for ${io.user} from ${io.remote.split(":")[0]}\n`);
      io.stderr.write("to stderr\n");
      return Number(status);
    }
    if (word === "cat") {
      let total = 0;
      for await (const chunk of io.stdin) total += (chunk as Uint8Array).length;
      io.stdout.write(`read ${total} bytes\n`);
      return 0;
    }
    io.stdout.write(`echo: ${line}\n`);
    await Promise.resolve();
    return 0;
  }

  async shell(io: Parameters<SshBackend["shell"]>[0]): Promise<void> {
    try {
      await this.#menu(io);
      this.shellEnds.push("returned");
    } catch (err) {
      this.shellEnds.push((err as Error).name);
      throw err;
    }
  }

  async #menu(io: Parameters<SshBackend["shell"]>[0]): Promise<void> {
    const term = io.terminal!;
    const choice = await term.prompt((ctx) =>
      select({ message: "Pick one", choices: ["alpha", "bravo", "charlie"] }, ctx)
    );
    const name = await term.prompt((ctx) => input({ message: "Your name" }, ctx));
    term.write(`chose=${choice} name=${name} cols=${term.columns}\n`);
    await new Promise<void>((resolve) => {
      const off = term.onResize((size) => {
        term.write(`resized cols=${size.columns} rows=${size.rows}\n`);
        off();
        resolve();
      });
    });
    await term.prompt((ctx) => input({ message: "Leave?" }, ctx));
  }
}

/** A server with a fresh TestBackend and a log kept in memory. */
async function serve(backend = new TestBackend(), dir = keysDir) {
  const lines: string[] = [];
  const server = await startSshServer({
    hostname: "127.0.0.1",
    port: 0,
    hostKeysDir: dir,
    backend,
    log: (line) => lines.push(line),
    authDelayMs: 1,
    maxAuthDelayMs: 5,
  });
  return { server, backend, lines };
}

/** `ssh` with a private key. */
function sshKey(server: SshServer, keyFile: string, args: string[]) {
  return run([
    "ssh",
    ...sshKeyOpts(keyFile),
    "-p",
    String(server.port),
    "aqcli@127.0.0.1",
    ...args,
  ]);
}

/** Makes a key pair with ssh-keygen; returns the private key path. */
async function keygen(name: string, type = "ed25519"): Promise<string> {
  const path = `${work}/${name}`;
  const r = await run(["ssh-keygen", "-q", "-t", type, "-N", "", "-C", name, "-f", path]);
  assertEquals(r.code, 0, r.stderr);
  return path;
}

Deno.test("exec mode returns stdout, stderr and the exit status", async () => {
  const { server, lines } = await serve();
  try {
    const r = await sshPw(server, "s3cret", ["status", "7"]);
    assertEquals(r.code, 7);
    assertEquals(r.stdout, "exit with 7 for aqcli from 127.0.0.1\n");
    assertEquals(r.stderr, "to stderr\n");
    const ok = await sshPw(server, "s3cret", ["hello", "there"]);
    assertEquals([ok.code, ok.stdout], [0, "echo: hello there\n"]);
    const cat = await sshPw(server, "s3cret", ["cat"], { stdin: "x".repeat(100_000) });
    assertEquals([cat.code, cat.stdout], [0, "read 100000 bytes\n"]);
    assert(lines.some((l) => l.startsWith('auth ok user="aqcli" from=127.0.0.1 method=password')));
  } finally {
    await server.close();
  }
});

Deno.test("a wrong password and an unknown user are refused alike, logged", async () => {
  const { server, lines } = await serve();
  try {
    const wrong = await sshPw(server, "nope", ["status", "0"]);
    const unknown = await sshPw(server, "s3cret", ["status", "0"], { user: "root" });
    assertEquals(wrong.code, 255);
    assertEquals(unknown.code, 255);
    assertEquals(wrong.stdout + unknown.stdout, "");
    assertMatch(wrong.stderr, /Permission denied \(publickey,password\)/);
    assertEquals(unknown.stderr.replace("root@", "aqcli@"), wrong.stderr);
    assert(
      lines.includes('auth failed user="aqcli" from=127.0.0.1 method=password'),
      lines.join("\n"),
    );
    assert(
      lines.includes('auth failed user="root" from=127.0.0.1 method=password'),
      lines.join("\n"),
    );
  } finally {
    await server.close();
  }
});

Deno.test("exec is refused while the default password must be changed", async () => {
  const backend = new TestBackend();
  backend.mustChange = true;
  const { server } = await serve(backend);
  try {
    const r = await sshPw(server, "s3cret", ["status", "0"]);
    assertEquals(r.code, 1);
    assertEquals(r.stdout, "");
    assertEquals(r.stderr, `${MUST_CHANGE_MESSAGE}\n`);
    assertMatch(r.stderr, /ssh -p 1289 aqcli@HOST/);
  } finally {
    await server.close();
  }
});

Deno.test("publickey: authorized ed25519 and RSA keys get in, other keys do not", async () => {
  const good = await keygen("id_good");
  const rsa = await keygen("id_rsa_good", "rsa");
  const bad = await keygen("id_bad");
  const backend = new TestBackend();
  backend.keys = [
    "# a comment, then a line ssh2 cannot read",
    "ssh-ed25519 notbase64!!",
    await Deno.readTextFile(`${good}.pub`),
    await Deno.readTextFile(`${rsa}.pub`),
  ];
  const { server, lines } = await serve(backend);
  try {
    const ok = await sshKey(server, good, ["status", "4"]);
    assertEquals([ok.code, ok.stdout], [4, "exit with 4 for aqcli from 127.0.0.1\n"], ok.stderr);
    const okRsa = await sshKey(server, rsa, ["hi"]);
    assertEquals([okRsa.code, okRsa.stdout], [0, "echo: hi\n"], okRsa.stderr);
    const no = await sshKey(server, bad, ["status", "0"]);
    assertEquals(no.code, 255);
    assertMatch(no.stderr, /Permission denied \(publickey,password\)/);
    assert(
      lines.some((l) => l.startsWith('auth failed user="aqcli" from=127.0.0.1 method=publickey')),
    );
  } finally {
    await server.close();
  }
});

Deno.test("port forwarding, stdio forwarding and sftp are refused", async () => {
  const { server, lines } = await serve();
  const target = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  let reached = 0;
  (async () => {
    for await (const c of target) {
      reached++;
      c.close();
    }
  })();
  try {
    const targetPort = (target.addr as Deno.NetAddr).port;
    // -W opens a direct-tcpip channel at once.
    const w = await sshPw(server, "s3cret", ["-W", `127.0.0.1:${targetPort}`]);
    assert(w.code !== 0);
    assertMatch(w.stderr, /administratively prohibited|open failed|stdio forwarding failed/);
    // -R asks the server to listen: a tcpip-forward global request.
    const r = await sshPw(server, "s3cret", [
      "-o",
      "ExitOnForwardFailure=yes",
      "-N",
      "-R",
      `0:127.0.0.1:${targetPort}`,
    ]);
    assertEquals(r.code, 255);
    assertMatch(r.stderr, /remote port forwarding failed/);
    // -N -L: the client listens; the first connection through it must fail on the server.
    const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const localPort = (probe.addr as Deno.NetAddr).port;
    probe.close();
    const child = new Deno.Command("sshpass", {
      args: [
        "-e",
        "ssh",
        ...sshPasswordOpts().map((o) => o === "LogLevel=ERROR" ? "LogLevel=INFO" : o),
        "-N",
        "-L",
        `127.0.0.1:${localPort}:127.0.0.1:${targetPort}`,
        "-p",
        String(server.port),
        "aqcli@127.0.0.1",
      ],
      env: { SSHPASS: "s3cret" },
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    let stderr = "";
    const reader = (async () => {
      for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) stderr += chunk;
    })();
    try {
      await waitFor(async () => {
        try {
          const c = await Deno.connect({ hostname: "127.0.0.1", port: localPort });
          const buf = new Uint8Array(1);
          await c.read(buf).catch(() => null);
          c.close();
        } catch { /* the client does not listen yet */ }
        return /open failed|administratively prohibited/.test(stderr);
      }, () => `ssh -L stderr: ${stderr}`);
    } finally {
      child.kill("SIGTERM");
      await child.status;
      await reader;
    }
    // X11 (-Y with a DISPLAY) and agent forwarding (-A with a running agent) are refused.
    const x11 = await run(
      [
        "sshpass",
        "-e",
        "ssh",
        ...sshPasswordOpts(),
        "-Y",
        "-p",
        String(server.port),
        "aqcli@127.0.0.1",
        "hi",
      ],
      { env: { SSHPASS: "s3cret", DISPLAY: ":99" } },
    );
    assertEquals([x11.code, x11.stdout], [0, "echo: hi\n"]);
    assertMatch(x11.stderr, /X11 forwarding request failed/);
    const agentSock = `${work}/agent.sock`;
    const agent = new Deno.Command("ssh-agent", { args: ["-D", "-a", agentSock], stdout: "null" })
      .spawn();
    try {
      await waitFor(() => {
        try {
          return Deno.statSync(agentSock).isSocket === true;
        } catch {
          return false;
        }
      }, () => "ssh-agent socket");
      const a = await run(
        [
          "sshpass",
          "-e",
          "ssh",
          ...sshPasswordOpts(),
          "-A",
          "-p",
          String(server.port),
          "aqcli@127.0.0.1",
          "hi",
        ],
        { env: { SSHPASS: "s3cret", SSH_AUTH_SOCK: agentSock } },
      );
      assertEquals([a.code, a.stdout], [0, "echo: hi\n"], a.stderr);
    } finally {
      agent.kill("SIGTERM");
      await agent.status;
    }
    assert(lines.some((l) => l.startsWith("ssh: refused X11 forwarding")), lines.join("\n"));
    assert(lines.some((l) => l.startsWith("ssh: refused agent forwarding")), lines.join("\n"));
    // -s sftp: the subsystem request fails.
    const s = await sshPw(server, "s3cret", ["-s", "sftp"]);
    assert(s.code !== 0);
    assertMatch(s.stderr, /subsystem request failed/);
    assertEquals(reached, 0);
    assert(lines.some((l) => l.startsWith("ssh: refused port forwarding")), lines.join("\n"));
    assert(lines.some((l) => l.startsWith("ssh: refused tcpip-forward")), lines.join("\n"));
    assert(lines.some((l) => l.startsWith("ssh: refused the sftp subsystem")), lines.join("\n"));
  } finally {
    target.close();
    await server.close();
  }
});

Deno.test("a shell without a pty gets a message; handler errors never kill the server", async () => {
  const { server, lines } = await serve();
  try {
    const shell = await sshPw(server, "s3cret", ["-T"]);
    assertEquals(shell.code, 1);
    assertMatch(shell.stderr, /no shell, only the interactive menu, which needs a terminal/);
    const boom = await sshPw(server, "s3cret", ["boom"]);
    assertEquals([boom.code, boom.stdout], [1, ""]);
    assertEquals(boom.stderr, "Error: internal error (details are in the system log)\n");
    assert(
      lines.some((l) => l.includes("internal error in exec") && l.includes("a bug in a handler")),
    );
    const user = await sshPw(server, "s3cret", ["usererror"]);
    assertEquals([user.code, user.stderr], [1, "Error: Cannot do that\nHint: Try another\n"]);
    const after = await sshPw(server, "s3cret", ["still", "alive"]);
    assertEquals([after.code, after.stdout], [0, "echo: still alive\n"]);
  } finally {
    await server.close();
  }
});

Deno.test("every offered key exchange works with OpenSSH", async (t) => {
  const { server } = await serve();
  try {
    for (const kex of SSH_KEX) {
      await t.step(kex, async () => {
        const r = await sshPw(server, "s3cret", ["-o", `KexAlgorithms=${kex}`, kex]);
        assertEquals([r.code, r.stdout], [0, `echo: ${kex}\n`], `${kex}: ${r.stderr}`);
      });
    }
  } finally {
    await server.close();
  }
});

Deno.test("host keys are stable across restarts with the same directory", async () => {
  const dir = `${work}/stable_keys`;
  const scan = async (server: SshServer) => {
    const r = await run([
      "ssh-keyscan",
      "-T",
      "20",
      "-p",
      String(server.port),
      "-t",
      "ed25519,rsa",
      "127.0.0.1",
    ]);
    assertEquals(r.code, 0, r.stderr);
    return r.stdout.split("\n").filter((l) => l.trim() !== "" && !l.startsWith("#")).sort();
  };
  const first = await serve(new TestBackend(), dir);
  let before: string[];
  try {
    before = await scan(first.server);
  } finally {
    await first.server.close();
  }
  assertEquals(before.length, 1, before.join("\n")); // Ed25519 only (no SHA-1 ssh-rsa)
  const second = await serve(new TestBackend(), dir);
  try {
    const after = (await scan(second.server)).map((l) => l.replace(/\]:\d+/, "]"));
    assertEquals(after, before.map((l) => l.replace(/\]:\d+/, "]")));
    assertEquals(second.server.fingerprints, first.server.fingerprints);
    // What the client sees matches what the server reports.
    for (const line of before) {
      const [, type, blob] = line.split(" ");
      const fp = await run(["sh", "-c", `echo "${type} ${blob}" | ssh-keygen -l -f -`]);
      assert(second.server.fingerprints.some((f) => fp.stdout.includes(f)), fp.stdout);
    }
    const mode = (await Deno.stat(`${dir}/ssh_host_ed25519_key`)).mode! & 0o777;
    assertEquals(mode, 0o600);
  } finally {
    await second.server.close();
  }
});

Deno.test("interactive: must-change flow, then the menu, in a real pty; resize reaches it", async () => {
  const backend = new TestBackend();
  backend.mustChange = true;
  const { server, lines } = await serve(backend);
  const script = `${work}/login.sh`;
  await writeLoginScript(script, { port: server.port, password: "s3cret" });
  const tmux = new Tmux({ name: "kaos_ssh_test", columns: 100, rows: 30 });
  try {
    await tmux.start(script);
    await tmux.waitFor("New password");
    await tmux.keys("-l", "abc");
    await tmux.keys("Enter");
    // Refused right after the first entry, with the reason, and asked again: no retype of it.
    await tmux.waitFor(/too short\s+Hint: Use 6 characters\s+\? New password/);
    assertNotMatch(await tmux.screen(), /Retype new password/);
    await tmux.keys("-l", "n3w-passw0rd");
    await tmux.keys("Enter");
    await tmux.waitFor(/Hint: Use 6 characters[\s\S]*Retype new password/);
    await tmux.keys("-l", "n3w-passw0rd");
    await tmux.keys("Enter");
    let screen = await tmux.waitFor("Pick one");
    assertMatch(screen, /Password changed\./);
    assertNotMatch(screen, /n3w-passw0rd|abc/);
    assertEquals(backend.checked, ["abc", "n3w-passw0rd"]);
    assertEquals(backend.changed, ["n3w-passw0rd"]);
    await tmux.keys("Down");
    await tmux.keys("Enter");
    await tmux.waitFor("Your name");
    await tmux.keys("-l", "bob");
    await tmux.keys("Enter");
    screen = await tmux.waitFor("chose=bravo name=bob cols=100");
    await tmux.resize(120, 40);
    screen = await tmux.waitFor("resized cols=120 rows=40");
    await tmux.waitFor("Leave?");
    await tmux.keys("Enter");
    screen = await tmux.waitFor("[ssh exited 0]");
    // Lines end in \r\n, not bare \n: every line starts at column 0 (no staircase).
    for (const l of ["chose=bravo", "resized cols=120"]) {
      assert(screen.split("\n").some((row) => row.startsWith(l)), screen);
    }
    assert(lines.some((l) => l.startsWith('password changed user="aqcli"')));
    // The new password is the one that works now, and exec is allowed.
    const r = await sshPw(server, "n3w-passw0rd", ["status", "0"]);
    assertEquals(r.code, 0, r.stderr);
    assertEquals(backend.shellEnds, ["returned"]);
  } finally {
    await tmux.stop();
    await server.close();
  }
});

Deno.test("interactive: Ctrl+C at the forced change says the password is unchanged, exit 1", async () => {
  const backend = new TestBackend();
  backend.mustChange = true;
  const { server } = await serve(backend);
  const script = `${work}/login-cancel.sh`;
  await writeLoginScript(script, { port: server.port, password: "s3cret" });
  const tmux = new Tmux({ name: "kaos_ssh_test", columns: 100, rows: 30 });
  try {
    await tmux.start(script);
    await tmux.waitFor("New password");
    await tmux.keys("C-c");
    const screen = await tmux.waitFor("[ssh exited 1]");
    assertMatch(screen, /Password not changed; disconnecting\./);
    assertEquals(backend.changed, []);
    assertEquals(backend.shellEnds, []);
  } finally {
    await tmux.stop();
    await server.close();
  }
});

Deno.test("the client leaving in the middle of the menu ends the session cleanly", async () => {
  const { server, backend, lines } = await serve();
  const script = `${work}/leave.sh`;
  await writeLoginScript(script, { port: server.port, password: "s3cret" });
  const tmux = new Tmux({ name: "kaos_ssh_test", columns: 100, rows: 30 });
  try {
    await tmux.start(script);
    await tmux.waitFor("Pick one");
    await tmux.stop(); // kills the pane, so ssh, so the connection
    await waitFor(() => backend.shellEnds.length === 1, () => `shell ends: ${backend.shellEnds}`);
    assertEquals(backend.shellEnds, ["AbortPromptError"]);
    assert(!lines.some((l) => l.includes("internal error")), lines.join("\n"));
    const r = await sshPw(server, "s3cret", ["still", "here"]);
    assertEquals([r.code, r.stdout], [0, "echo: still here\n"]);
  } finally {
    await tmux.stop();
    await server.close();
  }
});

globalThis.addEventListener("unload", () => {
  Deno.removeSync(work, { recursive: true });
});

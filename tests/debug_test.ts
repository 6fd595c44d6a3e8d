/**
 * The Debug tools for real: a hosted kattach with its supervised sshd runs one guest of the
 * fixture `web` module (QEMU, TCG); `aq qmp NAME --list` lists what its QEMU understands,
 * `aq qmp events` streams the STOP and RESUME that `instance pause`/`resume` cause, the Debug
 * menu (scripted keystrokes on in-memory streams) sends `query-status` and watches events, and
 * `instance console` is attached from the menus over real SSH in tmux: the guest's serial tty
 * echoes what is typed, Ctrl-] detaches, and the session goes on. Every QEMU is killed at the end.
 */
import {
  deepStrictEqual as assertEquals,
  match as assertMatch,
  ok as assert,
} from "node:assert/strict";
import { IpcClient } from "../ipc/mod.ts";
import type { Instance, QmpCommandList, QmpEventWatch } from "../ipc/mod.ts";
import { runMenus } from "../cli/menus.ts";
import { DEFAULT_PASSWORD } from "../kattach/auth.ts";
import { FIXTURES_OUT, killGuests, REPO_ROOT } from "./_harness.ts";
import { Scripted } from "./_scripted.ts";
import { KattachWithSshd, writeLoginScript } from "./_ssh.ts";
import { run, Tmux, waitFor } from "./_util.ts";

/** How long the waits of this test wait (a guest under TCG is slow). */
const WAIT = { timeoutMs: 60_000 };

const NEW_PASSWORD = "Debug-t3st-pass";

/** True when something exists at the path. */
async function exists(path: string): Promise<boolean> {
  return await Deno.lstat(path).then(() => true, () => false);
}

/** `aq ARGS…` as a child whose output is read while it runs. */
class LiveAq {
  stdout = "";
  stderr = "";
  readonly status: Promise<Deno.CommandStatus>;
  #pumps: Promise<void>;
  #child: Deno.ChildProcess;

  constructor(state: string, args: string[]) {
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", `${REPO_ROOT}/main.ts`, "aq", "--state", state, ...args],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const pump = async (s: ReadableStream<Uint8Array>, to: "stdout" | "stderr") => {
      for await (const t of s.pipeThrough(new TextDecoderStream())) this[to] += t;
    };
    this.#pumps = Promise.all([pump(child.stdout, "stdout"), pump(child.stderr, "stderr")])
      .then(() => {});
    this.status = child.status;
    this.#child = child;
  }

  /** Kills the client (SIGKILL) and waits for it. */
  async kill(): Promise<void> {
    this.#child.kill("SIGKILL");
    await this.done();
  }

  async done(): Promise<number> {
    const { code } = await this.status;
    await this.#pumps;
    return code;
  }
}

Deno.test({
  name: "debug: qmp --list, qmp events, the Debug menu and instance console over SSH",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    const built = await run([`${REPO_ROOT}/fixtures/build-modules`]);
    assertEquals(built.code, 0, built.stderr);
    const work = await Deno.makeTempDir({ prefix: "kaos_debug_" });
    const state = `${work}/state`;
    const k = new KattachWithSshd(state);
    try {
      await k.ready(WAIT);
      for (const m of ["vkaos", "web"]) {
        const r = await k.aq.aq("module", "import", `${FIXTURES_OUT}/${m}`);
        assertEquals(r.code, 0, r.stderr);
      }
      await k.aq.json("config-group", "add", "web", "site", "title=Debug");
      // On a VLAN, in hosted (user-mode) networking: the pool allocates an address the guest
      // does not have (see the step on addresses below).
      await k.aq.json("vlan", "add", "10", "front", "10.77.10.0/24");
      await k.aq.json(
        ...["vmimage", "create", "web", "--modules", "web", "--config-groups", "site"],
        ...["--vlan", "10"],
      );
      const deployed = await k.aq.json<Instance[]>("deploy", "web", "--count", "1", "--wait");
      assertEquals(deployed.map((i) => [i.name, i.state]), [["web-1", "running"]]);

      await t.step("instance list and instance show say the address the guest has", async () => {
        const [listed] = await k.aq.json<Instance[]>("instance", "list");
        const shown = await k.aq.json<Instance>("instance", "show", "web-1");
        const nic = shown.network![0];
        assertEquals([listed.nics[0].vlan, listed.nics[0].ip], [10, "10.77.10.2"]); // allocated
        assertEquals([nic.mode, nic.address, nic.gateway], ["user", "10.0.2.15/24", "10.0.2.2"]);
        assertEquals(listed.nics[0].address, nic.address);
        assertEquals(shown.dns, ["10.0.2.3"]);
        // What the guest itself logged on its serial console when it set up the NIC and DNS.
        const serial = await Deno.readTextFile(`${state}/instances/web-1/serial.log`);
        const mac = listed.nics[0].mac;
        assertMatch(
          serial,
          new RegExp(`KAOS-GUEST: nic 0 \\S+ ${mac} 10\\.0\\.2\\.15/24 via 10\\.0\\.2\\.2\\s`),
        );
        assertMatch(serial, /KAOS-GUEST: dns 10\.0\.2\.3\s/);
        // The one-line views print the same.
        const list = await k.aq.aq("instance", "list");
        assertMatch(list.stdout, new RegExp(`vlan10 ${mac} 10\\.0\\.2\\.15/24`));
        const show = await k.aq.aq("instance", "show", "web-1");
        assertMatch(show.stdout, /net0 +10 +user-mode +\S+ +10\.0\.2\.15\/24 +10\.0\.2\.2 /);
        assertMatch(show.stdout, /DNS: 10\.0\.2\.3\n/);
      });

      await t.step("qmp NAME --list: the commands of the running QEMU, sorted", async () => {
        const plain = await k.aq.aq("qmp", "web-1", "--list");
        assertEquals(plain.code, 0, plain.stderr);
        const names = plain.stdout.trim().split("\n");
        assert(names.includes("query-status"), plain.stdout);
        assert(names.includes("query-commands"), plain.stdout);
        assertEquals(names, [...names].sort());
        const json = await k.aq.json<QmpCommandList>("qmp", "web-1", "--list");
        assertEquals(json, { instance: "web-1", commands: names });
        // Only the allowlist: nothing that reaches the host's files or processes is offered.
        for (const refused of ["human-monitor-command", "migrate", "screendump", "device_add"]) {
          assert(!names.includes(refused), `${refused} listed: ${plain.stdout}`);
        }
        assert(names.every((n) => !n.startsWith("x-")), plain.stdout);

        const noCommand = await k.aq.aq("qmp", "web-1");
        assertEquals(noCommand.code, 2);
        assertMatch(noCommand.stderr, /COMMAND is missing .*qmp NAME --list/);
        const both = await k.aq.aq("qmp", "web-1", "query-status", "--list");
        assertEquals(both.code, 2);
        const tooLong = await k.aq.aq("qmp", "events", "web-1", "--seconds", "601");
        assertEquals(tooLong.code, 2);
        assertMatch(tooLong.stderr, /--seconds runs from 1 to 600/);
        const stopped = await k.aq.aq("qmp", "events", "nope-1");
        assertEquals(stopped.code, 1);
        assertMatch(stopped.stderr, /nope-1/);
      });

      await t.step(
        "qmp refuses what is not allowed, naming the rule; no file appears",
        async () => {
          const shot = `${work}/shot.ppm`;
          const pwned = `${work}/pwned`;
          const tries: [string, string, RegExp][] = [
            [
              "human-monitor-command",
              '{"command-line":"info name"}',
              /only read-only and guest-local/,
            ],
            ["screendump", JSON.stringify({ filename: shot }), /only read-only and guest-local/],
            ["migrate", JSON.stringify({ uri: `exec:touch ${pwned}` }), /query-\*, stop, cont/],
            ["x-query-roms", "{}", /experimental x-\* commands are refused/],
            ["quit", "{}", /instance stop NAME/],
          ];
          for (const [command, args, rule] of tries) {
            const r = await k.aq.aq("qmp", "web-1", command, args);
            assertEquals(r.code, 1, `${command}: ${r.stdout}${r.stderr}`);
            assertMatch(r.stderr, new RegExp(`Cannot send ${command} to web-1`));
            assertMatch(r.stderr, rule);
            assertMatch(r.stderr, /qmp web-1 --list/);
          }
          for (const f of [shot, pwned]) {
            assert(!(await exists(f)), `${f} exists after a refused command`);
          }
          const status = await k.aq.json<{ return: { status: string } }>(
            "qmp",
            "web-1",
            "query-status",
          );
          assertEquals(status.return.status, "running"); // still alive and answering
        },
      );

      await t.step(
        "QEMU runs as kaos-qemu in its seccomp sandbox; the database is out of reach",
        async () => {
          const pid = Number((await Deno.readTextFile(`${state}/instances/web-1/qemu.pid`)).trim());
          const status = await Deno.readTextFile(`/proc/${pid}/status`);
          const field = (name: string) =>
            status.match(new RegExp(`^${name}:[ \\t]*(.*)$`, "m"))?.[1];
          assertEquals(field("Seccomp"), "2", status); // a seccomp filter is active
          const cmdline = (await Deno.readTextFile(`/proc/${pid}/cmdline`)).split("\0");
          assertEquals(
            cmdline[cmdline.indexOf("-sandbox") + 1],
            "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny",
          );
          assert(!cmdline.includes("-daemonize"));
          if (Deno.uid() !== 0) return; // not root: QEMU runs as the test's own user
          const passwd = await Deno.readTextFile("/etc/passwd");
          const [, , uid, gid] = passwd.split("\n").find((l) => l.startsWith("kaos-qemu:"))!
            .split(":");
          assertEquals(field("Uid")!.split(/\s+/), [uid, uid, uid, uid], status);
          assertEquals(field("Gid")!.split(/\s+/), [gid, gid, gid, gid], status);
          assertEquals(field("Groups") ?? "", "");
          // As that user: the module image QEMU reads is readable, the configuration is not.
          const as = (path: string) =>
            new Deno.Command("cat", {
              args: [path],
              uid: Number(uid),
              gid: Number(gid),
              stdout: "null",
              stderr: "piped",
            }).output();
          assertEquals((await as(`${state}/modules/web/web.aqi`)).code, 0);
          const db = await as(`${state}/kaos.db`);
          assertEquals(db.code, 1);
          assertMatch(new TextDecoder().decode(db.stderr), /Permission denied/);
        },
      );

      await t.step("qmp events streams STOP and RESUME while pause/resume run", async () => {
        const watch = new LiveAq(state, [
          "qmp",
          "events",
          "web-1",
          "--seconds",
          "120",
          "--count",
          "2",
          "--json",
        ]);
        await waitFor(
          () => watch.stderr.includes("Watching the QMP events of web-1 for 120 s"),
          () => `watching; stderr: ${watch.stderr}`,
          WAIT,
        );
        assertEquals((await k.aq.aq("instance", "pause", "web-1")).code, 0);
        assertEquals((await k.aq.aq("instance", "resume", "web-1")).code, 0);
        assertEquals(await watch.done(), 0, watch.stderr);
        const lines = watch.stdout.trim().split("\n").map((l) => JSON.parse(l));
        assertEquals(lines.slice(0, 2).map((e) => e.event), ["STOP", "RESUME"]);
        assert(lines.slice(0, 2).every((e) => typeof e.timestamp?.seconds === "number"));
        const summary = lines[2] as QmpEventWatch;
        assertEquals([summary.instance, summary.events, summary.ended], ["web-1", 2, "count"]);
        assertEquals(lines.length, 3);

        // A caller that goes away ends its watch at once (not after 600 s).
        const gone = new LiveAq(state, ["qmp", "events", "web-1", "--seconds", "600"]);
        await waitFor(() => gone.stderr.includes("Watching"), () => `stderr: ${gone.stderr}`, WAIT);
        await gone.kill();
        await waitFor(
          () => k.log.includes("events watch of web-1 ended: the caller went away"),
          () => `kattach log: ${k.log}`,
          WAIT,
        );

        // Bounded by time: no event in 1 s ends the watch with nothing on stdout.
        const quiet = await k.aq.aq("qmp", "events", "web-1", "--seconds", "1");
        assertEquals(quiet.code, 0, quiet.stderr);
        assertEquals(quiet.stdout, "");
      });

      await t.step("the Debug menu: query-status from the list, bad JSON, events", async () => {
        const s = new Scripted({ waitMs: 30_000 });
        const connect = () => IpcClient.connect(`${state}/run`);
        const done = runMenus(s.terminal, { connect });
        try {
          await s.waitFor("Log out");
          await s.choose("Debug");
          await s.choose("qmp  ");
          await s.waitFor("Running instance");
          await s.choose("web-1");
          await s.waitFor("QMP command of web-1");
          await s.keys("query-status");
          await s.waitFor(/❯ query-status/);
          await s.keys("\r");
          let mark = s.text.length;
          await s.waitFor("Arguments of query-status", mark - 200);
          await s.line("{bad");
          await s.waitFor("JSON-ARGS is not valid JSON", mark);
          await s.keys("\x7f\x7f\x7f\x7f"); // the bad answer stays for editing: erase it
          await s.line("");
          await s.waitFor("= qmp web-1 query-status\n", mark);
          await s.waitFor('"status": "running"', mark);
          assert(!s.text.slice(mark).includes("= qmp web-1 query-status '{bad'"));

          // Ctrl+C in the command list goes back to the page.
          mark = s.text.length;
          await s.choose("qmp  ");
          await s.choose("web-1");
          await s.waitFor("QMP command of web-1", mark);
          await s.keys("\x03");
          await s.waitFor("Cancelled.", mark);

          // Arguments that are a JSON object go along as one word.
          mark = s.text.length;
          await s.choose("qmp  ");
          await s.choose("web-1");
          await s.waitFor("QMP command of web-1", mark);
          await s.keys("qom-list");
          await s.waitFor(/❯ qom-list/, mark);
          await s.keys("\r");
          await s.waitFor("Arguments of qom-list", mark);
          await s.line('{"path":"/"}');
          await s.waitFor(`= qmp web-1 qom-list '{"path":"/"}'`, mark);
          await s.waitFor('"name": "machine"', mark);

          // Watch events for a few seconds while the guest is paused and resumed.
          mark = s.text.length;
          await s.choose("qmp events");
          await s.choose("web-1");
          await s.waitFor("Watch for how many seconds", mark);
          await s.keys("\x7f\x7f");
          await s.line("6");
          await s.waitFor("= qmp events web-1 --seconds=6", mark);
          await s.waitFor("Watching the QMP events of web-1 for 6 s", mark);
          assertEquals((await k.aq.aq("instance", "pause", "web-1")).code, 0);
          assertEquals((await k.aq.aq("instance", "resume", "web-1")).code, 0);
          await s.waitFor(/"event":"STOP"[\s\S]*"event":"RESUME"/, mark);
          await s.waitFor(/RESUME[\s\S]*❯/, mark); // the page again once the time is up

          await s.keys("\x03");
          await s.waitForSelect("KaOS");
          await s.choose("Log out");
          await done;
        } finally {
          s.terminal.close();
          await done.catch(() => {});
        }
      });

      await t.step(
        "instance console from the menus over real SSH: echo, Ctrl-], menu",
        async () => {
          const script = `${work}/login.sh`;
          await writeLoginScript(script, { port: k.port, password: DEFAULT_PASSWORD });
          const tmux = new Tmux({ name: "kaos_debug", waitMs: 60_000 });
          try {
            await tmux.start(script);
            await tmux.waitFor("New password");
            await tmux.type(NEW_PASSWORD);
            await tmux.waitFor("Retype new password");
            await tmux.type(NEW_PASSWORD);
            await tmux.waitFor("Password changed.");
            await tmux.waitFor("Log out");
            await tmux.choose("Instances");
            await tmux.choose("instance ›");
            await tmux.choose("instance console");
            await tmux.waitFor("instance (NAME)");
            await tmux.choose("web-1");
            await tmux.waitFor("Connected to the console of web-1. Detach with Ctrl-].");
            // The guest's serial tty echoes what is typed: it comes back from the guest.
            const word = `kaos-echo-${Date.now() % 100000}`;
            await tmux.keys("-l", word);
            await tmux.waitFor(word);
            await tmux.keys("Enter");
            const log = `${state}/instances/web-1/serial.log`;
            await waitFor(
              async () => (await Deno.readTextFile(log)).includes(word),
              () => `${word} in ${log}`,
              WAIT,
            );
            await tmux.keys("C-]");
            await tmux.waitFor("Detached.");
            await tmux.waitFor(/Detached\.[\s\S]*❯/); // the menu is back
            await tmux.choose("instance show");
            await tmux.choose("web-1");
            await tmux.waitFor(/QEMU pid:\s+\d+[\s\S]*Health:\s+vkaos ready/); // still running
            // One level at a time: each Ctrl-C after the page it leads to is drawn (two at once
            // are tested in cli/menus_test.ts).
            await tmux.keys("C-c");
            await tmux.waitForSelect("Instances");
            await tmux.keys("C-c");
            await tmux.waitForSelect("KaOS");
            await tmux.choose("Log out");
            await tmux.waitFor("[ssh exited 0]");
          } finally {
            await tmux.stop();
          }
        },
      );
    } finally {
      await k.stop("SIGKILL");
      await killGuests(state);
      await Deno.remove(work, { recursive: true }).catch(() => {});
    }
  },
});

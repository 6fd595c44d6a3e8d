/**
 * Entry points say what they do: main.ts' subcommands, the scripts and the benchmarks answer
 * `--help` with their usage (exit 0, nothing started) and refuse options they do not know (exit 2).
 */
import assert from "node:assert/strict";
import { REPO_ROOT } from "./_harness.ts";
import { freePort, run } from "./_util.ts";

const DENO = Deno.execPath();
const MAIN = `${REPO_ROOT}/main.ts`;
const LIMIT_MS = 60_000;

/** Every entry point: its argv and a word its usage contains. */
const entries: { argv: string[]; usage: RegExp }[] = [
  { argv: [DENO, "run", "-A", MAIN], usage: /usage: main\.ts SUBCOMMAND/ },
  { argv: [DENO, "run", "-A", MAIN, "kattach"], usage: /usage: main\.ts kattach/ },
  { argv: [DENO, "run", "-A", MAIN, "aq"], usage: /usage: main\.ts aq/ },
  { argv: [DENO, "run", "-A", MAIN, "sshd"], usage: /usage: main\.ts sshd/ },
  { argv: [DENO, "run", "-A", `${REPO_ROOT}/sshd_main.ts`], usage: /usage: main\.ts sshd/ },
  { argv: [DENO, "run", "-A", MAIN, "console"], usage: /usage: main\.ts console/ },
  { argv: [DENO, "run", "-A", `${REPO_ROOT}/console_main.ts`], usage: /usage: main\.ts console/ },
  { argv: [DENO, "run", "-A", MAIN, "appqueue"], usage: /main\.ts appqueue keygen/ },
  { argv: [DENO, "run", "-A", `${REPO_ROOT}/bench/deploy.ts`], usage: /usage: bench\/deploy/ },
  {
    argv: [DENO, "run", "-A", `${REPO_ROOT}/bench/vkaos_boot.ts`],
    usage: /usage: bench\/vkaos_boot/,
  },
  {
    argv: [DENO, "run", "-A", `${REPO_ROOT}/bench/appliance_boot.ts`],
    usage: /usage: bench\/appliance_boot/,
  },
  {
    argv: [DENO, "run", "-A", `${REPO_ROOT}/scripts/check_imports.ts`],
    usage: /usage: scripts\/check_imports/,
  },
  { argv: [`${REPO_ROOT}/scripts/test`], usage: /Runs every KaOS test/ },
  { argv: [`${REPO_ROOT}/scripts/install-deps`], usage: /Installs the Debian packages/ },
  { argv: [`${REPO_ROOT}/scripts/run-appliance`], usage: /Usage: scripts\/run-appliance/ },
  { argv: [`${REPO_ROOT}/scripts/build-vkaos-kernel`], usage: /Usage: scripts\/build-vkaos/ },
  { argv: [`${REPO_ROOT}/fixtures/build-modules`], usage: /fixtures\/build-modules \[--kernel/ },
  { argv: [`${REPO_ROOT}/buildroot/appliance/build`], usage: /Usage: buildroot\/appliance\/build/ },
  {
    argv: [`${REPO_ROOT}/buildroot/appliance/bundle-front-ends`],
    usage: /Usage: buildroot\/appliance\/bundle-front-ends/,
  },
  { argv: [`${REPO_ROOT}/buildroot/vkaos/build-initramfs`], usage: /build-initramfs OUT/ },
  {
    argv: [`${REPO_ROOT}/buildroot/vkaos/build-e2fsprogs`],
    usage: /buildroot\/vkaos\/build-e2fsprogs \[--out DIR\]/,
  },
];

// Scripts and benchmarks added later are covered too: each answers --help with some text.
const known = new Set(entries.map((e) => e.argv.at(-1)!));
for (const dir of ["scripts", "bench"]) {
  for (const e of Deno.readDirSync(`${REPO_ROOT}/${dir}`)) {
    const path = `${REPO_ROOT}/${dir}/${e.name}`;
    // deno: the runtime's own; _name.ts: a module the others import (as tests/_*.ts), no program.
    if (!e.isFile || known.has(path) || e.name === "deno" || e.name.startsWith("_")) continue;
    if (e.name.endsWith(".ts")) entries.push({ argv: [DENO, "run", "-A", path], usage: /\S/ });
    else if ((Deno.statSync(path).mode ?? 0) & 0o111) entries.push({ argv: [path], usage: /\S/ });
  }
}

const name = (argv: string[]) => argv.at(-1)!.replace(REPO_ROOT + "/", "");

Deno.test("entry points: --help prints the usage and exits 0; an unknown option exits 2", async () => {
  const failures: string[] = [];
  // Two at a time: the machine is shared.
  for (let i = 0; i < entries.length; i += 2) {
    await Promise.all(
      entries.slice(i, i + 2).map(async ({ argv, usage }) => {
        const help = await run([...argv, "--help"], { timeoutMs: LIMIT_MS });
        if (help.code !== 0 || !usage.test(help.stdout)) {
          failures.push(
            `${name(argv)} --help: exit ${help.code}, stdout ${help.stdout}${help.stderr}`,
          );
        }
        const bad = await run([...argv, "--no-such-option"], { timeoutMs: LIMIT_MS });
        if (bad.code !== 2 || !/no-such-option/.test(bad.stderr)) {
          failures.push(`${name(argv)} --no-such-option: exit ${bad.code}, stderr ${bad.stderr}`);
        }
      }),
    );
  }
  assert.deepEqual(failures, []);
});

Deno.test("kattach --help and a mistyped option start nothing", async () => {
  const dir = await Deno.makeTempDir({ prefix: "kaos-entry-" });
  try {
    const state = `${dir}/state`;
    for (const extra of [["--help"], ["--hostd"], ["--ssh-port", "http"], ["extra-word"]]) {
      const r = await run([DENO, "run", "-A", MAIN, "kattach", "--state", state, ...extra], {
        timeoutMs: LIMIT_MS,
      });
      assert.equal(r.code, extra[0] === "--help" ? 0 : 2, `${extra.join(" ")}: ${r.stderr}`);
      assert.doesNotMatch(r.stderr, /kattach: ready|listening/, extra.join(" "));
      // kattach creates its state directory as its first phase: it never got that far.
      assert.equal(await Deno.stat(state).then(() => true, () => false), false, extra.join(" "));
    }
    const aq = await run([DENO, "run", "-A", MAIN, "aq", "--state", state, "--bogus", "x"], {
      timeoutMs: LIMIT_MS,
    });
    assert.equal(aq.code, 2);
    assert.match(aq.stderr, /Unknown option '--bogus'/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("run-appliance refuses a --port or --forward host port in use, before it builds", async () => {
  const taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (taken.addr as Deno.NetAddr).port;
  const dir = await Deno.makeTempDir({ prefix: "kaos-entry-" });
  try {
    const script = `${REPO_ROOT}/scripts/run-appliance`;
    // Stick and disk in a directory of the test's own: nothing may be written there.
    const own = ["--no-build", "--stick", `${dir}/stick.img`, "--disk", `${dir}/disk.img`];
    const free = freePort();
    const cases: [string[], RegExp][] = [
      [["--port", String(port)], new RegExp(`127\\.0\\.0\\.1:${port} is already in use`)],
      [
        ["--port", String(free), "--forward", `${port}:8080`],
        new RegExp(`--forward ${port}:8080: 127\\.0\\.0\\.1:${port} is already in use`),
      ],
    ];
    for (const [args, message] of cases) {
      const r = await run([script, ...own, ...args], { timeoutMs: LIMIT_MS });
      assert.equal(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
      assert.match(r.stderr, message);
      assert.deepEqual([...Deno.readDirSync(dir)], [], "nothing written");
    }
  } finally {
    taken.close();
    await Deno.remove(dir, { recursive: true });
  }
});

/**
 * Integration-test harness: starts a real hosted kattach as a child process with its own state
 * directory and drives it with the real `aq` command.
 */
import { kattachArgv } from "../lib/hosted_kattach.ts";
import { pathExists, run, type RunResult, withDeadline } from "./_util.ts";

const ROOT = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
const DENO = Deno.execPath();

/** The repository's root directory. */
export const REPO_ROOT = ROOT;
/** Where `fixtures/build-modules` puts the fixture modules. */
export const FIXTURES_OUT = `${ROOT}/fixtures/out`;

/** Builds the fixture modules (cached by the script: quick when up to date). */
export async function buildFixtures(): Promise<void> {
  const out = await run([`${ROOT}/fixtures/build-modules`], { timeoutMs: BUILD_FIXTURES_MS });
  if (out.code !== 0) throw new Error(`fixtures/build-modules failed:\n${out.stderr}`);
}

/** Copies a built fixture module's directory to `to`/`name`, editing its appmgr.aq. */
export async function moduleCopy(
  name: string,
  to: string,
  edit: (appmgr: Record<string, unknown>) => void,
): Promise<string> {
  const dir = `${to}/${name}`;
  await Deno.mkdir(dir, { recursive: true });
  for (const e of Deno.readDirSync(`${FIXTURES_OUT}/${name}`)) {
    if (e.isFile) await Deno.copyFile(`${FIXTURES_OUT}/${name}/${e.name}`, `${dir}/${e.name}`);
  }
  const appmgr = JSON.parse(await Deno.readTextFile(`${dir}/appmgr.aq`));
  edit(appmgr);
  await Deno.writeTextFile(`${dir}/appmgr.aq`, JSON.stringify(appmgr, null, 2) + "\n");
  return dir;
}

/** The longest a fixture build may take (a cold build on 2 busy cores is a few minutes). */
const BUILD_FIXTURES_MS = 20 * 60_000;
/** The longest an `aq` command may take (deploy --wait waits for readiness, up to 120 s). */
export const AQ_TIMEOUT_MS = 300_000;
/** How long kattach has to exit after a signal before it gets SIGKILL. */
const EXIT_MS = 30_000;

/** What a finished `aq` run left behind. */
export type AqResult = RunResult;

/** A kattach started for a test. */
/** How {@linkcode TestKattach} runs kattach. */
export interface TestKattachOptions {
  /** Runs kattach through this argv prefix, e.g. `["ip", "netns", "exec", NS]`. */
  wrap?: string[];
  /** Port of the supervised sshd (default 0: none). */
  sshPort?: number;
  /** `--network bridged`: kattach manages the links and firewall (inside `wrap`'s namespace). */
  network?: "bridged";
  /** Added to kattach's environment. */
  env?: Record<string, string>;
  /** More `kattach` options (e.g. `--storage-disks /dev/loop5`). */
  args?: string[];
}

export class TestKattach {
  readonly stateDir: string;
  readonly #options: TestKattachOptions;
  #child: Deno.ChildProcess | undefined;
  #log: string[] = [];
  #logDone: Promise<void> = Promise.resolve();
  #env: Record<string, string>;

  constructor(stateDir: string, options: TestKattachOptions = {}) {
    this.stateDir = stateDir;
    this.#options = options;
    this.#env = options.env ?? {};
  }

  /**
   * Creates a fresh state directory and starts kattach on it; `options.env` adds to its
   * environment (e.g. DENO_CERT for a test CA).
   */
  static async start(stateDir?: string, options: TestKattachOptions = {}): Promise<TestKattach> {
    const k = new TestKattach(
      stateDir ?? await Deno.makeTempDir({ prefix: "kaos-test-" }),
      options,
    );
    await k.restart();
    return k;
  }

  /** The kattach log so far. */
  get log(): string {
    return this.#log.join("");
  }

  /** The running child's pid. */
  get pid(): number {
    if (!this.#child) throw new Error("kattach is not running");
    return this.#child.pid;
  }

  /** Starts kattach (again) on the same state directory and waits until it is ready. */
  async restart(): Promise<void> {
    if (this.#child) throw new Error("kattach is still running");
    const { wrap = [], sshPort = 0, network } = this.#options;
    const argv = [
      ...wrap,
      // No sshd by default: tests that want one ask (or start kattach themselves).
      ...kattachArgv({ state: this.stateDir, sshPort, network, args: this.#options.args }),
    ];
    const child = new Deno.Command(argv[0], {
      args: argv.slice(1),
      env: this.#env,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.#child = child;
    let ready!: () => void;
    const readyP = new Promise<void>((r) => ready = r);
    const from = this.log.length; // only this run's output counts
    const pump = async (stream: ReadableStream<Uint8Array>) => {
      for await (const text of stream.pipeThrough(new TextDecoderStream())) {
        this.#log.push(text);
        if (this.log.slice(from).includes("kattach: ready")) ready();
      }
    };
    this.#logDone = Promise.all([pump(child.stdout), pump(child.stderr)]).then(() => {});
    // A kattach that exits before it is ready says why on stderr: read it all before failing.
    const exited = child.status.then(async (status) => {
      await withDeadline(this.#logDone, EXIT_MS, "kattach's output to end").catch(() => {});
      this.#child = undefined;
      const how = status.signal ? `signal ${status.signal}` : `code ${status.code}`;
      throw new Error(
        `kattach exited (${how}) before it was ready; its output:\n${this.log.slice(from)}`,
      );
    });
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () =>
          reject(
            new Error(`kattach was not ready after 30 s; its output:\n${this.log.slice(from)}`),
          ),
        30_000,
      );
    });
    try {
      await Promise.race([readyP, exited, late]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Imports built fixture modules (`fixtures/out/NAME`, vKaOS first), failing on a refusal. */
  async importFixtures(...names: string[]): Promise<void> {
    for (const name of names) {
      const r = await this.aq("module", "import", `${FIXTURES_OUT}/${name}`);
      if (r.code !== 0) throw new Error(`module import ${name} failed (${r.code}): ${r.stderr}`);
    }
  }

  /** Runs `aq ARGS…` against this kattach. */
  async aq(...args: string[]): Promise<AqResult> {
    return await run([
      DENO,
      "run",
      "-A",
      `${ROOT}/main.ts`,
      "aq",
      "--state",
      this.stateDir,
      ...args,
    ], { timeoutMs: AQ_TIMEOUT_MS });
  }

  /** Runs `aq ARGS… --json`, asserts success and returns the parsed output. */
  async json<T = unknown>(...args: string[]): Promise<T> {
    const r = await this.aq(...args, "--json");
    if (r.code !== 0) throw new Error(`aq ${args.join(" ")} failed (${r.code}): ${r.stderr}`);
    return JSON.parse(r.stdout) as T;
  }

  /** Sends a signal and waits for kattach to exit. */
  async stop(signal: Deno.Signal = "SIGTERM"): Promise<void> {
    const child = this.#child;
    if (!child) return;
    try {
      child.kill(signal);
    } catch { /* already gone */ }
    await exitOrKill(child, `kattach (pid ${child.pid}) to exit after ${signal}`);
    await withDeadline(this.#logDone, EXIT_MS, `kattach's output to end`);
    this.#child = undefined;
  }

  /** Stops kattach, kills every guest it started (by pidfile) and removes the state directory. */
  async dispose(): Promise<void> {
    await this.stop("SIGKILL");
    await killGuests(this.stateDir);
    await Deno.remove(this.stateDir, { recursive: true }).catch(() => {});
  }
}

/**
 * Kills the QEMU of every instance under a state directory (`instances/<name>/qemu.pid`, and
 * `storage/<storage>/instances/<name>/qemu.pid` for instances on guest storage).
 */
export async function killGuests(stateDir: string): Promise<void> {
  const roots = [stateDir];
  for (const s of await Array.fromAsync(Deno.readDir(`${stateDir}/storage`)).catch(() => [])) {
    roots.push(`${stateDir}/storage/${s.name}`);
  }
  const pidfiles: string[] = [];
  for (const root of roots) {
    for (const d of await Array.fromAsync(Deno.readDir(`${root}/instances`)).catch(() => [])) {
      pidfiles.push(`${root}/instances/${d.name}/qemu.pid`);
    }
  }
  for (const pidfile of pidfiles) {
    const text = await Deno.readTextFile(pidfile).catch(() => "");
    const pid = Number(text.trim());
    if (!Number.isInteger(pid) || pid <= 1) continue;
    try {
      Deno.kill(pid, "SIGKILL");
    } catch { /* already gone */ }
  }
}

/**
 * Waits for a child to exit; after {@linkcode EXIT_MS} kills it (SIGKILL) and fails saying what
 * it waited for.
 */
export async function exitOrKill(child: Deno.ChildProcess, what: string): Promise<void> {
  try {
    await withDeadline(child.status, EXIT_MS, what);
  } catch (err) {
    try {
      child.kill("SIGKILL");
    } catch { /* gone */ }
    await withDeadline(child.status, 10_000, `${what} (after SIGKILL)`);
    throw err;
  }
}

/** A `qemu-system-x86_64` of a test's own (see {@linkcode qemuGate}). */
export interface QemuGate {
  /** The gate's directory (mode 0777); the script is `bin/qemu-system-x86_64` in it. */
  dir: string;
  /** PATH as it was: the test puts `${dir}/bin:${path}` in its place, and this back after. */
  path: string;
}

/**
 * Makes a directory (prefix `prefix`) whose bin/qemu-system-x86_64 is the shell script
 * `script(dir, realQemu)` (`realQemu`: the first qemu-system-x86_64 on PATH), for a test that
 * puts it first on PATH to hold or refuse QEMU's start deterministically. The directory is open to
 * all: QEMU runs as kaos-qemu when the test is root.
 */
export async function qemuGate(
  prefix: string,
  script: (dir: string, realQemu: string) => string,
): Promise<QemuGate> {
  const path = Deno.env.get("PATH") ?? "/usr/bin:/bin";
  const realQemu = path.split(":").map((d) => `${d}/qemu-system-x86_64`).find(pathExists);
  if (!realQemu) throw new Error("no qemu-system-x86_64 on PATH");
  const dir = await Deno.makeTempDir({ prefix });
  await Deno.chmod(dir, 0o777);
  await Deno.mkdir(`${dir}/bin`, { mode: 0o755 });
  await Deno.writeTextFile(`${dir}/bin/qemu-system-x86_64`, script(dir, realQemu));
  await Deno.chmod(`${dir}/bin/qemu-system-x86_64`, 0o755);
  return { dir, path };
}

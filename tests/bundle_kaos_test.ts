/**
 * buildroot/appliance/bundle_kaos (issue 13: memory): kaos.js split at main.ts' dynamic imports.
 * Checks what it makes: every import names a file it made; what kattach loads at its start
 * (kaos.js and the static imports of its pid1 and boot chunks) holds no SSH server code and
 * imports no Node module beyond node:buffer, node:path, node:sqlite and node:util (node:module and
 * node:crypto cost about 6 and 5 MiB of RSS at every start); no dynamic import names a string
 * literal (Deno reads those chunks at the start, loaded or not); and kattach runs from it (hosted,
 * its IPC answered by `aq` from the same bundle, a chunk loaded at its dynamic import).
 */
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { REPO_ROOT } from "./_harness.ts";
import { run, waitFor } from "./_util.ts";

/**
 * The Node modules kattach's start may import; another one costs RSS at every start: node:util,
 * node:path or node:buffer loads Deno's Node layer (kattach without them: 0.75 MiB less RSS, 0.4
 * MiB less heap; lib/cli_args.ts parses options itself, kattach/boot.ts has absolutePath(), auth
 * takes Buffer at first use), node:crypto about 5 MiB, node:module about 6.
 */
const KATTACH_NODE_IMPORTS = ["node:sqlite"];

/** Static imports (`from"x"`, `import"x"`) of a bundle file: relative paths and node: modules. */
function staticImports(js: string): string[] {
  return [...js.matchAll(/\b(?:from|import)\s*"(\.\.?\/[^"]+|node:[^"]+)"/g)].map((m) => m[1]);
}

Deno.test("bundle_kaos: kattach's chunks load no SSH server, no node:module or node:crypto; kattach runs from it", async () => {
  const dir = await Deno.makeTempDir({ prefix: "kaos-bundle-test-" });
  let kattach: Deno.ChildProcess | undefined;
  try {
    const made = await run([`${REPO_ROOT}/buildroot/appliance/bundle_kaos`, `${dir}/kaos.js`]);
    assertEquals(made.code, 0, made.stderr);
    const read = (rel: string) => Deno.readTextFileSync(`${dir}/${rel}`);
    const resolve = (from: string, spec: string) =>
      new URL(spec, `file:///${from}`).pathname.slice(1);

    // Every relative import, static or dynamic, of every file names a file that was made.
    const files = [
      "kaos.js",
      ...[...Deno.readDirSync(`${dir}/kaos.d`)].map((e) => `kaos.d/${e.name}`),
    ];
    for (const f of files) {
      for (const m of read(f).matchAll(/\b(?:from|import)\s*\(?\s*\[?"(\.\.?\/[^"]+)"/g)) {
        assert(files.includes(resolve(f, m[1])), `${f} imports ${m[1]}, which was not made`);
      }
    }

    // No dynamic import names a string literal: Deno would read every such chunk (the console's,
    // the SSH server's) into its module graph at kattach's start, loaded or not (1.0 MiB RSS).
    for (const f of files) {
      const literal = read(f).match(/\bimport\(\s*["'`][^)]*\)/);
      assert(literal === null, `${f} has a dynamic import of a string literal: ${literal?.[0]}`);
    }

    // What kattach loads at its start: kaos.js, its pid1 (appliance) and boot (hosted) chunks,
    // and everything those import statically.
    const entries = [
      ...read("kaos.js").matchAll(/import\(\["(\.\/kaos\.d\/(?:pid1|boot)-[^"]+)"\]\[0\]\)/g),
    ]
      .map((m) => resolve("kaos.js", m[1]));
    assertEquals(entries.length, 2, "kaos.js should import a pid1 and a boot chunk");
    const loaded = new Set<string>();
    const nodeImports = new Set<string>();
    const todo = ["kaos.js", ...entries];
    while (todo.length > 0) {
      const f = todo.pop()!;
      if (loaded.has(f)) continue;
      loaded.add(f);
      for (const spec of staticImports(read(f))) {
        if (spec.startsWith("node:")) nodeImports.add(spec);
        else todo.push(resolve(f, spec));
      }
    }
    assertEquals([...nodeImports].sort(), KATTACH_NODE_IMPORTS);
    const text = [...loaded].map(read).join("\n");
    assert(!text.includes("curve25519-sha256@libssh.org"), "kattach's chunks hold ssh2's code");
    assert(!text.includes("@inquirer"), "kattach's chunks hold the prompts' code");
    const all = files.map(read).join("\n");
    assert(all.includes("curve25519-sha256@libssh.org"), "the console's chunks lost ssh2");
    assert(text.length < all.length / 2, `kattach loads ${text.length} of ${all.length} bytes`);
    assert(!/[\u0080-\uffff]/.test(all), "the bundle is not ASCII only");

    // kattach runs from it, and `aq` from the same bundle gets an answer over its IPC.
    const state = `${dir}/state`;
    await Deno.mkdir(state);
    kattach = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "--no-config", `${dir}/kaos.js`, "kattach", "--hosted", "--state", state],
      env: { KAOS_SSH_PORT: "0" },
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    let log = "";
    const reading = (async () => {
      for await (const c of kattach.stderr.pipeThrough(new TextDecoderStream())) log += c;
    })();
    await waitFor(
      () => log.includes("kattach: ready"),
      () => `kattach from the bundle to be ready; its log:\n${log}`,
      { timeoutMs: 60_000 },
    );
    const status = await run([
      Deno.execPath(),
      ...["run", "-A", "--no-config", `${dir}/kaos.js`, "aq", "--state", state, "system", "status"],
    ]);
    assertEquals(status.code, 0, status.stdout + status.stderr);
    assert(/^KaOS:\s+\S+ \(hosted\)/m.test(status.stdout), status.stdout);
    kattach.kill("SIGTERM");
    assertEquals((await kattach.status).code, 0, log);
    await reading;
    kattach = undefined;
  } finally {
    if (kattach) {
      kattach.kill("SIGKILL");
      await kattach.status;
    }
    await Deno.remove(dir, { recursive: true });
  }
});

/**
 * Checks that imports point one way (STYLE rule 3):
 * main → cli → ipc ← kattach → {appqueue, vmimage, netmgr} → host → lib.
 * Also refuses any import circle between files (type-only imports count too; tests aside).
 * Prints each import that breaks a rule and each circle, and exits 1 if there is one.
 */
import { parseCliOrExit } from "../lib/cli_args.ts";

parseCliOrExit(Deno.args, {
  usage:
    "usage: scripts/check_imports.ts\n  Checks that imports point one way; prints each that does not and exits 1.",
  options: {},
});

const allowed: Record<string, string[]> = {
  lib: [],
  host: ["lib"],
  netmgr: ["host", "lib"],
  appqueue: ["host", "lib"],
  vmimage: ["host", "lib"],
  ipc: ["appqueue", "lib"],
  cli: ["ipc", "lib"],
  kattach: ["ipc", "appqueue", "vmimage", "netmgr", "host", "lib"],
};
const root = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
const problems: string[] = [];

async function* tsFiles(dir: string): AsyncGenerator<string> {
  const entries = await Array.fromAsync(Deno.readDir(dir)).catch(() => []);
  for (const e of entries) {
    const path = `${dir}/${e.name}`;
    if (e.isDirectory && !e.name.startsWith(".")) yield* tsFiles(path);
    else if (e.isFile && e.name.endsWith(".ts")) yield path;
  }
}

/** Imports between the project's non-test files, file to files (paths relative to the root). */
const graph = new Map<string, Set<string>>();

for (const folder of Object.keys(allowed)) {
  for await (const file of tsFiles(`${root}/${folder}`)) {
    const text = await Deno.readTextFile(file);
    const isTest = file.endsWith("_test.ts") || file.includes("/_fake") ||
      file.includes("test_util");
    const from = file.slice(root.length + 1);
    if (!isTest) graph.set(from, graph.get(from) ?? new Set());
    for (const m of text.matchAll(/(?:from|import)\s*\(?\s*"(\.{1,2}\/[^"]+)"/g)) {
      const target = new URL(m[1], `file://${file}`).pathname;
      const rel = target.slice(root.length + 1);
      if (!isTest) graph.get(from)!.add(rel);
      const top = rel.includes("/") ? rel.split("/")[0] : rel;
      if (top === folder) continue;
      if (["tests", "fixtures"].includes(top) && !isTest) {
        problems.push(`${file.slice(root.length + 1)}: imports ${rel} (nothing imports ${top}/)`);
      } else if (
        !allowed[folder].includes(top) && !(isTest && ["tests", "fixtures"].includes(top))
      ) {
        problems.push(`${file.slice(root.length + 1)}: ${folder} must not import ${rel}`);
      } else if (rel.split("/").pop()!.startsWith("_") && top !== folder && !isTest) {
        problems.push(`${file.slice(root.length + 1)}: imports private ${rel}`);
      }
    }
  }
}
// Circles: strongly connected components of the import graph (Tarjan), each printed once.
{
  let counter = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const strongConnect = (v: string) => {
    index.set(v, counter);
    low.set(v, counter++);
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!graph.has(w)) continue;
      if (!index.has(w)) {
        strongConnect(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) {
        low.set(v, Math.min(low.get(v)!, index.get(w)!));
      }
    }
    if (low.get(v) === index.get(v)) {
      const component: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        component.push(w);
      } while (w !== v);
      if (component.length > 1 || graph.get(v)!.has(v)) {
        problems.push(`import circle: ${component.sort().join(" <-> ")}`);
      }
    }
  };
  for (const v of [...graph.keys()].sort()) if (!index.has(v)) strongConnect(v);
}

if (problems.length > 0) {
  console.error(problems.join("\n"));
  Deno.exit(1);
}
console.log("imports point one way, no circles");

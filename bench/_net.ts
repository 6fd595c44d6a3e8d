/**
 * What the host-network benches share (bench/network.ts, bench/instance_del.ts): medians and
 * alternating rounds, a command run bare, a namespace emptied gently, and a store holding a large
 * synthetic host.
 */
import { realNetlink } from "../host/mod.ts";
import { readHostState } from "../kattach/network.ts";
import { Store } from "../kattach/store.ts";
import { renderBatch, syntheticFirewall } from "../netmgr/mod.ts";

/** The median of `xs` (the upper one of an even count). */
export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

/** How long `fn` took, in ms. */
export async function timed(fn: () => Promise<unknown> | unknown): Promise<number> {
  const t = performance.now();
  await fn();
  return performance.now() - t;
}

/** The median time of `n` runs of `fn`, in ms. */
export async function times(n: number, fn: () => Promise<unknown> | unknown): Promise<number> {
  const xs: number[] = [];
  for (let i = 0; i < n; i++) xs.push(await timed(fn));
  return median(xs);
}

/** Runs each function once per round, in turn, for `n` rounds; the median of each. */
export async function alternating<K extends string>(
  n: number,
  fns: Record<K, () => Promise<unknown> | unknown>,
): Promise<Record<K, number>> {
  const xs = Object.fromEntries(Object.keys(fns).map((key) => [key, [] as number[]]));
  for (let i = 0; i < n; i++) {
    for (const [key, fn] of Object.entries(fns)) {
      xs[key].push(await timed(fn as () => unknown));
    }
  }
  return Object.fromEntries(Object.entries(xs).map(([key, v]) => [key, median(v)])) as Record<
    K,
    number
  >;
}

/** Runs `argv` (stdin: `stdin`, if given); throws with its stderr when it fails. */
export async function sh(argv: string[], stdin?: string): Promise<void> {
  const child = new Deno.Command(argv[0], {
    args: argv.slice(1),
    stdin: stdin === undefined ? "null" : "piped",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  if (stdin !== undefined) {
    const w = child.stdin.getWriter();
    await w.write(new TextEncoder().encode(stdin));
    await w.close();
  }
  const out = await child.output();
  if (out.code !== 0) {
    throw new Error(`${argv.join(" ")}: ${new TextDecoder().decode(out.stderr).slice(0, 500)}`);
  }
}

/**
 * Deletes the links of namespace `ns` one `ip` request at a time (taps first), in batches.
 * Deleting a namespace that still holds 5,000 links makes the kernel tear them all down under
 * one hold of the rtnl lock, and every `ip` command on the machine (other tests' included)
 * waited for minutes; one request per link lets them in between.
 */
export async function emptyNamespace(ns: string): Promise<void> {
  const names = [...(await readHostState(realNetlink({ netns: ns }))).links.keys()]
    .filter((n) => n !== "lo")
    .sort((a, b) => Number(b.startsWith("kt")) - Number(a.startsWith("kt")));
  for (let i = 0; i < names.length; i += 250) {
    const lines = names.slice(i, i + 250).map((n) => `link del dev ${n}`);
    // (a tap goes with its bridge's deletion only if listed first: taps are, so no line fails)
    await sh(["ip", "-n", ns, "-force", "-batch", "-"], renderBatch(lines)).catch((err) =>
      console.error(`bench: emptying ${ns}: ${err instanceof Error ? err.message : err}`)
    );
  }
}

/**
 * A store holding a synthetic host (netmgr's syntheticFirewall): `vlans` VLANs and `nics`
 * stopped instances `bench-1`…, one NIC on a VLAN each, of the VM image `bench`.
 */
export function bigStore(path: string, size: { vlans: number; nics: number }): Store {
  const store = Store.open(path);
  const input = syntheticFirewall(size.vlans, size.nics);
  store.tx(() => {
    for (const v of input.vlans) {
      const base = v.cidr.replace(/\.0\/22$/, "");
      store.insertVlan({
        id: v.id,
        name: `v${v.id}`,
        cidr: v.cidr,
        gateway: v.gateway,
        poolStart: `${base}.2`,
        poolEnd: `${base.replace(/\.(\d+)$/, (_, x) => `.${Number(x) + 3}`)}.254`,
        uplink: "none",
        nat: v.nat,
        isolate: v.isolate,
      });
    }
    store.insertVmImage({
      name: "bench",
      modules: [],
      configGroups: [],
      vlans: [],
      memoryMiB: 64,
      cpus: 1,
    });
    input.ports.forEach((p, n) =>
      store.insertInstance({
        name: `bench-${n + 1}`,
        vmimage: "bench",
        state: "stopped",
        autostart: false,
        restartPolicy: "never",
        nics: [{ index: 0, vlan: p.vlan, mac: p.mac, ip: p.ip }],
      })
    );
  });
  return store;
}

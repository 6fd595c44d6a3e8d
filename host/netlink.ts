/**
 * The network host interface: read the links, bridge ports and IPv4 addresses (in-process
 * through rtnetlink, host/rtnetlink.ts, or through `ip -j` / `bridge -j`), apply one `ip -batch`,
 * write a sysctl. kattach reconciles through it; unit tests use {@linkcode FakeNetlink}
 * (host/netlink_fake.ts) instead. Needs full iproute2: busybox `ip` has no `-j` or `-batch`.
 */
import { dumpLinks, LinkCache, type LinkDump, rtnetlinkUnavailable } from "./rtnetlink.ts";
import { type CommandResult, spawnOwned } from "./run.ts";

/** The side effects of host networking. */
export interface Netlink {
  /**
   * How this host reads its links: `rtnetlink` (one in-process dump per read), `rtnetlink,
   * cached` (a {@linkcode LinkCache} kept current by notifications) or `ip -j` with the reason
   * the in-process reader cannot be used.
   */
  readonly reader: string;
  /**
   * The links and IPv4 addresses as rtnetlink reports them (a fresh dump, or the cache brought
   * up to date); null when this host reads through `ip -j` only (see
   * {@linkcode Netlink.reader}). Throws when the read fails.
   */
  dump(): Promise<LinkDump | null>;
  /** Releases the cache's notification socket, if any (a later read opens it again). */
  close(): void;
  /** The JSON of `ip -j link show`. */
  links(): Promise<string>;
  /** The JSON of `ip -j -br -4 addr show`. */
  addresses(): Promise<string>;
  /** The JSON of `bridge -j -d link show` (bridge ports with their flags). */
  ports(): Promise<string>;
  /** The JSON of `ip -j -d link show type vlan`. */
  vlans(): Promise<string>;
  /** Runs `ip -force -batch -` with this text; code 0 when every line succeeded. */
  applyBatch(text: string): Promise<CommandResult>;
  /** Writes `value` to /proc/sys/<key with dots as slashes>. */
  writeSysctl(key: string, value: string): Promise<void>;
  /** True when /dev/vhost-net exists (QEMU then gets `vhost=on`). */
  vhostNet(): boolean;
  /**
   * The kernel's traffic counters of one link as the link sees them (`rx`: what reached the
   * host through it; for a tap, what its guest sent), from /sys/class/net/NAME/statistics; null
   * when there is no such link.
   */
  counters(name: string): Promise<LinkCounters | null>;
}

/** A link's traffic counters, as the kernel keeps them. */
export interface LinkCounters {
  rxBytes: number;
  rxPackets: number;
  txBytes: number;
  txPackets: number;
}

/** The longest a Linux link name is (IFNAMSIZ - 1). */
const LINK_NAME = /^[A-Za-z0-9_.:-]{1,15}$/;

/**
 * The counters of a link in this process' network namespace, read from sysfs (no process
 * spawned); null when there is no such link. Throws on a name that is not a link name.
 */
export async function sysfsCounters(
  name: string,
  sysClassNet = "/sys/class/net",
): Promise<LinkCounters | null> {
  if (!LINK_NAME.test(name) || name === "." || name === "..") {
    throw new TypeError(`not a link name: ${JSON.stringify(name)}`);
  }
  const dir = `${sysClassNet}/${name}/statistics`;
  const read = async (f: string) => Number((await Deno.readTextFile(`${dir}/${f}`)).trim());
  try {
    const [rxBytes, rxPackets, txBytes, txPackets] = await Promise.all(
      ["rx_bytes", "rx_packets", "tx_bytes", "tx_packets"].map(read),
    );
    return { rxBytes, rxPackets, txBytes, txPackets };
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return null;
    throw err;
  }
}

/** The counters of a link in a named namespace, from `ip -n NS -j -s link show dev NAME`. */
async function ipCounters(ip: string, netns: string, name: string): Promise<LinkCounters | null> {
  if (!LINK_NAME.test(name)) throw new TypeError(`not a link name: ${JSON.stringify(name)}`);
  const r = await runWithInput(ip, ["-n", netns, "-j", "-s", "link", "show", "dev", name], null);
  if (r.code !== 0) {
    if (/does not exist|Cannot find device/.test(r.stderr)) return null;
    throw new Error(`ip -n ${netns} -j -s link show dev ${name} exited ${r.code}: ${r.stderr}`);
  }
  const [link] = JSON.parse(r.stdout) as {
    stats64?: { rx: { bytes: number; packets: number }; tx: { bytes: number; packets: number } };
  }[];
  const st = link?.stats64;
  if (!st) throw new Error(`ip -j -s link show dev ${name}: no stats64 in its answer`);
  return {
    rxBytes: st.rx.bytes,
    rxPackets: st.rx.packets,
    txBytes: st.tx.bytes,
    txPackets: st.tx.packets,
  };
}

/** Options of the real {@linkcode Netlink}. */
export interface RealNetlinkOptions {
  /** Work in this named network namespace (`ip -n`, `bridge -n`; tests and benchmarks). */
  netns?: string;
  /** Where /proc/sys is; default "/proc/sys". */
  procSys?: string;
  /**
   * `auto` (default): the in-process rtnetlink reader when FFI is allowed and libc opens, else
   * `ip -j`; `ip`: always `ip -j` (the benchmark's baseline).
   */
  reader?: "auto" | "ip";
  /**
   * Keep the links in a {@linkcode LinkCache} (one dump, then notifications) instead of dumping
   * at every read; kattach does. Only with the in-process reader.
   */
  cache?: boolean;
}

/** The real host: iproute2 and /proc/sys. */
export function realNetlink(options: RealNetlinkOptions = {}): Netlink {
  const pre = options.netns ? ["-n", options.netns] : [];
  const ip = "ip";
  const procSys = options.procSys ?? "/proc/sys";
  const why = options.reader === "ip" ? "asked for" : rtnetlinkUnavailable();
  const cache = why === null && options.cache ? new LinkCache({ netns: options.netns }) : null;
  return {
    reader: why !== null
      ? `ip -j (in-process rtnetlink not used: ${why})`
      : cache
      ? "rtnetlink, cached (kept current by link notifications)"
      : "rtnetlink",
    // deno-lint-ignore require-await
    async dump() {
      if (why !== null) return null;
      return cache ? cache.read() : dumpLinks({ netns: options.netns });
    },
    close: () => cache?.close(),
    links: () => readJson(ip, [...pre, "-j", "link", "show"]),
    addresses: () => readJson(ip, [...pre, "-j", "-br", "-4", "addr", "show"]),
    ports: () => readJson("bridge", [...pre, "-j", "-d", "link", "show"]),
    vlans: () => readJson(ip, [...pre, "-j", "-d", "link", "show", "type", "vlan"]),
    applyBatch: (text) => runWithInput(ip, [...pre, "-force", "-batch", "-"], text),
    async writeSysctl(key, value) {
      if (!/^[a-z0-9_.-]+$/i.test(key) || key.includes("..")) {
        throw new TypeError(`not a sysctl key: ${key}`);
      }
      await Deno.writeTextFile(`${procSys}/${key.replaceAll(".", "/")}`, value);
    },
    // kattach runs in the host's namespace and reads sysfs; a named namespace (benchmarks) asks ip.
    counters: (name) => options.netns ? ipCounters(ip, options.netns, name) : sysfsCounters(name),
    vhostNet() {
      try {
        Deno.statSync("/dev/vhost-net");
        return true;
      } catch {
        return false;
      }
    },
  };
}

async function readJson(ip: string, args: string[]): Promise<string> {
  let r: CommandResult | undefined;
  // As PID 1, kattach's orphan reaper may take the exit status of a read that stayed a zombie
  // across two of its scans (a loaded machine): Deno then fails with ECHILD. A read has no
  // effect, so it is simply run again.
  for (let attempt = 1; !r; attempt++) {
    try {
      r = await runWithInput(ip, args, null);
    } catch (err) {
      if (attempt >= 3 || !/os error 10\b/.test(String(err))) throw err;
    }
  }
  if (r.code !== 0) {
    throw new Error(`${ip} ${args.join(" ")} exited ${r.code}: ${r.stderr.trim()}`);
  }
  return r.stdout;
}

async function runWithInput(
  cmd: string,
  args: string[],
  input: string | null,
): Promise<CommandResult> {
  let child: Deno.ChildProcess;
  try {
    child = spawnOwned(cmd, {
      args,
      stdin: input === null ? "null" : "piped",
      stdout: "piped",
      stderr: "piped",
    });
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) {
      return { code: 127, stdout: "", stderr: `${cmd}: not found` };
    }
    throw err;
  }
  if (input !== null) {
    const w = child.stdin.getWriter();
    await w.write(new TextEncoder().encode(input));
    await w.close();
  }
  const out = await child.output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

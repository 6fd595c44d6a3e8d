/**
 * The network host interface: read the links, bridge ports and IPv4 addresses (in-process
 * through rtnetlink, host/rtnetlink.ts, or through `ip -j` / `bridge -j`), apply one `ip -batch`,
 * write a sysctl. kattach reconciles through it; unit tests use {@linkcode FakeNetlink}
 * (host/netlink_fake.ts) instead. Needs full iproute2: busybox `ip` has no `-j` or `-batch`.
 */
import { dumpLinks, type LinkDump, rtnetlinkUnavailable } from "./rtnetlink.ts";
import { type CommandResult, spawnOwned } from "./run.ts";

/** The side effects of host networking. */
export interface Netlink {
  /**
   * How this host reads its links: `rtnetlink` (one in-process dump) or `ip -j` with the reason
   * the in-process reader cannot be used.
   */
  readonly reader: string;
  /**
   * The links and IPv4 addresses from one in-process rtnetlink dump; null when this host reads
   * through `ip -j` only (see {@linkcode Netlink.reader}). Throws when the dump fails.
   */
  dump(): Promise<LinkDump | null>;
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
}

/** The real host: iproute2 and /proc/sys. */
export function realNetlink(options: RealNetlinkOptions = {}): Netlink {
  const pre = options.netns ? ["-n", options.netns] : [];
  const ip = "ip";
  const procSys = options.procSys ?? "/proc/sys";
  const why = options.reader === "ip" ? "asked for" : rtnetlinkUnavailable();
  return {
    reader: why === null ? "rtnetlink" : `ip -j (in-process rtnetlink not used: ${why})`,
    // deno-lint-ignore require-await
    async dump() {
      return why === null ? dumpLinks({ netns: options.netns }) : null;
    },
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

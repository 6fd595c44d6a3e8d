/**
 * nftables on the host: apply a script in one transaction (`nft -f -`), check one without
 * applying it (`nft -c -f -`), and read a table back as JSON (`nft -j list table`) for its named
 * counters. Behind a small interface so kattach's logic runs against {@linkcode FakeNft} in unit
 * tests; sysctls live here too because the firewall is their only writer.
 */
import { spawnOwned } from "./run.ts";

/** `nft` refused a script or a command. */
export class NftError extends Error {
  /** What nft printed on stderr (names the line it choked on). */
  readonly stderr: string;

  constructor(what: string, stderr: string) {
    super(`${what}: ${stderr.trim().split("\n").slice(0, 6).join("\n") || "no output"}`);
    this.name = "NftError";
    this.stderr = stderr;
  }
}

/** One named counter's values. */
export interface NftCounter {
  packets: number;
  bytes: number;
}

/** What the firewall needs of nftables and of the kernel's sysctls. */
export interface NftHost {
  /** Applies a script in one transaction; throws {@linkcode NftError} and changes nothing on error. */
  apply(script: string): Promise<void>;
  /** Checks a script against the kernel without applying it. */
  check(script: string): Promise<void>;
  /** `nft -j list table FAMILY NAME`; null when the table does not exist. */
  listTable(family: "inet" | "bridge", name: string): Promise<unknown[] | null>;
  /** The named counters of a table, by name (empty when the table does not exist). */
  counters(family: "inet" | "bridge", name: string): Promise<Record<string, NftCounter>>;
  /** Writes a sysctl under /proc/sys (`net/ipv4/ip_forward`); false when it does not exist. */
  writeSysctl(key: string, value: string): Promise<boolean>;
}

/**
 * The real host: runs `nft` (the argv `prefix` goes first, e.g. `["ip", "netns", "exec", NS,
 * "nft"]` for tests and benchmarks in a namespace of their own; sysctls are then written there).
 */
export function realNft(prefix: string[] = ["nft"]): NftHost {
  const binary = prefix;
  const host: NftHost = {
    async apply(script) {
      const r = await nft(binary, ["-f", "-"], script);
      if (r.code !== 0) throw new NftError("nft -f refused the ruleset", r.stderr);
    },
    async check(script) {
      const r = await nft(binary, ["-c", "-f", "-"], script);
      if (r.code !== 0) throw new NftError("nft -c found the ruleset invalid", r.stderr);
    },
    async listTable(family, name) {
      const r = await nft(binary, ["-j", "list", "table", family, name]);
      if (r.code !== 0) {
        if (/No such file or directory/.test(r.stderr)) return null;
        throw new NftError(`nft list table ${family} ${name} failed`, r.stderr);
      }
      return (JSON.parse(r.stdout) as { nftables: unknown[] }).nftables;
    },
    async counters(family, name) {
      return countersOf(await host.listTable(family, name) ?? []);
    },
    async writeSysctl(key, value) {
      const path = `/proc/sys/${key.replaceAll(".", "/")}`;
      if (prefix.length > 1) {
        const inNs = prefix.slice(0, -1);
        const r = await nft([...inNs, "sh"], [
          "-c",
          `test -e ${path} || exit 3; echo ${value} > ${path}`,
        ]);
        if (r.code === 3) return false;
        if (r.code !== 0) throw new Error(`cannot write ${path}: ${r.stderr.trim()}`);
        return true;
      }
      try {
        await Deno.writeTextFile(path, value);
        return true;
      } catch (err) {
        if (err instanceof Deno.errors.NotFound) return false;
        throw err;
      }
    },
  };
  return host;
}

/** The named counters in `nft -j` output. */
export function countersOf(objects: unknown[]): Record<string, NftCounter> {
  const out: Record<string, NftCounter> = {};
  for (const o of objects) {
    const c = (o as { counter?: { name: string; packets: number; bytes: number } }).counter;
    if (c) out[c.name] = { packets: c.packets, bytes: c.bytes };
  }
  return out;
}

/** A fake nftables for unit tests: records scripts, can be told to refuse some. */
export class FakeNft implements NftHost {
  /** Scripts applied, in order. */
  readonly applied: string[] = [];
  /** Scripts checked, in order. */
  readonly checked: string[] = [];
  /** Sysctls written, last value wins. */
  readonly sysctls = new Map<string, string>();
  /** Scripts containing this text are refused (apply and check). */
  refuse: string | RegExp | undefined;

  /** The script applied last, or undefined. */
  get current(): string | undefined {
    return this.applied.at(-1);
  }

  apply(script: string): Promise<void> {
    this.#refuse(script);
    this.applied.push(script);
    return Promise.resolve();
  }

  check(script: string): Promise<void> {
    this.#refuse(script);
    this.checked.push(script);
    return Promise.resolve();
  }

  listTable(): Promise<unknown[] | null> {
    return Promise.resolve(this.current === undefined ? null : []);
  }

  counters(): Promise<Record<string, NftCounter>> {
    return Promise.resolve({});
  }

  writeSysctl(key: string, value: string): Promise<boolean> {
    this.sysctls.set(key, value);
    return Promise.resolve(true);
  }

  #refuse(script: string): void {
    const r = this.refuse;
    if (r !== undefined && (typeof r === "string" ? script.includes(r) : r.test(script))) {
      throw new NftError("nft -f refused the ruleset", "fake: refused by the test");
    }
  }
}

async function nft(
  binary: string[],
  args: string[],
  stdin?: string,
): Promise<{ code: number; stdout: string; stderr: string }> {
  let child: Deno.ChildProcess;
  try {
    child = spawnOwned(binary[0], {
      args: [...binary.slice(1), ...args],
      stdin: stdin === undefined ? "null" : "piped",
      stdout: "piped",
      stderr: "piped",
    });
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) {
      return { code: 127, stdout: "", stderr: `${binary[0]}: not found` };
    }
    throw err;
  }
  // nft may end before it read all of its script (`ip netns exec` into a namespace that is gone,
  // an nft that cannot start): its exit code and stderr say why, not our write's broken pipe.
  let unread: unknown = null;
  if (stdin !== undefined) {
    const w = child.stdin.getWriter();
    try {
      await w.write(new TextEncoder().encode(stdin));
      await w.close();
    } catch (err) {
      unread = err;
    }
  }
  const out = await child.output();
  if (unread !== null && out.code === 0) throw unread; // it said nothing wrong, but did not read
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

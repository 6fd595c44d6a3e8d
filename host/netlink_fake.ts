/**
 * An in-memory {@linkcode Netlink} for unit tests: it keeps links and addresses, answers in
 * iproute2's JSON and runs the `ip -batch` lines KaOS renders (with `-force`: a failing line is
 * reported and the rest still run). Lines it does not know fail, like a real `ip` would. With
 * `{ dump: true }` it also answers {@linkcode FakeNetlink.dump} as the in-process rtnetlink
 * reader would (the records of host/rtnetlink_msg.ts); else `dump()` gives null (`ip -j` only).
 */
import type { LinkCounters, Netlink } from "./netlink.ts";
import type { LinkDump } from "./rtnetlink.ts";
import type { CommandResult } from "./run.ts";

/** A link of the fake host. */
export interface FakeLink {
  kind: string;
  alias?: string;
  master?: string;
  mac: string;
  up: boolean;
  parent?: string;
  vlanId?: number;
  isolated?: boolean;
}

/** A fake host for the network code's unit tests. */
export class FakeNetlink implements Netlink {
  /** Links by name. */
  readonly linkMap = new Map<string, FakeLink>();
  /** IPv4 addresses (`IP/PREFIX`) by link name. */
  readonly addrMap = new Map<string, string[]>();
  /** Every batch applied, in order. */
  readonly batches: string[] = [];
  /** Sysctls written. */
  readonly sysctls = new Map<string, string>();
  vhost = false;
  /** Traffic counters by link name (a link not in here counts zero). */
  readonly counterMap = new Map<string, LinkCounters>();
  readonly reader: string;
  #dumps: boolean;
  #macs = 0;

  constructor(
    links: Record<string, Partial<FakeLink> & { kind: string }> = {},
    options: { dump?: boolean } = {},
  ) {
    this.#dumps = options.dump ?? false;
    this.reader = this.#dumps ? "rtnetlink (fake)" : "ip -j (fake)";
    for (const [name, l] of Object.entries(links)) {
      this.linkMap.set(name, { mac: this.#mac(), up: true, ...l });
    }
  }

  /** Nothing to release. */
  close(): void {}

  dump(): Promise<LinkDump | null> {
    if (!this.#dumps) return Promise.resolve(null);
    const names = [...this.linkMap.keys()];
    const index = (name: string | undefined) => name === undefined ? null : names.indexOf(name) + 1;
    const KINDS: Record<string, string> = { tap: "tun" };
    return Promise.resolve({
      links: [...this.linkMap].map(([name, l]) => ({
        index: index(name)!,
        name,
        up: l.up,
        master: index(l.master),
        address: l.mac,
        alias: l.alias ?? null,
        link: index(l.parent),
        kind: KINDS[l.kind] ?? l.kind,
        vlanId: l.kind === "vlan" ? l.vlanId ?? null : null,
        isolated: l.master ? !!l.isolated : null,
      })),
      addresses: [...this.addrMap].flatMap(([name, a]) =>
        a.map((x) => ({
          index: index(name)!,
          local: x.split("/")[0],
          prefixlen: Number(x.split("/")[1]),
        }))
      ),
    });
  }

  links(): Promise<string> {
    return Promise.resolve(JSON.stringify(
      [...this.linkMap].map(([name, l]) => ({
        ifname: name,
        flags: ["BROADCAST", "MULTICAST", ...(l.up ? ["UP"] : [])],
        ...(l.master ? { master: l.master } : {}),
        address: l.mac,
        ...(l.alias ? { ifalias: l.alias } : {}),
        ...(l.parent ? { link: l.parent } : {}),
      })),
    ));
  }

  addresses(): Promise<string> {
    return Promise.resolve(JSON.stringify(
      [...this.addrMap].filter(([, a]) => a.length > 0).map(([name, a]) => ({
        ifname: name,
        operstate: "UP",
        addr_info: a.map((x) => ({ local: x.split("/")[0], prefixlen: Number(x.split("/")[1]) })),
      })),
    ));
  }

  ports(): Promise<string> {
    return Promise.resolve(JSON.stringify(
      [...this.linkMap].filter(([, l]) => l.master).map(([name, l]) => ({
        ifname: name,
        master: l.master,
        state: "forwarding",
        isolated: !!l.isolated,
      })),
    ));
  }

  vlans(): Promise<string> {
    return Promise.resolve(JSON.stringify(
      [...this.linkMap].filter(([, l]) => l.kind === "vlan").map(([name, l]) => ({
        ifname: name,
        link: l.parent,
        linkinfo: { info_kind: "vlan", info_data: { protocol: "802.1Q", id: l.vlanId } },
      })),
    ));
  }

  applyBatch(text: string): Promise<CommandResult> {
    this.batches.push(text);
    const errors: string[] = [];
    text.split("\n").filter((l) => l.trim() !== "").forEach((line, i) => {
      try {
        this.#exec(line.trim().split(/\s+/));
      } catch (err) {
        errors.push(`Command failed -:${i + 1}\n${(err as Error).message}`);
      }
    });
    return Promise.resolve({ code: errors.length ? 1 : 0, stdout: "", stderr: errors.join("\n") });
  }

  writeSysctl(key: string, value: string): Promise<void> {
    this.sysctls.set(key, value);
    return Promise.resolve();
  }

  vhostNet(): boolean {
    return this.vhost;
  }

  counters(name: string): Promise<LinkCounters | null> {
    if (!this.linkMap.has(name)) return Promise.resolve(null);
    const zero = { rxBytes: 0, rxPackets: 0, txBytes: 0, txPackets: 0 };
    return Promise.resolve(this.counterMap.get(name) ?? zero);
  }

  #mac(): string {
    const n = ++this.#macs;
    return `02:00:00:00:${(n >> 8).toString(16).padStart(2, "0")}:${
      (n & 255).toString(16).padStart(2, "0")
    }`;
  }

  #get(name: string): FakeLink {
    const l = this.linkMap.get(name);
    if (!l) throw new Error(`Cannot find device "${name}"`);
    return l;
  }

  #add(name: string, l: FakeLink): void {
    if (this.linkMap.has(name)) throw new Error("RTNETLINK answers: File exists");
    this.linkMap.set(name, l);
  }

  #del(name: string): void {
    this.#get(name);
    this.linkMap.delete(name);
    this.addrMap.delete(name);
    for (const [n, l] of [...this.linkMap]) {
      if (l.master === name) {
        l.master = undefined;
        l.isolated = undefined;
      }
      if (l.parent === name) this.#del(n);
    }
  }

  #exec(w: string[]): void {
    const opt = (key: string) => {
      const i = w.indexOf(key);
      return i >= 0 ? w[i + 1] : undefined;
    };
    const at = (...words: string[]) => words.every((x, i) => w[i] === x);
    if (at("link", "del", "dev")) return this.#del(w[3]);
    if (at("link", "add", "name") && opt("type") === "bridge") {
      return this.#add(w[3], { kind: "bridge", mac: opt("address") ?? this.#mac(), up: false });
    }
    if (at("link", "add", "link") && opt("type") === "vlan") {
      const parent = this.#get(w[3]);
      return this.#add(opt("name")!, {
        kind: "vlan",
        mac: parent.mac,
        up: false,
        parent: w[3],
        vlanId: Number(opt("id")),
      });
    }
    if (at("tuntap", "add", "dev") && opt("mode") === "tap") {
      return this.#add(w[3], { kind: "tap", mac: this.#mac(), up: false });
    }
    if (at("link", "set", "dev") && w[4] === "type" && w[5] === "bridge_slave") {
      const l = this.#get(w[3]);
      if (!l.master) throw new Error("RTNETLINK answers: Operation not supported");
      if (w[6] !== "isolated" || !["on", "off"].includes(w[7])) throw new Error("bad option");
      l.isolated = w[7] === "on";
      return;
    }
    if (at("link", "set", "dev")) {
      const l = this.#get(w[3]);
      for (let i = 4; i < w.length; i++) {
        if (w[i] === "up") l.up = true;
        else if (w[i] === "alias") l.alias = w[++i];
        else if (w[i] === "address") l.mac = w[++i];
        else if (w[i] === "master") {
          const m = this.#get(w[++i]);
          if (m.kind !== "bridge") throw new Error("RTNETLINK answers: Operation not supported");
          if (l.master !== w[i]) l.isolated = false;
          l.master = w[i];
        } else throw new Error(`Unknown option "${w[i]}"`);
      }
      return;
    }
    if (at("address", "add") || at("address", "del")) {
      if (w[3] !== "dev") throw new Error("bad address line");
      this.#get(w[4]);
      const list = this.addrMap.get(w[4]) ?? [];
      if (w[1] === "add") {
        if (list.includes(w[2])) throw new Error("RTNETLINK answers: File exists");
        this.addrMap.set(w[4], [...list, w[2]]);
      } else {
        if (!list.includes(w[2])) throw new Error("RTNETLINK answers: Cannot assign address");
        this.addrMap.set(w[4], list.filter((a) => a !== w[2]));
      }
      return;
    }
    throw new Error(`Object "${w[0]}" is unknown or the line is not understood`);
  }
}

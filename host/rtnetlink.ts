/**
 * Reads the host's links and IPv4 addresses in-process: one NETLINK_ROUTE socket through Deno
 * FFI (libc socket/bind/send/recv), an RTM_GETLINK dump and an RTM_GETADDR dump, parsed by
 * host/rtnetlink_msg.ts. On a host with 4,094 bridges and 1,000 taps this replaces four `ip -j` /
 * `bridge -j` processes and their JSON (docs/network.md, bench/network.ts). Needs `--allow-ffi`
 * (kattach runs with -A hosted and in the appliance); host/netlink.ts falls back to `ip -j`
 * when FFI is refused or libc cannot be opened.
 */
import {
  dumpRequest,
  LINK_GROUPS,
  linkRequest,
  NetlinkError,
  newDump,
  type NlAddress,
  type NlLink,
  parseDumpChunk,
  parseNotifications,
} from "./rtnetlink_msg.ts";

/** The links and IPv4 addresses of one network namespace, from the kernel. */
export interface LinkDump {
  links: NlLink[];
  addresses: NlAddress[];
}

const AF_NETLINK = 16;
const SOCK_RAW = 3;
const SOCK_CLOEXEC = 0x80000;
const NETLINK_ROUTE = 0;
const SOL_SOCKET = 1;
const SO_RCVTIMEO = 20;
const SO_RCVBUF = 8;
const SO_RCVBUFFORCE = 33;
const MSG_DONTWAIT = 0x40;
const EAGAIN = 11;
const ENOBUFS = 105;
/**
 * The notification socket's receive buffer: room for the events of a few hundred changed links
 * between two reads (SO_RCVBUFFORCE as root; else as much as net.core.rmem_max allows). A larger
 * burst overflows it and the cache reads the whole dump again (see {@linkcode LinkCache}).
 */
const NOTIFY_BUFFER_BYTES = 4 * 1024 * 1024;
const O_RDONLY = 0;
const O_CLOEXEC = 0x80000;
const CLONE_NEWNET = 0x40000000;
const EINTR = 4;
/** The kernel fills at most 32 KiB per recv of a dump; a larger buffer is never short. */
const RECV_BYTES = 64 * 1024;
/** No recv of a dump waits longer than this (the kernel answers at once; a deadline anyway). */
const RECV_TIMEOUT_S = 5;
/** A dump the kernel flags inconsistent (links changed meanwhile) is read again this often. */
const INTERRUPTED_RETRIES = 5;

const SYMBOLS = {
  socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
  bind: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  send: { parameters: ["i32", "buffer", "usize", "i32"], result: "isize" },
  recv: { parameters: ["i32", "buffer", "usize", "i32"], result: "isize" },
  setsockopt: { parameters: ["i32", "i32", "i32", "buffer", "u32"], result: "i32" },
  close: { parameters: ["i32"], result: "i32" },
  open: { parameters: ["buffer", "i32"], result: "i32" },
  setns: { parameters: ["i32", "i32"], result: "i32" },
  __errno_location: { parameters: [], result: "pointer" },
} as const;

type Libc = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];

let libc: Libc | null = null;

/** Opens libc for FFI (once); throws when FFI is not allowed or libc is missing. */
function openLibc(): Libc {
  libc ??= Deno.dlopen("libc.so.6", SYMBOLS).symbols;
  return libc;
}

/**
 * Checks that the in-process reader can run here (FFI allowed, libc found); returns null when it
 * can, else the reason it cannot (the caller then reads through `ip -j`).
 */
export function rtnetlinkUnavailable(): string | null {
  try {
    openLibc();
    return null;
  } catch (err) {
    return err instanceof Error ? err.message : String(err);
  }
}

function errno(c: Libc): number {
  const p = c.__errno_location();
  return p ? new Deno.UnsafePointerView(p).getInt32() : 0;
}

function fail(c: Libc, what: string): never {
  throw new Error(`rtnetlink: ${what} failed: errno ${errno(c)}`);
}

function cString(s: string): Uint8Array {
  return new TextEncoder().encode(`${s}\0`);
}

/**
 * A NETLINK_ROUTE socket, in the named namespace (/run/netns/NAME) when given: the calling
 * thread enters it with setns just to create the socket and returns at once (a socket stays in
 * the namespace it was made in; nothing else runs on this thread meanwhile).
 */
function openSocket(c: Libc, netns: string | undefined, groups = 0, rcvbuf = 0): number {
  if (netns === undefined) return makeSocket(c, groups, rcvbuf);
  const here = c.open(cString("/proc/thread-self/ns/net"), O_RDONLY | O_CLOEXEC);
  if (here < 0) fail(c, "open /proc/thread-self/ns/net");
  const there = c.open(cString(`/run/netns/${netns}`), O_RDONLY | O_CLOEXEC);
  if (there < 0) {
    c.close(here);
    fail(c, `open /run/netns/${netns}`);
  }
  try {
    if (c.setns(there, CLONE_NEWNET) !== 0) fail(c, `setns into ${netns}`);
    let fd = -1;
    let failed: unknown = null;
    try {
      fd = makeSocket(c, groups, rcvbuf);
    } catch (err) {
      failed = err;
    }
    if (c.setns(here, CLONE_NEWNET) !== 0) {
      // Never go on in the wrong namespace: every later read would see the wrong links.
      const e = errno(c);
      if (fd >= 0) c.close(fd);
      throw new Error(`rtnetlink: cannot return from namespace ${netns}: errno ${e}`);
    }
    if (failed) throw failed;
    return fd;
  } finally {
    c.close(here);
    c.close(there);
  }
}

function makeSocket(c: Libc, groups: number, rcvbuf: number): number {
  const fd = c.socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
  if (fd < 0) fail(c, "socket(AF_NETLINK)");
  const timeval = new BigInt64Array([BigInt(RECV_TIMEOUT_S), 0n]);
  const addr = new Uint8Array(12); // struct sockaddr_nl: family, pad, pid 0 (kernel picks), groups
  new DataView(addr.buffer).setUint16(0, AF_NETLINK, true);
  new DataView(addr.buffer).setUint32(8, groups, true);
  if (rcvbuf > 0) {
    // Before bind, so no notification finds a small buffer. Unprivileged: capped by rmem_max.
    const size = new Uint8Array(new Int32Array([rcvbuf]).buffer);
    if (c.setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, size, 4) !== 0) {
      c.setsockopt(fd, SOL_SOCKET, SO_RCVBUF, size, 4);
    }
  }
  if (
    c.setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, new Uint8Array(timeval.buffer), 16) !== 0 ||
    c.bind(fd, addr, addr.byteLength) !== 0
  ) {
    const e = errno(c);
    c.close(fd);
    throw new Error(`rtnetlink: socket setup failed: errno ${e}`);
  }
  return fd;
}

let seqCounter = Math.floor(Math.random() * 0x7fffffff);

/** Options of {@linkcode dumpLinks}. */
export interface DumpOptions {
  /** Dump this named namespace (/run/netns/NAME) instead of the caller's. */
  netns?: string;
  /** Hears a copy of every buffer the kernel sent (fixtures/netlink/capture.ts records them). */
  onChunk?: (what: "links" | "addresses", bytes: Uint8Array) => void;
}

function dumpOnce(
  c: Libc,
  fd: number,
  what: "links" | "addresses",
  options: { buf: Uint8Array; onChunk?: DumpOptions["onChunk"] },
) {
  const buf = options.buf;
  const seq = seqCounter = (seqCounter + 1) >>> 0;
  const req = dumpRequest(what, seq);
  if (Number(c.send(fd, req, BigInt(req.byteLength), 0)) !== req.byteLength) {
    fail(c, `send ${what} dump request`);
  }
  const acc = newDump(seq);
  for (;;) {
    const n = Number(c.recv(fd, buf, BigInt(buf.byteLength), 0));
    if (n < 0) {
      const e = errno(c);
      if (e === EINTR) continue;
      throw new Error(
        `rtnetlink: recv of the ${what} dump failed: errno ${e}` +
          (e === 11 ? ` (no reply within ${RECV_TIMEOUT_S} s)` : ""),
      );
    }
    if (n === 0) throw new Error(`rtnetlink: the ${what} dump ended without NLMSG_DONE`);
    options.onChunk?.(what, buf.slice(0, n));
    if (parseDumpChunk(buf.subarray(0, n), acc)) return acc;
  }
}

/**
 * Dumps the links (RTM_GETLINK, no counters) and IPv4 addresses (RTM_GETADDR) of this
 * namespace or of `netns`. Synchronous FFI calls: the kernel answers a dump from within recv,
 * so nothing waits on another party; each recv has a 5 s deadline all the same.
 */
export function dumpLinks(options: DumpOptions = {}): LinkDump {
  const c = openLibc();
  const fd = openSocket(c, options.netns);
  const io = { buf: new Uint8Array(RECV_BYTES), onChunk: options.onChunk };
  try {
    for (let attempt = 1;; attempt++) {
      const links = dumpOnce(c, fd, "links", io);
      const addresses = dumpOnce(c, fd, "addresses", io);
      if (!(links.interrupted || addresses.interrupted) || attempt >= INTERRUPTED_RETRIES) {
        if (links.interrupted || addresses.interrupted) {
          throw new Error(
            `rtnetlink: the dump was interrupted ${attempt} times (links changing meanwhile)`,
          );
        }
        return { links: links.links, addresses: addresses.addresses };
      }
    }
  } finally {
    c.close(fd);
  }
}

/** Options of {@linkcode LinkCache}. */
export interface LinkCacheOptions {
  /** Follow this named namespace (/run/netns/NAME) instead of the caller's. */
  netns?: string;
  /** The notification socket's receive buffer (default 4 MiB; tests make it overflow). */
  bufferBytes?: number;
}

/**
 * The host's links and IPv4 addresses, kept in memory: one dump when first read, then kept
 * current by the kernel's notifications (RTNLGRP_LINK, RTNLGRP_IPV4_IFADDR) on a socket of its
 * own, drained without waiting at each {@linkcode LinkCache.read} — the way Incus and
 * systemd-networkd follow the kernel. A change made behind KaOS' back (a link deleted, moved off
 * its bridge, renamed) is seen by the next read like any other. When the kernel drops
 * notifications (the socket's buffer overflowed, e.g. after a batch of thousands of links), the
 * queue is emptied and the whole dump read again. The subscription starts before the dump, so
 * every change after the dump is in the queue; notifications that the dump already shows are
 * applied again, in order, which ends at the same state.
 */
export class LinkCache {
  #c: Libc;
  #netns: string | undefined;
  #bufferBytes: number;
  #fd = -1;
  /** A plain socket for the per-link requests (answers never mix with notifications). */
  #req = -1;
  #links = new Map<number, NlLink>();
  #addresses = new Map<string, NlAddress>();
  #buf = new Uint8Array(RECV_BYTES);
  #stats = { dumps: 0, events: 0, asked: 0 };

  /** Opens libc (throws when FFI is not allowed); nothing is read before the first read(). */
  constructor(options: LinkCacheOptions = {}) {
    this.#c = openLibc();
    this.#netns = options.netns;
    this.#bufferBytes = options.bufferBytes ?? NOTIFY_BUFFER_BYTES;
  }

  /**
   * How often the whole dump was read, how many notifications were applied and how many links
   * were asked for one by one (those that are down).
   */
  get stats(): { dumps: number; events: number; asked: number } {
    return { ...this.#stats };
  }

  /**
   * The links and addresses as the kernel reports them now. Throws when the socket or the dump
   * fails; the next read starts over with a new socket and a whole dump.
   */
  read(): LinkDump {
    try {
      if (this.#fd < 0) {
        this.#fd = openSocket(this.#c, this.#netns, LINK_GROUPS, this.#bufferBytes);
        this.#req = openSocket(this.#c, this.#netns);
        this.#refresh();
      } else if (!this.#drain()) this.#refresh();
      this.#askDown();
    } catch (err) {
      this.close();
      throw err;
    }
    return { links: [...this.#links.values()], addresses: [...this.#addresses.values()] };
  }

  /** Closes the notification socket (the next read opens a new one). */
  close(): void {
    if (this.#fd >= 0) this.#c.close(this.#fd);
    if (this.#req >= 0) this.#c.close(this.#req);
    this.#fd = this.#req = -1;
    this.#links.clear();
    this.#addresses.clear();
  }

  /** A whole dump, then what was queued meanwhile; once more if notifications were lost. */
  #refresh(): void {
    for (let attempt = 1;; attempt++) {
      this.#dump();
      if (this.#drain()) return;
      if (attempt >= 2) throw new Error("rtnetlink: link notifications lost twice in a row");
    }
  }

  /**
   * Asks the kernel again for each link that is down: it announces a change of a down link's
   * alias or bridge-port flags to nobody (netdev_state_change notifies only links that are up).
   * KaOS keeps its own links up, so these are few: foreign links and links of a failed batch.
   */
  #askDown(): void {
    const c = this.#c;
    for (const l of [...this.#links.values()]) {
      if (l.up) continue;
      this.#stats.asked++;
      const seq = seqCounter = (seqCounter + 1) >>> 0;
      const req = linkRequest(l.index, seq);
      if (Number(c.send(this.#req, req, BigInt(req.byteLength), 0)) !== req.byteLength) {
        fail(c, `send the request of link ${l.index}`);
      }
      const acc = newDump(seq);
      try {
        while (acc.links.length === 0) {
          const n = Number(c.recv(this.#req, this.#buf, BigInt(this.#buf.byteLength), 0));
          if (n < 0) {
            const e = errno(c);
            if (e === EINTR) continue;
            throw new Error(`rtnetlink: recv of link ${l.index} failed: errno ${e}`);
          }
          parseDumpChunk(this.#buf.subarray(0, n), acc);
        }
      } catch (err) {
        // ENODEV: deleted meanwhile (its notification is queued; the next read applies it too).
        if (err instanceof NetlinkError && err.errno === 19) {
          this.#links.delete(l.index);
          continue;
        }
        throw err;
      }
      this.#links.set(l.index, acc.links[0]);
    }
  }

  #dump(): void {
    const d = dumpLinks({ netns: this.#netns });
    this.#stats.dumps++;
    this.#links = new Map(d.links.map((l) => [l.index, l]));
    this.#addresses = new Map(d.addresses.map((a) => [addressKey(a), a]));
  }

  /**
   * Reads every queued notification without waiting and applies it. False when the kernel
   * reports that notifications were lost (ENOBUFS): the rest of the queue is then read and
   * dropped (it predates the dump that must follow).
   */
  #drain(): boolean {
    const c = this.#c;
    let lost = false;
    let apply = true;
    for (;;) {
      const n = Number(c.recv(this.#fd, this.#buf, BigInt(this.#buf.byteLength), MSG_DONTWAIT));
      if (n < 0) {
        const e = errno(c);
        if (e === EINTR) continue;
        if (e === EAGAIN) return !lost;
        if (e === ENOBUFS) {
          lost = true;
          apply = false; // nothing after a loss can be trusted until the next dump
          continue;
        }
        throw new Error(`rtnetlink: recv of link notifications failed: errno ${e}`);
      }
      if (n === 0) return !lost;
      if (!apply) continue;
      for (const ev of parseNotifications(this.#buf.subarray(0, n))) {
        this.#stats.events++;
        if (ev.kind === "link") this.#links.set(ev.link.index, ev.link);
        else if (ev.kind === "unlink") {
          this.#links.delete(ev.index);
          for (const [key, a] of this.#addresses) {
            if (a.index === ev.index) this.#addresses.delete(key);
          }
        } else if (ev.kind === "port") {
          const l = this.#links.get(ev.index);
          if (l && l.master !== null) this.#links.set(ev.index, { ...l, isolated: ev.isolated });
        } else if (ev.kind === "address") this.#addresses.set(addressKey(ev.address), ev.address);
        else this.#addresses.delete(addressKey(ev.address));
      }
    }
  }
}

function addressKey(a: NlAddress): string {
  return `${a.index} ${a.local}/${a.prefixlen}`;
}

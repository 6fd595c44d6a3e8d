/**
 * rtnetlink messages, pure: the two dump requests KaOS sends (RTM_GETLINK, RTM_GETADDR for IPv4)
 * and a parser of the kernel's replies into plain records. host/rtnetlink.ts moves the bytes
 * (a netlink socket through FFI); this file never touches the system, so its tests run on bytes
 * captured from a real kernel (fixtures/netlink/). Layouts: linux/netlink.h, linux/rtnetlink.h,
 * linux/if_link.h, linux/if_addr.h (native byte order: little-endian on x86-64 and arm64).
 */

/** Message types and flags KaOS uses. */
export const NL = {
  NLMSG_ERROR: 2,
  NLMSG_DONE: 3,
  RTM_NEWLINK: 16,
  RTM_DELLINK: 17,
  RTM_GETLINK: 18,
  RTM_NEWADDR: 20,
  RTM_DELADDR: 21,
  RTM_GETADDR: 22,
  NLM_F_REQUEST: 0x1,
  NLM_F_DUMP: 0x300,
  NLM_F_DUMP_INTR: 0x10,
} as const;

const AF_UNSPEC = 0;
const AF_INET = 2;
const AF_BRIDGE = 7;
const IFF_UP = 0x1;
const IFLA_ADDRESS = 1;
const IFLA_IFNAME = 3;
const IFLA_LINK = 5;
const IFLA_MASTER = 10;
const IFLA_PROTINFO = 12;
const IFLA_LINKINFO = 18;
const IFLA_IFALIAS = 20;
const IFLA_EXT_MASK = 29;
const IFLA_INFO_KIND = 1;
const IFLA_INFO_DATA = 2;
const IFLA_INFO_SLAVE_KIND = 4;
const IFLA_INFO_SLAVE_DATA = 5;
const IFLA_VLAN_ID = 1;
const IFLA_BRPORT_ISOLATED = 33;
const IFA_ADDRESS = 1;
const IFA_LOCAL = 2;
/** Leave out the counters (RTEXT_FILTER_SKIP_STATS, Linux 4.20+; older kernels ignore it). */
const RTEXT_FILTER_SKIP_STATS = 1 << 3;

/** One link as the kernel reports it (RTM_NEWLINK), reduced to what KaOS reads. */
export interface NlLink {
  index: number;
  name: string;
  up: boolean;
  /** The master's ifindex (a bridge port's bridge); null when none. */
  master: number | null;
  /** The hardware address as `aa:bb:…`; null when the link has none. */
  address: string | null;
  alias: string | null;
  /** IFLA_LINK: a VLAN link's parent ifindex (a veth's peer); null when absent. */
  link: number | null;
  /** IFLA_INFO_KIND: `bridge`, `vlan`, `tun`, `veth`, …; null when absent. */
  kind: string | null;
  /** IFLA_VLAN_ID of a `vlan` link. */
  vlanId: number | null;
  /** IFLA_BRPORT_ISOLATED of a bridge port; null when the link is no bridge port. */
  isolated: boolean | null;
}

/** One IPv4 address (RTM_NEWADDR). */
export interface NlAddress {
  index: number;
  local: string;
  prefixlen: number;
}

/** What one dump gave so far. */
export interface DumpAccumulator {
  seq: number;
  links: NlLink[];
  addresses: NlAddress[];
  /** The kernel flagged the dump inconsistent (links changed meanwhile): read again. */
  interrupted: boolean;
}

/** An error reply to a request (NLMSG_ERROR with a negative errno). */
export class NetlinkError extends Error {
  /** The positive errno. */
  readonly errno: number;
  constructor(errno: number) {
    super(`rtnetlink request failed: errno ${errno}`);
    this.name = "NetlinkError";
    this.errno = errno;
  }
}

/** The bytes of a dump request of RTM_GETLINK (all links, no counters) or RTM_GETADDR (IPv4). */
export function dumpRequest(type: "links" | "addresses", seq: number): Uint8Array {
  const links = type === "links";
  const len = links ? 16 + 16 + 8 : 16 + 8;
  const buf = new Uint8Array(len);
  const v = new DataView(buf.buffer);
  v.setUint32(0, len, true);
  v.setUint16(4, links ? NL.RTM_GETLINK : NL.RTM_GETADDR, true);
  v.setUint16(6, NL.NLM_F_REQUEST | NL.NLM_F_DUMP, true);
  v.setUint32(8, seq >>> 0, true);
  v.setUint32(12, 0, true);
  if (links) {
    buf[16] = AF_UNSPEC; // struct ifinfomsg: all zero
    v.setUint16(32, 8, true); // rtattr IFLA_EXT_MASK (u32)
    v.setUint16(34, IFLA_EXT_MASK, true);
    v.setUint32(36, RTEXT_FILTER_SKIP_STATS, true);
  } else {
    buf[16] = AF_INET; // struct ifaddrmsg: family, the rest zero
  }
  return buf;
}

/** The bytes of an RTM_GETLINK request of one link by ifindex (no counters). */
export function linkRequest(index: number, seq: number): Uint8Array {
  const buf = dumpRequest("links", seq);
  const v = new DataView(buf.buffer);
  v.setUint16(6, NL.NLM_F_REQUEST, true);
  v.setInt32(20, index, true); // ifinfomsg.ifi_index
  return buf;
}

/** A new, empty accumulator for the dump sent with `seq`. */
export function newDump(seq: number): DumpAccumulator {
  return { seq, links: [], addresses: [], interrupted: false };
}

/**
 * Parses one buffer of replies (as one recv gives them, or several concatenated) into `acc`.
 * Returns true when NLMSG_DONE of the dump was seen. Messages of another sequence number are
 * skipped. Throws {@linkcode NetlinkError} on an error reply and a plain Error on bytes that are
 * not netlink messages.
 */
export function parseDumpChunk(bytes: Uint8Array, acc: DumpAccumulator): boolean {
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let off = 0;
  let done = false;
  while (off + 16 <= bytes.byteLength) {
    const len = v.getUint32(off, true);
    if (len < 16 || off + len > bytes.byteLength) {
      throw new Error(`truncated netlink message at byte ${off} (length ${len})`);
    }
    const type = v.getUint16(off + 4, true);
    const flags = v.getUint16(off + 6, true);
    const seq = v.getUint32(off + 8, true);
    if (seq === acc.seq) {
      if (flags & NL.NLM_F_DUMP_INTR) acc.interrupted = true;
      if (type === NL.NLMSG_DONE) done = true;
      else if (type === NL.NLMSG_ERROR) {
        const errno = -v.getInt32(off + 16, true);
        if (errno !== 0) throw new NetlinkError(errno);
      } else if (type === NL.RTM_NEWLINK) acc.links.push(parseLink(v, off + 16, off + len));
      else if (type === NL.RTM_NEWADDR) {
        const a = parseAddress(v, off + 16, off + len);
        if (a) acc.addresses.push(a);
      }
    }
    off += align(len);
  }
  if (off < bytes.byteLength) {
    throw new Error(`trailing ${bytes.byteLength - off} bytes after the netlink messages`);
  }
  return done;
}

/** The multicast groups a link cache listens to (RTMGRP_LINK | RTMGRP_IPV4_IFADDR). */
export const LINK_GROUPS = 0x1 | 0x10;

/** One change the kernel announced to the link groups. */
export type LinkEvent =
  | { kind: "link"; link: NlLink }
  | { kind: "unlink"; index: number }
  /** A bridge port's own flags changed (AF_BRIDGE message): only `isolated` is read. */
  | { kind: "port"; index: number; isolated: boolean }
  | { kind: "address"; address: NlAddress }
  | { kind: "unaddress"; address: NlAddress };

/**
 * Parses one buffer of rtnetlink notifications (RTNLGRP_LINK, RTNLGRP_IPV4_IFADDR) into events,
 * in the kernel's order. A notification carries the whole state of its link or address, so
 * applying them in order to a dump taken after subscribing gives the host's current state.
 * The bridge's own per-port messages (family AF_BRIDGE) give only a port's `isolated` flag (a
 * change of the port's flags, `ip link set … type bridge_slave isolated on`, is announced in
 * that family alone); their RTM_DELLINK means "left the bridge", not "deleted", and is skipped
 * (the AF_UNSPEC message of the same change clears the master). Throws on bytes that are not
 * netlink messages.
 */
export function parseNotifications(bytes: Uint8Array): LinkEvent[] {
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const events: LinkEvent[] = [];
  let off = 0;
  while (off + 16 <= bytes.byteLength) {
    const len = v.getUint32(off, true);
    if (len < 16 || off + len > bytes.byteLength) {
      throw new Error(`truncated netlink message at byte ${off} (length ${len})`);
    }
    const type = v.getUint16(off + 4, true);
    const body = off + 16;
    if (type === NL.RTM_NEWLINK || type === NL.RTM_DELLINK) {
      if (body + 16 > off + len) throw new Error(`short link notification at byte ${off}`);
      if (v.getUint8(body) === AF_BRIDGE) {
        if (type === NL.RTM_NEWLINK) {
          const isolated = portIsolated(v, body + 16, off + len);
          const index = v.getInt32(body + 4, true);
          if (isolated !== null) events.push({ kind: "port", index, isolated });
        }
      } else {
        if (type === NL.RTM_NEWLINK) {
          events.push({ kind: "link", link: parseLink(v, body, off + len) });
        } else events.push({ kind: "unlink", index: v.getInt32(body + 4, true) });
      }
    } else if (type === NL.RTM_NEWADDR || type === NL.RTM_DELADDR) {
      const a = parseAddress(v, body, off + len);
      if (a) events.push({ kind: type === NL.RTM_NEWADDR ? "address" : "unaddress", address: a });
    }
    off += align(len);
  }
  if (off < bytes.byteLength) {
    throw new Error(`trailing ${bytes.byteLength - off} bytes after the netlink messages`);
  }
  return events;
}

function align(n: number): number {
  return (n + 3) & ~3;
}

/** Calls `fn(type, start, end)` for each rtattr in [start, end) (nested flag bit cleared). */
function eachAttr(
  v: DataView,
  start: number,
  end: number,
  fn: (type: number, from: number, to: number) => void,
): void {
  let off = start;
  while (off + 4 <= end) {
    const len = v.getUint16(off, true);
    if (len < 4 || off + len > end) {
      throw new Error(`malformed rtattr at byte ${off} (length ${len})`);
    }
    fn(v.getUint16(off + 2, true) & 0x3fff, off + 4, off + len);
    off += align(len);
  }
}

const utf8 = new TextDecoder();

/** A NUL-terminated string attribute (names and aliases: ASCII read directly, else UTF-8). */
function str(v: DataView, from: number, to: number): string {
  let text = "";
  for (let i = from; i < to; i++) {
    const c = v.getUint8(i);
    if (c === 0) return text;
    if (c >= 0x80) {
      let end = i;
      while (end < to && v.getUint8(end) !== 0) end++;
      return utf8.decode(new Uint8Array(v.buffer, v.byteOffset + from, end - from));
    }
    text += String.fromCharCode(c);
  }
  return text;
}

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));

function hex(v: DataView, from: number, to: number): string {
  let text = HEX[v.getUint8(from)];
  for (let i = from + 1; i < to; i++) text += `:${HEX[v.getUint8(i)]}`;
  return text;
}

function parseLink(v: DataView, start: number, end: number): NlLink {
  if (start + 16 > end) throw new Error(`short RTM_NEWLINK at byte ${start}`);
  const link: NlLink = {
    index: v.getInt32(start + 4, true),
    name: "",
    up: (v.getUint32(start + 8, true) & IFF_UP) !== 0,
    master: null,
    address: null,
    alias: null,
    link: null,
    kind: null,
    vlanId: null,
    isolated: null,
  };
  eachAttr(v, start + 16, end, (type, from, to) => {
    if (type === IFLA_IFNAME) link.name = str(v, from, to);
    else if (type === IFLA_ADDRESS) link.address = to > from ? hex(v, from, to) : null;
    else if (type === IFLA_MASTER && to - from >= 4) link.master = v.getUint32(from, true);
    else if (type === IFLA_LINK && to - from >= 4) link.link = v.getUint32(from, true);
    else if (type === IFLA_IFALIAS) link.alias = str(v, from, to) || null;
    else if (type === IFLA_LINKINFO) parseLinkInfo(v, from, to, link);
  });
  if (!link.name) throw new Error(`RTM_NEWLINK of ifindex ${link.index} without a name`);
  return link;
}

/** IFLA_BRPORT_ISOLATED inside IFLA_PROTINFO of an AF_BRIDGE message; null when absent. */
function portIsolated(v: DataView, start: number, end: number): boolean | null {
  let isolated: boolean | null = null;
  eachAttr(v, start, end, (type, from, to) => {
    if (type !== IFLA_PROTINFO) return;
    eachAttr(v, from, to, (t, f, e) => {
      if (t === IFLA_BRPORT_ISOLATED && e > f) isolated = v.getUint8(f) !== 0;
    });
  });
  return isolated;
}

function parseLinkInfo(v: DataView, start: number, end: number, link: NlLink): void {
  let slaveKind: string | null = null;
  let slaveData: [number, number] | null = null;
  let data: [number, number] | null = null;
  eachAttr(v, start, end, (type, from, to) => {
    if (type === IFLA_INFO_KIND) link.kind = str(v, from, to);
    else if (type === IFLA_INFO_DATA) data = [from, to];
    else if (type === IFLA_INFO_SLAVE_KIND) slaveKind = str(v, from, to);
    else if (type === IFLA_INFO_SLAVE_DATA) slaveData = [from, to];
  });
  if (link.kind === "vlan" && data) {
    eachAttr(v, data[0], data[1], (type, from, to) => {
      if (type === IFLA_VLAN_ID && to - from >= 2) link.vlanId = v.getUint16(from, true);
    });
  }
  if (slaveKind === "bridge") {
    link.isolated = false;
    if (slaveData) {
      eachAttr(v, slaveData[0], slaveData[1], (type, from, to) => {
        if (type === IFLA_BRPORT_ISOLATED && to > from) link.isolated = v.getUint8(from) !== 0;
      });
    }
  }
}

function parseAddress(v: DataView, start: number, end: number): NlAddress | null {
  if (start + 8 > end) throw new Error(`short RTM_NEWADDR at byte ${start}`);
  if (v.getUint8(start) !== AF_INET) return null;
  const prefixlen = v.getUint8(start + 1);
  const index = v.getUint32(start + 4, true);
  let local: string | null = null;
  let address: string | null = null;
  eachAttr(v, start + 8, end, (type, from, to) => {
    if (to - from !== 4) return;
    const ip = [0, 1, 2, 3].map((i) => v.getUint8(from + i)).join(".");
    if (type === IFA_LOCAL) local = ip;
    else if (type === IFA_ADDRESS) address = ip;
  });
  const ip = local ?? address;
  return ip === null ? null : { index, local: ip, prefixlen };
}

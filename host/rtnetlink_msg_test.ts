import assert from "node:assert/strict";
import {
  dumpRequest,
  linkRequest,
  NetlinkError,
  newDump,
  NL,
  type NlLink,
  parseDumpChunk,
  parseNotifications,
} from "./rtnetlink_msg.ts";

// Bytes the real kernel sent for the namespace fixtures/netlink/capture.ts describes.
const dir = new URL("../fixtures/netlink/", import.meta.url);
const linkBytes = Deno.readFileSync(new URL("links.bin", dir));
const addrBytes = Deno.readFileSync(new URL("addresses.bin", dir));
const seqOf = (b: Uint8Array) => new DataView(b.buffer, b.byteOffset).getUint32(8, true);

function parse(bytes: Uint8Array) {
  const acc = newDump(seqOf(bytes));
  const done = parseDumpChunk(bytes, acc);
  return { ...acc, done };
}

/** The message boundaries of a byte stream of netlink messages. */
function messages(bytes: Uint8Array): Uint8Array[] {
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out: Uint8Array[] = [];
  for (let off = 0; off < bytes.byteLength;) {
    const len = (v.getUint32(off, true) + 3) & ~3;
    out.push(bytes.subarray(off, off + len));
    off += len;
  }
  return out;
}

Deno.test("rtnetlink: the links of a real kernel's dump", () => {
  const d = parse(linkBytes);
  assert.equal(d.done, true);
  assert.equal(d.interrupted, false);
  const by = new Map(d.links.map((l) => [l.name, l]));
  assert.deepEqual([...by.keys()].sort(), [
    "kbr10",
    "kt0a4b53000001",
    "kt0a4b53000002",
    "lo",
    "vfor0",
    "vfor1",
  ]);
  const kbr = by.get("kbr10")!;
  assert.deepEqual(
    { ...kbr, index: 0 },
    {
      index: 0,
      name: "kbr10",
      up: true,
      master: null,
      address: "0a:4b:42:00:00:0a",
      alias: "kaos:bridge:10",
      link: null,
      kind: "bridge",
      vlanId: null,
      isolated: null,
    } satisfies NlLink,
  );
  const t1 = by.get("kt0a4b53000001")!;
  const t2 = by.get("kt0a4b53000002")!;
  assert.deepEqual(
    [t1.kind, t1.master, t1.alias, t1.isolated, t1.up],
    ["tun", kbr.index, "kaos:tap:web-1:0", true, true],
  );
  assert.deepEqual([t2.master, t2.alias, t2.isolated, t2.up], [
    kbr.index,
    "kaos:tap:web-2:0",
    false,
    false,
  ]);
  const v0 = by.get("vfor0")!;
  assert.deepEqual(
    [v0.kind, v0.link, v0.master, v0.isolated, v0.alias],
    ["veth", by.get("vfor1")!.index, null, null, null],
  );
  assert.match(v0.address!, /^([0-9a-f]{2}:){5}[0-9a-f]{2}$/);
  assert.equal(by.get("lo")!.address, "00:00:00:00:00:00");
});

Deno.test("rtnetlink: the IPv4 addresses of a real kernel's dump", () => {
  const links = new Map(parse(linkBytes).links.map((l) => [l.index, l.name]));
  const d = parse(addrBytes);
  assert.equal(d.done, true);
  assert.deepEqual(
    d.addresses.map((a) => `${links.get(a.index)} ${a.local}/${a.prefixlen}`).sort(),
    ["kbr10 10.0.10.1/24", "lo 127.0.0.1/8", "vfor0 192.0.2.1/24"],
  );
});

Deno.test("rtnetlink: message by message gives the same as the whole buffer; DONE comes last", () => {
  const acc = newDump(seqOf(linkBytes));
  const parts = messages(linkBytes);
  const dones = parts.map((m) => parseDumpChunk(m, acc));
  assert.deepEqual(dones.slice(0, -1).filter(Boolean), []);
  assert.equal(dones.at(-1), true);
  assert.deepEqual(acc.links, parse(linkBytes).links);
});

Deno.test("rtnetlink: messages of another sequence number are skipped", () => {
  const acc = newDump(seqOf(linkBytes) + 1);
  assert.equal(parseDumpChunk(linkBytes, acc), false);
  assert.deepEqual(acc.links, []);
});

Deno.test("rtnetlink: truncated bytes, an error reply and a flagged dump", () => {
  const first = messages(linkBytes)[0];
  assert.throws(
    () => parseDumpChunk(first.subarray(0, first.byteLength - 4), newDump(seqOf(first))),
    /truncated netlink message at byte 0/,
  );
  assert.throws(
    () => parseDumpChunk(linkBytes.subarray(0, first.byteLength + 7), newDump(seqOf(first))),
    /trailing 7 bytes/,
  );
  const err = new Uint8Array(36);
  const v = new DataView(err.buffer);
  v.setUint32(0, 36, true);
  v.setUint16(4, NL.NLMSG_ERROR, true);
  v.setUint32(8, 9, true);
  v.setInt32(16, -1, true); // EPERM
  assert.throws(
    () => parseDumpChunk(err, newDump(9)),
    (e) => e instanceof NetlinkError && e.errno === 1,
  );
  v.setInt32(16, 0, true); // an acknowledgement, not an error
  assert.equal(parseDumpChunk(err, newDump(9)), false);
  const flagged = first.slice();
  const fv = new DataView(flagged.buffer);
  fv.setUint16(6, fv.getUint16(6, true) | NL.NLM_F_DUMP_INTR, true);
  const acc = newDump(seqOf(first));
  parseDumpChunk(flagged, acc);
  assert.equal(acc.interrupted, true);
});

/** One rtattr (type, payload), padded to 4 bytes. */
function attr(type: number, payload: Uint8Array): Uint8Array {
  const len = 4 + payload.byteLength;
  const b = new Uint8Array((len + 3) & ~3);
  const v = new DataView(b.buffer);
  v.setUint16(0, len, true);
  v.setUint16(2, type, true);
  b.set(payload, 4);
  return b;
}
const cat = (...parts: Uint8Array[]) => new Uint8Array(parts.flatMap((p) => [...p]));
const cstr = (s: string) => new TextEncoder().encode(`${s}\0`);
const u16 = (n: number) => new Uint8Array(new Uint16Array([n]).buffer);
const u32 = (n: number) => new Uint8Array(new Uint32Array([n]).buffer);

Deno.test("rtnetlink: a VLAN link with a UTF-8 alias (synthetic bytes: the development kernel has no 802.1Q)", () => {
  const NESTED = 0x8000;
  const body = cat(
    new Uint8Array(16), // ifinfomsg; index and flags below
    attr(3, cstr("kvl10")), // IFLA_IFNAME
    attr(5, u32(2)), // IFLA_LINK: eth0
    attr(10, u32(7)), // IFLA_MASTER: kbr10
    attr(20, cstr("büro-vlan")), // IFLA_IFALIAS, not ASCII (someone's own)
    attr(
      18 | NESTED, // IFLA_LINKINFO
      cat(attr(1, cstr("vlan")), attr(2 | NESTED, attr(1, u16(10)))),
    ),
  );
  const msg = cat(new Uint8Array(16), body);
  const v = new DataView(msg.buffer);
  v.setUint32(0, msg.byteLength, true);
  v.setUint16(4, NL.RTM_NEWLINK, true);
  v.setUint32(8, 5, true);
  v.setInt32(16 + 4, 9, true); // ifi_index
  v.setUint32(16 + 8, 1, true); // IFF_UP
  const acc = newDump(5);
  parseDumpChunk(msg, acc);
  assert.deepEqual(acc.links, [{
    index: 9,
    name: "kvl10",
    up: true,
    master: 7,
    address: null,
    alias: "büro-vlan",
    link: 2,
    kind: "vlan",
    vlanId: 10,
    isolated: null,
  }]);
});

Deno.test("rtnetlink: the dump requests", () => {
  const links = dumpRequest("links", 0x01020304);
  assert.deepEqual(
    [...links],
    [
      ...[40, 0, 0, 0, 18, 0, 0x01, 0x03, 4, 3, 2, 1, 0, 0, 0, 0], // nlmsghdr: GETLINK, REQUEST|DUMP
      ...new Array(16).fill(0), // ifinfomsg AF_UNSPEC
      ...[8, 0, 29, 0, 8, 0, 0, 0], // IFLA_EXT_MASK = RTEXT_FILTER_SKIP_STATS
    ],
  );
  assert.deepEqual(
    [...dumpRequest("addresses", 1)],
    [24, 0, 0, 0, 22, 0, 0x01, 0x03, 1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0],
  );
});

Deno.test("rtnetlink notifications: links and addresses as the dump gives them; AF_BRIDGE port messages", () => {
  // The dump's RTM_NEWLINK/RTM_NEWADDR records are what a notification carries.
  const linkMsgs = messages(linkBytes).filter((m) =>
    new DataView(m.buffer, m.byteOffset).getUint16(4, true) === NL.RTM_NEWLINK
  );
  const events = parseNotifications(concat(linkMsgs));
  assert.deepEqual(events, parse(linkBytes).links.map((link) => ({ kind: "link", link })));
  const addrs = parseNotifications(addrBytes);
  assert.deepEqual(
    addrs.map((e) => e.kind === "address" ? e.address : null),
    parse(addrBytes).addresses,
  );
  // The same link message as an RTM_DELLINK: deleted, by ifindex.
  const kbr = linkMsgs.find((m) =>
    parseNotifications(m)[0].kind === "link" &&
    (parseNotifications(m)[0] as { link: NlLink }).link.name === "kbr10"
  )!;
  const index = (parseNotifications(kbr)[0] as { link: NlLink }).link.index;
  const del = retype(kbr, NL.RTM_DELLINK);
  assert.deepEqual(parseNotifications(del), [{ kind: "unlink", index }]);
  // Family AF_BRIDGE: an RTM_DELLINK is a port leaving its bridge (skipped); an RTM_NEWLINK
  // without IFLA_PROTINFO says nothing KaOS reads (skipped).
  const bridgeDel = retype(kbr, NL.RTM_DELLINK);
  bridgeDel[16] = 7;
  assert.deepEqual(parseNotifications(bridgeDel), []);
  const bridgeNew = kbr.slice();
  bridgeNew[16] = 7;
  assert.deepEqual(parseNotifications(bridgeNew), []);
  // An AF_BRIDGE RTM_NEWLINK with IFLA_PROTINFO { IFLA_BRPORT_ISOLATED = 1 }: the port's flag.
  const port = new Uint8Array(16 + 16 + 12);
  const v = new DataView(port.buffer);
  v.setUint32(0, port.byteLength, true);
  v.setUint16(4, NL.RTM_NEWLINK, true);
  port[16] = 7;
  v.setInt32(20, 42, true);
  v.setUint16(32, 12, true); // IFLA_PROTINFO | NLA_F_NESTED
  v.setUint16(34, 12 | 0x8000, true);
  v.setUint16(36, 5, true); // IFLA_BRPORT_ISOLATED (u8)
  v.setUint16(38, 33, true);
  port[40] = 1;
  assert.deepEqual(parseNotifications(port), [{ kind: "port", index: 42, isolated: true }]);
  assert.throws(() => parseNotifications(port.subarray(0, 20)), /trailing|truncated/);
});

Deno.test("rtnetlink: the request of one link by ifindex", () => {
  const req = linkRequest(7, 99);
  const v = new DataView(req.buffer);
  assert.deepEqual(
    [v.getUint32(0, true), v.getUint16(4, true), v.getUint16(6, true), v.getUint32(8, true)],
    [req.byteLength, NL.RTM_GETLINK, NL.NLM_F_REQUEST, 99],
  );
  assert.equal(v.getInt32(20, true), 7);
});

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.byteLength;
  }
  return out;
}

function retype(msg: Uint8Array, type: number): Uint8Array {
  const out = msg.slice();
  new DataView(out.buffer).setUint16(4, type, true);
  return out;
}

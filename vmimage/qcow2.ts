/**
 * Empty qcow2 images rendered in TypeScript, byte for byte what `qemu-img create -f qcow2`
 * (QEMU 7.2, the defaults: version 3, 64 KiB clusters, 16-bit refcounts) writes: a copy-on-write
 * overlay over a backing file, or an empty disk of a given size. kattach writes them per instance
 * instead of spawning `qemu-img` (issue 13: no per-instance process besides QEMU). The layout
 * (docs/interop/qcow2.txt of QEMU): the header and its extensions in cluster 0, the refcount
 * table in cluster 1, one refcount block in cluster 2, the L1 table from cluster 3; nothing
 * allocated, so every read falls through to the backing file (or reads zeros).
 */
import { z } from "zod";
import { describeIssues } from "../lib/errors.ts";

const CLUSTER_BITS = 16;
const CLUSTER = 1 << CLUSTER_BITS;
/** Guest bytes one L1 entry maps: an L2 table of CLUSTER/8 entries, each one cluster. */
const L1_SPAN = CLUSTER * (CLUSTER / 8);
/** The refcount block (16-bit entries) covers this many clusters; we use 3 + the L1 table. */
const REFBLOCK_ENTRIES = CLUSTER / 2;
/** Where the backing file name starts: after the header and its extensions. */
const BACKING_NAME_OFFSET = 0x210;
/** The feature name table QEMU 7.2 writes (type, bit, name). */
const FEATURE_NAMES: [number, number, string][] = [
  [0, 0, "dirty bit"],
  [0, 1, "corrupt bit"],
  [0, 2, "external data file"],
  [0, 3, "compression type"],
  [0, 4, "extended L2 entries"],
  [1, 0, "lazy refcounts"],
  [2, 0, "bitmaps"],
  [2, 1, "raw external data"],
];

/** What an empty qcow2 image is made of. */
export const Qcow2Input = z.strictObject({
  /** The virtual size in bytes (a multiple of 512; the backing file's size for an overlay). */
  sizeBytes: z.number().int().min(0).max(2 ** 50).refine((n) => n % 512 === 0, {
    message: "the size must be a multiple of 512 bytes",
  }),
  /** The backing file (an absolute path) and its format; omitted: a disk of zeros. */
  backing: z.strictObject({
    path: z.string().startsWith("/", "the backing path must be absolute").refine(
      (s) => !s.includes("\0") && new TextEncoder().encode(s).length <= 1023,
      "the backing path must hold no NUL and fit 1,023 bytes",
    ),
    format: z.enum(["raw", "qcow2"]),
  }).optional(),
});
export type Qcow2Input = z.infer<typeof Qcow2Input>;

/**
 * The bytes of an empty qcow2 image (what `qemu-img create -f qcow2 [-b PATH -F FORMAT] FILE
 * SIZE` writes). Pure; throws a TypeError naming the field when the input is malformed.
 */
export function renderQcow2(input: Qcow2Input): Uint8Array {
  const parsed = Qcow2Input.safeParse(input);
  if (!parsed.success) {
    throw new TypeError(`Invalid qcow2 input: ${describeIssues(parsed.error.issues)}`);
  }
  const { sizeBytes, backing } = parsed.data;
  const l1Size = Math.ceil(sizeBytes / L1_SPAN);
  const l1Clusters = Math.max(1, Math.ceil((l1Size * 8) / CLUSTER));
  if (3 + l1Clusters > REFBLOCK_ENTRIES) throw new TypeError("Invalid qcow2 input: too large");
  const l1Offset = 3 * CLUSTER;
  const out = new Uint8Array(l1Offset + l1Size * 8);
  const v = new DataView(out.buffer);
  const enc = new TextEncoder();
  const name = backing ? enc.encode(backing.path) : new Uint8Array();

  v.setUint32(0x00, 0x514649fb); // "QFI\xfb"
  v.setUint32(0x04, 3);
  v.setBigUint64(0x08, backing ? BigInt(BACKING_NAME_OFFSET) : 0n);
  v.setUint32(0x10, name.length);
  v.setUint32(0x14, CLUSTER_BITS);
  v.setBigUint64(0x18, BigInt(sizeBytes));
  v.setUint32(0x20, 0); // no encryption
  v.setUint32(0x24, l1Size);
  v.setBigUint64(0x28, BigInt(l1Offset));
  v.setBigUint64(0x30, BigInt(CLUSTER)); // refcount table in cluster 1
  v.setUint32(0x38, 1);
  // 0x3c snapshots, 0x48 incompatible, 0x50 compatible, 0x58 autoclear features: none (zeros)
  v.setUint32(0x60, 4); // refcount_order: 16-bit refcounts
  v.setUint32(0x64, 0x70); // header length; 0x68 compression type zlib (0) and padding

  let at = 0x70;
  if (backing) {
    const fmt = enc.encode(backing.format);
    v.setUint32(at, 0xe2792aca); // backing file format name
    v.setUint32(at + 4, fmt.length);
    out.set(fmt, at + 8);
    at += 8 + Math.ceil(fmt.length / 8) * 8;
  }
  v.setUint32(at, 0x6803f857); // feature name table
  v.setUint32(at + 4, FEATURE_NAMES.length * 48);
  at += 8;
  for (const [type, bit, label] of FEATURE_NAMES) {
    out[at] = type;
    out[at + 1] = bit;
    out.set(enc.encode(label), at + 2);
    at += 48;
  }
  at += 8; // end of extensions (type 0, length 0)
  if (backing) {
    if (at !== BACKING_NAME_OFFSET) throw new Error(`qcow2: extensions end at ${at}`);
    if (at + name.length > CLUSTER) throw new TypeError("Invalid qcow2 input: backing too long");
    out.set(name, at);
  }
  // The refcount table's one entry points at the refcount block in cluster 2, which counts
  // the header, the table, itself and the L1 table's clusters once each.
  v.setBigUint64(CLUSTER, BigInt(2 * CLUSTER));
  for (let c = 0; c < 3 + l1Clusters; c++) v.setUint16(2 * CLUSTER + 2 * c, 1);
  return out;
}

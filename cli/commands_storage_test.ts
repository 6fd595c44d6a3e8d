/** Tests of the text of `storage list`: each section starts at the left margin. */
import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { renderStorageList } from "./commands_storage.ts";

Deno.test("renderStorageList: sections at the margin, their tables indented", () => {
  const text = renderStorageList({
    storages: [{
      name: "disk0",
      uuid: "e29dcaf1-14f1-46d9-aaa3-bc17b076aae3",
      label: "KAOS-disk0",
      device: "/dev/vda",
      model: "virtio disk",
      sizeBytes: 2 * 1024 ** 3,
      state: "mounted",
      mountpoint: "/var/lib/kaos/storage/disk0",
      freeBytes: 1024 ** 3,
      instances: 2,
      createdAt: "2026-11-27T10:00:00Z",
    }],
    disks: [{
      device: "/dev/vda",
      model: "virtio disk",
      sizeBytes: 2 * 1024 ** 3,
      label: "ext4 KAOS-disk0",
      inUseBy: "KaOS storage disk0",
      candidate: false,
    }],
    notice: null,
  });
  const lines = text.split("\n");
  assertEquals(lines.filter((l) => !l.startsWith("  ")), ["Storage:", "Disks:", ""]);
  assertEquals(lines.filter((l) => /^\s+$/.test(l)), []);
});

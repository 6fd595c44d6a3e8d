/**
 * Guests: the typed QMP client, the guest config channel (config disk) and the QEMU command
 * line of an instance. kattach's supervisor uses these; nothing here opens the store.
 */
export * from "./qmp/mod.ts";
export * from "./guest_config.ts";
export * from "./qemu_argv.ts";
export * from "./agent/mod.ts";
export * from "./qcow2.ts";
export * from "./pvh.ts";

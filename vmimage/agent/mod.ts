/**
 * The guest agent channel (docs/guest.md): protocol schemas, the transport, typed requests, the
 * QEMU options of the port and the per-module declarations the config disk carries.
 */
export * from "./protocol.ts";
export * from "./client.ts";
export * from "./commands.ts";
export * from "./argv.ts";
export * from "./declarations.ts";

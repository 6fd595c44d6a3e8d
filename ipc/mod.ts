/** The private channel between front-ends (CLI, SSH, console) and kattach. */
export * from "./actions.ts";
export * from "./schemas.ts";
export { type ActionContext, type Dispatch, type IpcServer, JsonText, serveIpc } from "./server.ts";
export { type CallOptions, checkResult, IpcClient, IpcError } from "./client.ts";
export { type ErrorInfo, MAX_FRAME_BYTES, Origin, PROTOCOL_VERSION } from "./protocol.ts";
export * from "./actions_appqueue.ts";
export * from "./actions_auth.ts";
export * from "./actions_guests.ts";
export * from "./actions_network.ts";
export * from "./actions_firewall.ts";
export * from "./actions_storage.ts";

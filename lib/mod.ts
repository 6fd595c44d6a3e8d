/** Small pure helpers shared by every subsystem. */
export * from "./errors.ts";
export * from "./text.ts";
export * from "./ustar.ts";
export * from "./v8_flags.ts";

// deno-lint-ignore-file no-explicit-any
/**
 * The part of npm:ssh2's API the SSH server uses, typed here instead of with @types/ssh2: that
 * package pulls in @types/node@18, whose `node:*` declarations shadow Deno's own (no
 * `node:sqlite`) in any program that also holds kattach.
 */
import type { Duplex, Writable } from "node:stream";

export type KexAlgorithm = string;
export type ServerHostKeyAlgorithm = string;

/** A parsed public or private key. */
export interface ParsedKey {
  type: string;
  comment: string;
  getPublicSSH(): Uint8Array;
  /** True for a private key (a host key must be one). */
  isPrivateKey(): boolean;
  verify(data: Uint8Array, signature: Uint8Array, hashAlgo?: string): boolean | Error;
}

/** What the client asked to log in with. */
export interface AuthContext {
  username: string;
  method: "password" | "publickey" | "keyboard-interactive" | "hostbased" | "none";
  password: string;
  key: { algo: string; data: Uint8Array };
  signature?: Uint8Array;
  blob?: Uint8Array;
  hashAlgo?: string;
  accept(): void;
  reject(methodsLeft?: string[], isPartial?: boolean): void;
}

/** The client's address. */
export interface ClientInfo {
  ip: string;
  port: number;
  family: string;
  header: unknown;
}

/** A pty request. */
export interface PseudoTtyInfo {
  cols: number;
  rows: number;
  width: number;
  height: number;
  term: string;
  modes: Record<string, number>;
}

/** A session channel's data stream. */
export interface ServerChannel extends Duplex {
  stderr: Writable;
  exit(status: number): void;
}

/** A session: requests arrive as events with accept/reject callbacks. */
export interface Session {
  on(event: string, listener: (...args: any[]) => void): this;
}

/** One client connection. */
export interface Connection {
  on(event: string, listener: (...args: any[]) => void): this;
  end(): this;
}

/** Server options. */
export interface ServerConfig {
  hostKeys: (string | Uint8Array)[];
  algorithms?: {
    kex?: KexAlgorithm[];
    serverHostKey?: ServerHostKeyAlgorithm[];
    cipher?: string[];
    hmac?: string[];
    compress?: string[];
  };
  ident?: string;
  keepaliveInterval?: number;
  keepaliveCountMax?: number;
}

/** The SSH server. */
export class Server {
  constructor(config: ServerConfig, listener?: (client: Connection, info: ClientInfo) => void);
  listen(port: number, hostname: string, callback?: () => void): this;
  /** Hands an accepted socket to the server, as if it had accepted it itself. */
  injectSocket(socket: Duplex): void;
  address(): { port: number; address: string; family: string } | string | null;
  close(callback?: (err?: Error) => void): this;
  on(event: string, listener: (...args: any[]) => void): this;
  once(event: string, listener: (...args: any[]) => void): this;
  off(event: string, listener: (...args: any[]) => void): this;
}

/** Key helpers. */
export const utils: {
  parseKey(data: string | Uint8Array, passphrase?: string): ParsedKey | ParsedKey[] | Error;
  generateKeyPairSync(
    type: "ed25519" | "rsa" | "ecdsa",
    options?: { bits?: number; comment?: string },
  ): { private: string; public: string };
};

/**
 * The SSH front door of the AppQueue CLI (npm:ssh2 in server mode). One user, `aqcli`, logs in
 * with a password or a public key and gets either the interactive menu (`ssh -p 1289 aqcli@HOST`)
 * or one one-line command (`ssh -p 1289 aqcli@HOST aq list`). There is no shell, no forwarding and
 * no sftp. What a session does is left to an injected SshBackend (wired to kattach's IPC later).
 */
import {
  type AuthContext,
  type ClientInfo,
  type Connection,
  type KexAlgorithm,
  type ParsedKey,
  type PseudoTtyInfo,
  Server,
  type ServerChannel,
  type ServerHostKeyAlgorithm,
  type Session,
  utils,
} from "./_ssh2.ts";
import { timingSafeEqual } from "node:crypto";
import { createServer, type Socket } from "node:net";
import { PassThrough, type Readable, type Writable } from "node:stream";
import { isUserError } from "../lib/errors.ts";
import { type HostKey, loadOrCreateHostKeys } from "./host_keys.ts";
import { forwardWriter, Terminal, toldIfRefused } from "./terminal.ts";

/** The only user the SSH server lets in. */
export const SSH_USER = "aqcli";

/** The port the appliance listens on for SSH. */
export const SSH_PORT = 1289;

/**
 * Key exchanges offered (as a hardened OpenSSH: no NIST curves). Left out as well because they
 * fail under Deno's node:crypto: diffie-hellman-group-exchange-sha256 (measured: the server
 * disconnects). ssh2 adds `kex-strict-s-v00@openssh.com` (strict key exchange, the Terrapin
 * countermeasure) on its own.
 */
export const SSH_KEX: KexAlgorithm[] = [
  "curve25519-sha256",
  "curve25519-sha256@libssh.org",
  "diffie-hellman-group16-sha512",
  "diffie-hellman-group18-sha512",
  "diffie-hellman-group14-sha256",
];

/**
 * Host key algorithms offered: Ed25519 only. (With an RSA host key, ssh2 1.17 always appends
 * SHA-1 `ssh-rsa` to the list, whatever the configuration says; so no RSA host key is made,
 * cli/host_keys.ts.)
 */
export const SSH_HOST_KEY_ALGORITHMS: ServerHostKeyAlgorithm[] = ["ssh-ed25519"];

/** Ciphers offered: AES-GCM and AES-CTR (Deno's node:crypto has no ChaCha20-Poly1305). */
export const SSH_CIPHERS = [
  "aes256-gcm@openssh.com",
  "aes128-gcm@openssh.com",
  "aes256-ctr",
  "aes192-ctr",
  "aes128-ctr",
];

/** MACs offered: encrypt-then-MAC with SHA-2 only. */
export const SSH_MACS = ["hmac-sha2-512-etm@openssh.com", "hmac-sha2-256-etm@openssh.com"];

/** Smallest RSA user key accepted, in bits. */
export const MIN_RSA_BITS = 2048;

/** The message an exec request gets while the default password is still set. */
export const MUST_CHANGE_MESSAGE =
  `the default password must be changed first: log in interactively with ssh -p ${SSH_PORT} ${SSH_USER}@HOST`;

/** What a session gets to talk to its client. */
export interface SessionIo {
  /** The client's input; with a terminal it is already ended (read keys through `terminal`). */
  stdin: Readable;
  /** Standard output (with a terminal, lone "\n" becomes "\r\n"). Never end it: the server does. */
  stdout: Writable;
  /** Standard error (same rules as stdout). */
  stderr: Writable;
  /** Present when the client asked for a pty (`ssh -t`, or an interactive login). */
  terminal?: Terminal;
  /** The authenticated user (always "aqcli"). */
  user: string;
  /** The client's address, "ip:port". */
  remote: string;
  /** When the client's TCP connection was accepted (ms since 1970). */
  openedAt: number;
  /** Aborted when the client goes away. */
  signal: AbortSignal;
}

/** What the SSH server asks of the rest of the CLI; every method may be called concurrently. */
export interface SshBackend {
  /** Checks a login; called for every attempted user name (answer "denied" for unknown ones). */
  checkPassword(user: string, password: string): Promise<"ok" | "must-change" | "denied">;
  /** The user's authorized public keys, as OpenSSH lines ("ssh-ed25519 AAAA... comment"). */
  authorizedKeys(user: string): Promise<string[]>;
  /** Sets a new password; throws a UserError (shown to the user) when it is too weak. */
  changePassword(user: string, newPassword: string): Promise<void>;
  /**
   * Checks a new password as changePassword would and changes nothing: a UserError (shown to the
   * user) when it would be refused. Asked right after the first entry, before the retype.
   */
  checkNewPassword(user: string, newPassword: string): Promise<void>;
  /** Runs one one-line command and returns its exit status. */
  exec(line: string, io: SessionIo): Promise<number>;
  /** Runs the interactive menu on `io.terminal` until the user leaves. */
  shell(io: SessionIo): Promise<void>;
}

/** How to start the SSH server. */
export interface SshServerOptions {
  /** Address to listen on, e.g. "0.0.0.0" or "127.0.0.1". */
  hostname: string;
  /** Port to listen on; 0 picks a free one (tests). */
  port: number;
  /** Where the host keys live (created with mode 0700 on first start). */
  hostKeysDir: string;
  backend: SshBackend;
  /** Receives one line per event worth an operator's eye (listening, auth failures, bugs). */
  log: (line: string) => void;
  /** Delay after the first failed login from an address (doubles per failure); default 1000 ms. */
  authDelayMs?: number;
  /** Longest delay after a failed login; default 30000 ms. */
  maxAuthDelayMs?: number;
  /** Failed attempts allowed on one connection before it is dropped; default 6. */
  maxAuthTries?: number;
  /** Time a connection has to log in; default 60000 ms. */
  loginGraceMs?: number;
  /** Connections per address not yet logged in; default 10. */
  maxUnauthenticatedPerAddress?: number;
  /**
   * Connections not yet logged in, from all addresses together (OpenSSH's MaxStartups); past it a
   * new connection is dropped at once. Default 30.
   */
  maxUnauthenticated?: number;
  /** Password checks (scrypt hashes) running at once; more wait their turn. Default 2. */
  maxConcurrentPasswordChecks?: number;
}

/** A running SSH server. */
export interface SshServer {
  /** The port actually listened on. */
  port: number;
  /** SHA256 fingerprints of the host keys, as OpenSSH prints them. */
  fingerprints: string[];
  /** Stops listening, ends every connection and resolves when all is closed. */
  close(): Promise<void>;
}

/** Counts failed logins per address and says how long to wait before answering the next one. */
export class AuthThrottle {
  #failures = new Map<string, { count: number; last: number }>();
  #baseMs: number;
  #maxMs: number;
  #forgetMs: number;
  #now: () => number;
  #maxEntries: number;

  constructor(
    options: {
      baseMs?: number;
      maxMs?: number;
      forgetMs?: number;
      now?: () => number;
      maxEntries?: number;
    } = {},
  ) {
    this.#baseMs = options.baseMs ?? 1000;
    this.#maxMs = options.maxMs ?? 30_000;
    this.#forgetMs = options.forgetMs ?? 15 * 60_000;
    this.#now = options.now ?? Date.now;
    this.#maxEntries = options.maxEntries ?? 10_000;
  }

  /** Records a failure from `address`; returns the delay (ms) to wait before saying no. */
  fail(address: string): number {
    const count = this.#record(address);
    return Math.min(this.#baseMs * 2 ** Math.min(count - 1, 30), this.#maxMs);
  }

  /**
   * An attempt from `address` begins: it counts as a failure at once (until {@linkcode succeed}),
   * so a client that hangs up mid-attempt keeps it. Returns the delay (ms) the earlier failures
   * earned, to be served before the credentials are checked: 0 for a first attempt.
   */
  begin(address: string): number {
    const count = this.#record(address);
    return count <= 1 ? 0 : Math.min(this.#baseMs * 2 ** Math.min(count - 2, 30), this.#maxMs);
  }

  #record(address: string): number {
    const now = this.#now();
    const seen = this.#failures.get(address);
    const count = seen && now - seen.last < this.#forgetMs ? seen.count + 1 : 1;
    this.#failures.delete(address);
    this.#failures.set(address, { count, last: now });
    if (this.#failures.size > this.#maxEntries) {
      const oldest = this.#failures.keys().next().value;
      if (oldest !== undefined) this.#failures.delete(oldest);
    }
    return count;
  }

  /** Forgets the failures of `address` (after a successful login). */
  succeed(address: string): void {
    this.#failures.delete(address);
  }

  /** Failures recorded for `address` and not yet forgotten. */
  failures(address: string): number {
    const seen = this.#failures.get(address);
    return seen && this.#now() - seen.last < this.#forgetMs ? seen.count : 0;
  }
}

/** Lets at most `limit` tasks run at once; the others wait in order. */
export class Semaphore {
  #limit: number;
  #running = 0;
  #waiting: (() => void)[] = [];
  /** The most tasks that ran at once (for tests and logs). */
  peak = 0;

  constructor(limit: number) {
    this.#limit = limit;
  }

  /** Runs `fn` once a slot is free. */
  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.#running >= this.#limit) await new Promise<void>((r) => this.#waiting.push(r));
    this.#running++;
    this.peak = Math.max(this.peak, this.#running);
    try {
      return await fn();
    } finally {
      this.#running--;
      this.#waiting.shift()?.();
    }
  }
}

/** The size in bits of an RSA public key from its SSH wire blob, or 0 when it is not one. */
export function rsaKeyBits(blob: Uint8Array): number {
  const view = new DataView(blob.buffer, blob.byteOffset, blob.byteLength);
  let off = 0;
  const next = (): Uint8Array | undefined => {
    if (off + 4 > blob.length) return undefined;
    const len = view.getUint32(off);
    if (off + 4 + len > blob.length) return undefined;
    const out = blob.subarray(off + 4, off + 4 + len);
    off += 4 + len;
    return out;
  };
  const type = next();
  if (!type || new TextDecoder().decode(type) !== "ssh-rsa") return 0;
  next(); // e
  const n = next();
  if (!n) return 0;
  let i = 0;
  while (i < n.length && n[i] === 0) i++; // mpint sign padding
  if (i === n.length) return 0;
  return (n.length - i - 1) * 8 + (32 - Math.clz32(n[i]));
}

/** Per-connection state. */
interface Conn {
  client: Connection;
  address: string;
  remote: string;
  openedAt: number;
  user: string;
  mustChange: boolean;
  failures: number;
  authenticated: boolean;
  /** The client hung up. */
  gone: boolean;
  terminals: Set<Terminal>;
}

/** Strips an IPv4-mapped IPv6 prefix. */
function plainAddress(ip: string): string {
  return ip.startsWith("::ffff:") ? ip.slice(7) : ip;
}

/** A user name as it may appear in a log line (attacker-controlled: quoted, short). */
function quoteUser(user: string): string {
  return JSON.stringify(user.slice(0, 64));
}

/** Constant-time comparison of two byte strings. */
function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

/** Resolves after `ms` milliseconds. */
function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Resolves when everything written to `stream` has been handed to the transport. */
async function flushed(stream: Writable): Promise<void> {
  if (stream.destroyed || stream.writableLength === 0) return;
  await new Promise<void>((resolve) => {
    const done = () => {
      stream.off("drain", done);
      stream.off("close", done);
      resolve();
    };
    stream.on("drain", done);
    stream.on("close", done);
  });
}

/** The log line of a host key made in place of an unusable one (kattach's log shows it). */
function hostKeyReplacedLine(key: HostKey): string {
  return `ssh: WARNING: the SSH host key ${key.path} could not be used ` +
    `(${key.replaced?.reason}); it is kept as ${key.replaced?.keptAs} and a new host key ` +
    `${key.fingerprint} is in its place: SSH clients that knew the old key will warn that the ` +
    "host key changed";
}

/** Starts the SSH server; resolves once it listens. */
export async function startSshServer(options: SshServerOptions): Promise<SshServer> {
  const { backend, log } = options;
  const hostKeys = await loadOrCreateHostKeys(options.hostKeysDir);
  for (const key of hostKeys) {
    if (key.replaced) log(hostKeyReplacedLine(key));
  }
  const throttle = new AuthThrottle({
    baseMs: options.authDelayMs,
    maxMs: options.maxAuthDelayMs,
  });
  const maxAuthTries = options.maxAuthTries ?? 6;
  const loginGraceMs = options.loginGraceMs ?? 60_000;
  const maxUnauthenticated = options.maxUnauthenticatedPerAddress ?? 10;
  const maxStartups = options.maxUnauthenticated ?? 30;
  const hashes = new Semaphore(options.maxConcurrentPasswordChecks ?? 2);
  const conns = new Set<Conn>();
  const unauthenticated = new Map<string, number>();
  let unauthenticatedTotal = 0;
  let closed = false;
  /** Sockets accepted and not yet closed; those handed to ssh2 and waiting for its connection. */
  const sockets = new Set<Socket>();
  const pending = new Map<string, { loggedIn(): void }>();

  /** Logs a bug with its stack (STYLE rule 13). */
  function logBug(where: string, err: unknown): void {
    const text = err instanceof Error ? (err.stack ?? err.message) : String(err);
    log(`ssh: internal error in ${where}: ${text}`);
  }

  /**
   * Fails one login attempt: logs it and says no. An attempt that checked a credential has been
   * counted (and its delay served) by `begin` already.
   */
  function refuse(conn: Conn, ctx: AuthContext, why = ""): void {
    conn.failures++;
    log(
      `auth failed user=${quoteUser(ctx.username)} from=${conn.address} method=${ctx.method}${
        why ? ` (${why})` : ""
      }`,
    );
    if (conn.failures >= maxAuthTries) {
      log(`ssh: too many failed logins from=${conn.address}; dropping the connection`);
      ctx.reject();
      conn.client.end();
      return;
    }
    ctx.reject(["publickey", "password"]);
  }

  /** Accepts a login. */
  function admit(conn: Conn, ctx: AuthContext, mustChange: boolean): void {
    throttle.succeed(conn.address);
    conn.user = ctx.username;
    conn.mustChange = mustChange;
    log(`auth ok user=${quoteUser(ctx.username)} from=${conn.address} method=${ctx.method}`);
    ctx.accept();
  }

  /** Parses authorized_keys lines, skipping (and logging) the ones ssh2 cannot read. */
  function parseAuthorized(lines: string[]): ParsedKey[] {
    const keys: ParsedKey[] = [];
    for (const line of lines) {
      const text = line.trim();
      if (text === "" || text.startsWith("#")) continue;
      const parsed = utils.parseKey(text);
      if (parsed instanceof Error) {
        log(`ssh: ignoring an authorized key that cannot be parsed: ${parsed.message}`);
        continue;
      }
      keys.push(Array.isArray(parsed) ? parsed[0] : parsed);
    }
    return keys;
  }

  /**
   * Starts an attempt that checks a credential: it counts as a failure from here on, and the
   * delay earlier failures earned is served first. False when the client left meanwhile.
   */
  async function beginAttempt(conn: Conn): Promise<boolean> {
    const delay = throttle.begin(conn.address);
    if (delay > 0) {
      log(`auth delayed ${delay} ms from=${conn.address} (earlier failures)`);
      await sleep(delay);
    }
    return !conn.gone && !closed;
  }

  /** Why an offered user key is refused before any check, or "" when it may be tried. */
  function weakKey(ctx: AuthContext): string {
    if (ctx.key.algo === "ssh-dss") return "DSA keys are refused";
    if (ctx.key.algo === "ssh-rsa") {
      if (ctx.signature && !ctx.hashAlgo) return "RSA signatures with SHA-1 are refused";
      const bits = rsaKeyBits(ctx.key.data);
      if (bits < MIN_RSA_BITS) return `RSA keys under ${MIN_RSA_BITS} bits are refused (${bits})`;
    }
    return "";
  }

  /** Decides one authentication request. */
  async function authenticate(conn: Conn, ctx: AuthContext): Promise<void> {
    const known = ctx.username === SSH_USER;
    switch (ctx.method) {
      case "password": {
        if (!await beginAttempt(conn)) return;
        const verdict = await hashes.run(() =>
          conn.gone ? Promise.resolve("denied" as const) : backend.checkPassword(
            ctx.username,
            ctx.password,
          )
        );
        if (known && (verdict === "ok" || verdict === "must-change")) {
          admit(conn, ctx, verdict === "must-change");
        } else if (!conn.gone) {
          refuse(conn, ctx);
        }
        return;
      }
      case "publickey": {
        const weak = weakKey(ctx);
        if (weak !== "") {
          refuse(conn, ctx, weak);
          return;
        }
        const offered = ctx.key.data;
        const keys = known ? parseAuthorized(await backend.authorizedKeys(ctx.username)) : [];
        const match = keys.find((k) => sameBytes(k.getPublicSSH(), offered));
        if (!match) {
          refuse(conn, ctx);
          return;
        }
        if (!ctx.signature || !ctx.blob) {
          ctx.accept(); // "this key would do": the client signs next
          return;
        }
        if (!await beginAttempt(conn)) return;
        if (match.verify(ctx.blob, ctx.signature, ctx.hashAlgo) === true) {
          admit(conn, ctx, false);
        } else {
          refuse(conn, ctx);
        }
        return;
      }
      default:
        ctx.reject(["publickey", "password"]);
    }
  }

  /** Runs the must-change dialogue; true when the password was changed. */
  async function changeDefaultPassword(conn: Conn, terminal: Terminal): Promise<boolean> {
    terminal.write(`The default password must be changed before you continue.\n`);
    // The prompts package loads here, not before the server listens (the appliance's banner).
    const { password: passwordPrompt } = await import("@inquirer/prompts");
    for (let attempt = 0; attempt < 3; attempt++) {
      const first = await terminal.prompt((ctx) =>
        passwordPrompt({ message: "New password", toggleMask: false }, ctx)
      );
      // The policy's answer now, not after the retype (a too short password typed twice).
      if (!await toldIfRefused(terminal, () => backend.checkNewPassword(conn.user, first))) {
        continue;
      }
      const second = await terminal.prompt((ctx) =>
        passwordPrompt({ message: "Retype new password", toggleMask: false }, ctx)
      );
      if (first !== second) {
        terminal.write("The passwords do not match; try again.\n");
        continue;
      }
      if (!await toldIfRefused(terminal, () => backend.changePassword(conn.user, first))) continue;
      conn.mustChange = false;
      log(`password changed user=${quoteUser(conn.user)} from=${conn.address}`);
      terminal.write("Password changed.\n");
      return true;
    }
    terminal.write("Password not changed; disconnecting.\n");
    return false;
  }

  /** Reports an error to the client: a UserError as is, anything else as one generic line. */
  function reportError(err: unknown, where: string, stderr: Writable | Terminal): void {
    let text: string;
    if (isUserError(err)) {
      text = `Error: ${err.message}\n${err.hint ? `Hint: ${err.hint}\n` : ""}`;
    } else {
      logBug(where, err);
      text = "Error: internal error (details are in the system log)\n";
    }
    try {
      stderr.write(text);
    } catch { /* the client is gone */ }
  }

  /** Sends the exit status and closes the channel, after pending output. */
  async function finish(channel: ServerChannel, code: number, io?: SessionIo): Promise<void> {
    if (io) {
      await flushed(io.stdout);
      await flushed(io.stderr);
      if (io.terminal) await flushed(io.terminal.output);
    }
    await flushed(channel);
    await flushed(channel.stderr);
    if (channel.destroyed) return;
    channel.exit(Number.isInteger(code) && code >= 0 && code <= 255 ? code : 1);
    channel.end();
  }

  /** Builds the session's io. */
  function sessionIo(conn: Conn, channel: ServerChannel, terminal?: Terminal): SessionIo {
    const controller = new AbortController();
    channel.once("close", () => controller.abort(new Error("the client left")));
    // Wrappers, so that a backend ending or destroying a stream (for await ... of stdin destroys
    // it) never closes the channel before the exit status is sent.
    const stdin = new PassThrough();
    if (terminal) stdin.end();
    else channel.pipe(stdin);
    return {
      stdin,
      stdout: forwardWriter(channel, { crlf: Boolean(terminal) }),
      stderr: forwardWriter(channel.stderr, { crlf: Boolean(terminal) }),
      terminal,
      user: conn.user,
      remote: conn.remote,
      openedAt: conn.openedAt,
      signal: controller.signal,
    };
  }

  /** Runs an exec request. */
  async function runExec(conn: Conn, channel: ServerChannel, command: string, pty?: Pty) {
    const terminal = pty ? openTerminal(conn, channel, pty) : undefined;
    const io = sessionIo(conn, channel, terminal);
    let code = 1;
    try {
      if (conn.mustChange) {
        io.stderr.write(`${MUST_CHANGE_MESSAGE}\n`);
      } else {
        code = await backend.exec(command, io);
      }
    } catch (err) {
      if (!isAborted(err)) reportError(err, "exec", io.stderr);
    } finally {
      await finish(channel, code, io);
      terminal?.close();
    }
  }

  /** Runs a shell request: the menu (after the must-change dialogue when needed). */
  async function runShell(conn: Conn, channel: ServerChannel, pty?: Pty) {
    if (!pty) {
      channel.stderr.write(
        "This server has no shell, only the interactive menu, which needs a terminal: " +
          `ssh -t -p ${SSH_PORT} ${SSH_USER}@HOST\n`,
      );
      await finish(channel, 1);
      return;
    }
    const terminal = openTerminal(conn, channel, pty);
    const io = sessionIo(conn, channel, terminal);
    let code = 0;
    let changing = conn.mustChange;
    try {
      if (conn.mustChange && !(await changeDefaultPassword(conn, terminal))) {
        code = 1;
        return;
      }
      changing = false;
      await backend.shell(io);
    } catch (err) {
      if (!isAborted(err)) {
        reportError(err, "shell", terminal);
        code = 1;
      } else if (changing) {
        // Ctrl+C at the forced change: say so rather than close in silence with status 0.
        code = 1;
        try {
          terminal.write("Password not changed; disconnecting.\n");
        } catch { /* the client is gone */ }
      }
    } finally {
      await finish(channel, code, io);
      terminal.close();
    }
  }

  /** Makes the Terminal of a pty session and keeps it in sync with window-change requests. */
  function openTerminal(conn: Conn, channel: ServerChannel, pty: Pty): Terminal {
    const terminal = new Terminal(channel, channel, {
      columns: pty.info.cols,
      rows: pty.info.rows,
      term: pty.info.term,
    });
    pty.terminal = terminal;
    conn.terminals.add(terminal);
    terminal.signal.addEventListener("abort", () => conn.terminals.delete(terminal));
    channel.once("close", () => terminal.close());
    return terminal;
  }

  /** Wires one session channel. */
  function onSession(conn: Conn, session: Session): void {
    let pty: Pty | undefined;
    let started = false;
    const refuse = (what: string) => (_accept: unknown, reject?: () => void) => {
      log(`ssh: refused ${what} from=${conn.address}`);
      reject?.();
    };
    session.on("pty", (accept, reject, info: PseudoTtyInfo) => {
      if (started) return reject?.();
      pty = { info };
      accept?.();
    });
    session.on("window-change", (accept, _reject, info) => {
      if (pty) {
        pty.info = { ...pty.info, cols: info.cols, rows: info.rows };
        pty.terminal?.resize(info.cols, info.rows);
      }
      accept?.();
    });
    session.on("env", (_accept, reject) => reject?.()); // ignored on purpose
    session.on("signal", (_accept, reject) => reject?.());
    session.on("x11", refuse("X11 forwarding"));
    session.on("auth-agent", refuse("agent forwarding"));
    session.on("sftp", refuse("the sftp subsystem"));
    session.on(
      "subsystem",
      (_accept, reject, info) => refuse(`subsystem ${info.name}`)(null, reject),
    );
    session.on("shell", (accept) => {
      started = true;
      const channel = accept();
      channel?.on("error", (err: Error) => log(`ssh: channel error from=${conn.address}: ${err}`));
      if (channel) runShell(conn, channel, pty).catch((err) => logBug("shell", err));
    });
    session.on("exec", (accept, _reject, info) => {
      started = true;
      const channel = accept();
      channel?.on("error", (err: Error) => log(`ssh: channel error from=${conn.address}: ${err}`));
      if (channel) runExec(conn, channel, info.command, pty).catch((err) => logBug("exec", err));
    });
  }

  /**
   * Admits one TCP connection, before any SSH byte: the per-address and global limits of
   * connections not yet logged in apply from here (a client that never sends its version string
   * counts too), and so does the login grace time. Then ssh2 takes the socket.
   */
  function onSocket(socket: Socket): void {
    const address = plainAddress(socket.remoteAddress ?? "?");
    const key = `${address}:${socket.remotePort}`;
    const waiting = (unauthenticated.get(address) ?? 0) + 1;
    unauthenticated.set(address, waiting);
    unauthenticatedTotal++;
    let counted = true;
    const uncount = () => {
      if (!counted) return;
      counted = false;
      unauthenticatedTotal--;
      const left = (unauthenticated.get(address) ?? 1) - 1;
      if (left <= 0) unauthenticated.delete(address);
      else unauthenticated.set(address, left);
    };
    sockets.add(socket);
    const grace = setTimeout(() => {
      log(`ssh: login timed out from=${address}`);
      socket.destroy();
    }, loginGraceMs);
    socket.once("close", () => {
      clearTimeout(grace);
      uncount();
      sockets.delete(socket);
      pending.delete(key);
    });
    socket.on("error", () => {}); // reported through ssh2's connection, or not at all
    if (waiting > maxUnauthenticated) {
      log(`ssh: too many connections not yet logged in from=${address}; dropping one`);
      socket.destroy();
      return;
    }
    if (unauthenticatedTotal > maxStartups) {
      log(`ssh: ${maxStartups} connections are not yet logged in; dropping one from=${address}`);
      socket.destroy();
      return;
    }
    pending.set(key, {
      loggedIn: () => {
        clearTimeout(grace);
        uncount();
      },
    });
    sshServer.injectSocket(socket);
  }

  /** Wires one SSH connection (after the client's version string). */
  function onConnection(client: Connection, info: ClientInfo): void {
    const address = plainAddress(info.ip);
    const admitted = pending.get(`${address}:${info.port}`);
    if (!admitted) {
      client.end();
      return;
    }
    const conn: Conn = {
      client,
      address,
      remote: `${address}:${info.port}`,
      openedAt: Date.now(),
      user: "",
      mustChange: false,
      failures: 0,
      authenticated: false,
      gone: false,
      terminals: new Set(),
    };
    conns.add(conn);
    client.on("error", (err: Error) => {
      if (!/ECONNRESET|EPIPE|socket hang up/i.test(err.message)) {
        log(`ssh: connection error from=${address}: ${err.message}`);
      }
    });
    client.on("close", () => {
      conn.gone = true;
      conns.delete(conn);
      for (const terminal of conn.terminals) terminal.close();
    });
    client.on("authentication", (ctx: AuthContext) => {
      authenticate(conn, ctx).catch((err) => {
        logBug("authentication", err);
        try {
          ctx.reject(["publickey", "password"]);
        } catch { /* the client is gone */ }
      });
    });
    client.on("ready", () => {
      conn.authenticated = true;
      admitted.loggedIn();
      client.on("session", (accept) => {
        try {
          const session = accept();
          if (session) onSession(conn, session);
        } catch (err) {
          logBug("session", err);
        }
      });
    });
    client.on("tcpip", (_accept, reject, req) => {
      log(`ssh: refused port forwarding to ${req.destIP}:${req.destPort} from=${address}`);
      reject();
    });
    client.on("openssh.streamlocal", (_accept, reject) => {
      log(`ssh: refused unix socket forwarding from=${address}`);
      reject();
    });
    client.on("request", (_accept, reject, name) => {
      log(`ssh: refused ${name} from=${address}`);
      reject?.();
    });
  }

  const served = hostKeys.filter((k) => SSH_HOST_KEY_ALGORITHMS.includes(k.type));
  const sshServer = new Server({
    hostKeys: served.map((k) => k.privateKey),
    algorithms: {
      kex: SSH_KEX,
      serverHostKey: SSH_HOST_KEY_ALGORITHMS,
      cipher: SSH_CIPHERS,
      hmac: SSH_MACS,
      compress: ["none"],
    },
    ident: "KaOS",
    keepaliveInterval: 30_000,
    keepaliveCountMax: 3,
  }, (client, info) => {
    try {
      onConnection(client, info);
    } catch (err) {
      logBug("connection", err);
      client.end();
    }
  });
  sshServer.on("error", (err: Error) => log(`ssh: server error: ${err.message}`));
  // Our own listener, so connections are counted and timed from the TCP accept on.
  const server = createServer((socket) => {
    try {
      onSocket(socket);
    } catch (err) {
      logBug("socket", err);
      socket.destroy();
    }
  });

  // A listen that fails is the caller's to report (e.g. the port in use, cli/sshd.ts), once.
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port, options.hostname, () => {
      server.off("error", reject);
      resolve();
    });
  });
  server.on("error", (err: Error) => log(`ssh: server error: ${err.message}`));
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : options.port;
  const fingerprints = served.map((k) => k.fingerprint);
  log(`ssh: listening on ${options.hostname}:${port} (host keys ${fingerprints.join(", ")})`);

  let closing: Promise<void> | undefined;
  return {
    port,
    fingerprints,
    close() {
      closed = true;
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const conn of conns) conn.client.end();
        for (const socket of sockets) socket.destroy();
      });
      return closing;
    },
  };
}

/** A pty requested on a session. */
interface Pty {
  info: PseudoTtyInfo;
  terminal?: Terminal;
}

/** True for the errors a prompt throws when the client leaves or presses Ctrl-C. */
function isAborted(err: unknown): boolean {
  return err instanceof Error &&
    ["AbortPromptError", "ExitPromptError", "CancelPromptError"].includes(err.name);
}

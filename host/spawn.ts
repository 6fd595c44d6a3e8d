/**
 * The detached spawn of a guest's QEMU: `posix_spawnp` through FFI, so that starting 20 guests
 * costs kattach 20 vfork-style clones of a fraction of a millisecond each, not 20 copies of its
 * page tables. Deno's own spawn (Deno.Command, node:child_process) forks whenever it is asked for
 * a session of its own or another user, about 8-14 ms each for a 130 MiB kattach on a loaded
 * 2-core host, one after another on its only JS thread (bench/deploy.ts, issue 13).
 *
 * The process is `argv` itself: no shell or `setsid` runs before it. It gets a session of its
 * own (POSIX_SPAWN_SETSID), default signal dispositions and an empty signal mask, stdin from
 * /dev/null and its output appended to a log file, both opened by the child (as its user).
 *
 * posix_spawn has no user attribute: a child starts with the credentials of the thread that
 * made it. As root, kattach's JS thread takes the QEMU user's ids for the one call and comes
 * back right after (raw setresuid/setresgid/setgroups: glibc's setuid() would change every
 * thread of the process). It keeps root as its saved uid in between, so coming back cannot
 * fail; the child's exec makes every id of the child the user's, with no capabilities left.
 *
 * kattach is the parent: it reaps its children itself on SIGCHLD (waitpid on their own pids),
 * and holds them against PID 1's orphan reaper (host/reaper.ts) until then.
 */
import type { UserIds } from "./guest_user.ts";
import { holdOwnChild, releaseOwnChild } from "./reaper.ts";

/** Options of {@linkcode spawnDetached}. */
export interface SpawnDetachedOptions {
  cwd: string;
  /** Where the process' stdout and stderr go (appended; made if missing, by its user). */
  logFile: string;
  /** Run as this user (the caller must be root). */
  user?: UserIds;
  /**
   * A descriptor of this process the child gets as its fd 3 ({@linkcode INHERITED_FD}; e.g. a
   * listening socket from host/unix_listen.ts). It must be above 3; this process keeps its own.
   */
  inheritFd?: number;
  /** The child's whole environment (default: this process' own). */
  env?: Record<string, string>;
}

/** The descriptor number a child gets {@linkcode SpawnDetachedOptions.inheritFd} as. */
export const INHERITED_FD = 3;

/** How a process ended: its exit code, or the signal that ended it. */
export interface ProcessEnd {
  code: number | null;
  signal: string | null;
}

/** A process started by {@linkcode spawnDetached}. */
export interface DetachedProcess {
  pid: number;
  /**
   * Settles once the process ended, while this process still runs (it is our child: we collect
   * its exit status on SIGCHLD). Never rejects. Waiting for it does not keep this process
   * alive by itself (a hosted kattach exits while its guests run on).
   */
  exited: Promise<ProcessEnd>;
}

const SYMBOLS = {
  posix_spawnp: {
    parameters: ["buffer", "buffer", "buffer", "buffer", "buffer", "buffer"],
    result: "i32",
  },
  posix_spawn_file_actions_init: { parameters: ["buffer"], result: "i32" },
  posix_spawn_file_actions_destroy: { parameters: ["buffer"], result: "i32" },
  posix_spawn_file_actions_addopen: {
    parameters: ["buffer", "i32", "buffer", "i32", "u32"],
    result: "i32",
  },
  posix_spawn_file_actions_addchdir_np: { parameters: ["buffer", "buffer"], result: "i32" },
  posix_spawn_file_actions_adddup2: { parameters: ["buffer", "i32", "i32"], result: "i32" },
  // glibc 2.34+; without it, descriptors of ours that lack close-on-exec reach the child.
  posix_spawn_file_actions_addclosefrom_np: {
    parameters: ["buffer", "i32"],
    result: "i32",
    optional: true,
  },
  posix_spawnattr_init: { parameters: ["buffer"], result: "i32" },
  posix_spawnattr_destroy: { parameters: ["buffer"], result: "i32" },
  posix_spawnattr_setflags: { parameters: ["buffer", "i16"], result: "i32" },
  posix_spawnattr_setsigdefault: { parameters: ["buffer", "buffer"], result: "i32" },
  posix_spawnattr_setsigmask: { parameters: ["buffer", "buffer"], result: "i32" },
  sigfillset: { parameters: ["buffer"], result: "i32" },
  sigemptyset: { parameters: ["buffer"], result: "i32" },
  waitpid: { parameters: ["i32", "buffer", "i32"], result: "i32" },
  getresuid: { parameters: ["buffer", "buffer", "buffer"], result: "i32" },
  getresgid: { parameters: ["buffer", "buffer", "buffer"], result: "i32" },
  getgroups: { parameters: ["i32", "buffer"], result: "i32" },
  strerror: { parameters: ["i32"], result: "pointer" },
  socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
  bind: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  listen: { parameters: ["i32", "i32"], result: "i32" },
  close: { parameters: ["i32"], result: "i32" },
  // syscall(2) is variadic; on x86-64 and aarch64 integer arguments pass as for a fixed list.
  syscall: { parameters: ["i64", "i64", "i64", "i64"], result: "i64" },
  __errno_location: { parameters: [], result: "pointer" },
} as const;

/** The raw system calls that change only the calling thread's credentials. */
const SYSCALLS: Record<string, { setgroups: bigint; setresuid: bigint; setresgid: bigint }> = {
  x86_64: { setgroups: 116n, setresuid: 117n, setresgid: 119n },
  aarch64: { setgroups: 159n, setresuid: 147n, setresgid: 149n },
};

/** glibc's flag values (spawn.h, fcntl.h, wait.h). */
const POSIX_SPAWN_SETSIGDEF = 0x04;
const POSIX_SPAWN_SETSIGMASK = 0x08;
const POSIX_SPAWN_SETSID = 0x80;
const O_WRONLY = 0o1;
const O_CREAT = 0o100;
const O_APPEND = 0o2000;
const WNOHANG = 1;

let libc: Deno.DynamicLibrary<typeof SYMBOLS>["symbols"] | undefined;

function lib(): Deno.DynamicLibrary<typeof SYMBOLS>["symbols"] {
  libc ??= Deno.dlopen("libc.so.6", SYMBOLS).symbols;
  return libc;
}

const encoder = new TextEncoder();

/** A NUL-terminated copy of `s` in memory of its own (off V8's heap: it never moves). */
function cString(s: string): Uint8Array<ArrayBuffer> {
  const encoded = encoder.encode(`${s}\0`);
  const out = new Uint8Array(new ArrayBuffer(encoded.length));
  out.set(encoded);
  return out;
}

/**
 * C's `char *[]`: the strings NUL-terminated in one block of memory of its own, and a NULL-ended
 * array of pointers into it. Both must stay referenced while C uses them.
 */
function cStringArray(strings: string[]): {
  block: Uint8Array<ArrayBuffer>;
  pointers: BigUint64Array<ArrayBuffer>;
} {
  const encoded = strings.map((s) => encoder.encode(s));
  const block = new Uint8Array(
    new ArrayBuffer(encoded.reduce((n, e) => n + e.length + 1, 0)),
  );
  const base = BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(block)));
  const pointers = new BigUint64Array(new ArrayBuffer(8 * (strings.length + 1)));
  let offset = 0;
  encoded.forEach((e, i) => {
    block.set(e, offset); // the byte after it is 0 already
    pointers[i] = base + BigInt(offset);
    offset += e.length + 1;
  });
  return { block, pointers };
}

function bytes(a: ArrayBufferView<ArrayBuffer>): Uint8Array<ArrayBuffer> {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

function errnoText(errno: number): string {
  const p = lib().strerror(errno);
  return p ? Deno.UnsafePointerView.getCString(p) : `errno ${errno}`;
}

function lastErrno(): number {
  const p = lib().__errno_location();
  return p ? new Deno.UnsafePointerView(p).getInt32() : 0;
}

/**
 * Starts `argv` in the background, in a session of its own, detached from the caller (it
 * outlives it; its parent becomes init, or kattach as PID 1), stdin from /dev/null, output
 * appended to `logFile`, working directory `cwd`, as `user` when given. A program that cannot be
 * executed (or a log file or directory it cannot open) is an error here; one that exits later
 * settles `exited`.
 */
export function spawnDetached(argv: string[], o: SpawnDetachedOptions): DetachedProcess {
  if (argv.length === 0) throw new Error("spawnDetached: an empty argv");
  if (o.inheritFd !== undefined && !(Number.isInteger(o.inheritFd) && o.inheritFd > INHERITED_FD)) {
    throw new Error(`spawnDetached: cannot hand descriptor ${o.inheritFd} on as ${INHERITED_FD}`);
  }
  const c = lib();
  const fileActions = new BigUint64Array(32); // posix_spawn_file_actions_t: 80 bytes on glibc
  const attr = new BigUint64Array(64); // posix_spawnattr_t: 336 bytes
  const allSignals = new BigUint64Array(16); // sigset_t: 128 bytes
  const noSignals = new BigUint64Array(16);
  const args = cStringArray(argv);
  const env = cStringArray(
    Object.entries(o.env ?? Deno.env.toObject()).map(([k, v]) => `${k}=${v}`),
  );
  const [devNull, log, cwd] = [cString("/dev/null"), cString(o.logFile), cString(o.cwd)];
  const pid = new Int32Array(1);
  c.posix_spawn_file_actions_init(bytes(fileActions));
  c.posix_spawnattr_init(bytes(attr));
  let rc: number;
  try {
    // In the child, in this order: its directory, then its standard streams (as its user).
    c.posix_spawn_file_actions_addchdir_np(bytes(fileActions), cwd);
    c.posix_spawn_file_actions_addopen(bytes(fileActions), 0, devNull, 0, 0);
    c.posix_spawn_file_actions_addopen(
      bytes(fileActions),
      1,
      log,
      O_WRONLY | O_CREAT | O_APPEND,
      0o640,
    );
    c.posix_spawn_file_actions_addopen(
      bytes(fileActions),
      2,
      log,
      O_WRONLY | O_CREAT | O_APPEND,
      0o640,
    );
    // dup2 leaves the child's copy without close-on-exec: QEMU keeps it across its exec.
    if (o.inheritFd !== undefined) {
      c.posix_spawn_file_actions_adddup2(bytes(fileActions), o.inheritFd, INHERITED_FD);
    }
    // Nothing else of ours: descriptors this process got without close-on-exec (a /dev/null
    // of the runtime's, a pipe inherited from whoever started it) would stay open in a guest's
    // QEMU for its whole life (a pipe's reader then never sees its end).
    c.posix_spawn_file_actions_addclosefrom_np?.(
      bytes(fileActions),
      o.inheritFd === undefined ? INHERITED_FD : INHERITED_FD + 1,
    );
    c.sigfillset(bytes(allSignals));
    c.sigemptyset(bytes(noSignals));
    c.posix_spawnattr_setsigdefault(bytes(attr), bytes(allSignals));
    c.posix_spawnattr_setsigmask(bytes(attr), bytes(noSignals));
    c.posix_spawnattr_setflags(
      bytes(attr),
      POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK,
    );
    const spawn = () =>
      c.posix_spawnp(
        bytes(pid),
        cString(argv[0]),
        bytes(fileActions),
        bytes(attr),
        bytes(args.pointers),
        bytes(env.pointers),
      );
    rc = o.user ? asUser(o.user, spawn) : spawn();
    // The blocks the pointers point into stay referenced until here (the call is over).
    void [args.block, env.block];
  } finally {
    c.posix_spawn_file_actions_destroy(bytes(fileActions));
    c.posix_spawnattr_destroy(bytes(attr));
  }
  if (rc !== 0) {
    throw new Error(
      `cannot start ${argv[0]}: ${
        errnoText(rc)
      } (the program, its directory ${o.cwd} or its log ${o.logFile}${
        o.user ? ` as uid ${o.user.uid}` : ""
      })`,
    );
  }
  return { pid: pid[0], exited: watchChild(pid[0]) };
}

/**
 * Runs `fn` with this thread's ids set to `user`'s (no supplementary groups), root kept as the
 * saved uid, and puts the thread's ids and groups back afterwards, whatever `fn` did.
 */
function asUser<T>(user: UserIds, fn: () => T): T {
  const c = lib();
  const nr = SYSCALLS[Deno.build.arch];
  if (!nr) throw new Error(`spawnDetached: no system call numbers for ${Deno.build.arch}`);
  const [ru, eu, su, rg, eg, sg] = Array.from({ length: 6 }, () => new Uint32Array(1));
  c.getresuid(bytes(ru), bytes(eu), bytes(su));
  c.getresgid(bytes(rg), bytes(eg), bytes(sg));
  const count = c.getgroups(0, null);
  // In memory of its own: its address is handed to setgroups below, after other allocations.
  const groups = new Uint32Array(new ArrayBuffer(4 * Math.max(count, 1)));
  if (count < 0 || c.getgroups(count, bytes(groups)) !== count) {
    throw new Error(`cannot read this thread's groups: ${errnoText(lastErrno())}`);
  }
  const call = (what: string, n: bigint, a: bigint, b: bigint, d: bigint) => {
    if (c.syscall(n, a, b, d) !== 0n) {
      throw new Error(`cannot start as uid ${user.uid}: ${what}: ${errnoText(lastErrno())}`);
    }
  };
  const groupsPtr = BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(groups)));
  let step = 0;
  try {
    call("setgroups", nr.setgroups, 0n, 0n, 0n);
    step = 1;
    call("setresgid", nr.setresgid, BigInt(user.gid), BigInt(user.gid), BigInt(user.gid));
    step = 2;
    call("setresuid", nr.setresuid, BigInt(user.uid), BigInt(user.uid), BigInt(su[0]));
    step = 3;
    return fn();
  } finally {
    // Back in the reverse order: the uid first (it brings the capabilities back).
    if (step >= 3) call("restoring the uid", nr.setresuid, ...ids(ru, eu, su));
    if (step >= 2) call("restoring the gid", nr.setresgid, ...ids(rg, eg, sg));
    if (step >= 1) call("restoring the groups", nr.setgroups, BigInt(count), groupsPtr, 0n);
  }
}

function ids(r: Uint32Array, e: Uint32Array, s: Uint32Array): [bigint, bigint, bigint] {
  return [BigInt(r[0]), BigInt(e[0]), BigInt(s[0])];
}

/** Children started here whose end is not collected yet, and who waits for it. */
const children = new Map<number, (end: ProcessEnd) => void>();

const SIGNAL_NAMES: Record<number, string> = {
  1: "SIGHUP",
  2: "SIGINT",
  3: "SIGQUIT",
  4: "SIGILL",
  6: "SIGABRT",
  7: "SIGBUS",
  8: "SIGFPE",
  9: "SIGKILL",
  11: "SIGSEGV",
  13: "SIGPIPE",
  15: "SIGTERM",
};

/** Decodes a wait status (wait.h). */
export function decodeWaitStatus(status: number): ProcessEnd {
  const signal = status & 0x7f;
  return signal === 0
    ? { code: (status >> 8) & 0xff, signal: null }
    : { code: null, signal: SIGNAL_NAMES[signal] ?? `signal ${signal}` };
}

/** A look every so often besides SIGCHLD, in case the runtime merged or missed one. */
const REAP_LOOK_MS = 5000;
let reapTimer: ReturnType<typeof setInterval> | undefined;

function watchChild(pid: number): Promise<ProcessEnd> {
  holdOwnChild(pid);
  const ended = new Promise<ProcessEnd>((resolve) => children.set(pid, resolve));
  if (children.size === 1) {
    Deno.addSignalListener("SIGCHLD", reapChildren);
    reapTimer = setInterval(reapChildren, REAP_LOOK_MS);
    Deno.unrefTimer(reapTimer); // it does not keep this process alive
  }
  // A child that ended before the listener was in place sent its SIGCHLD to no one.
  reapChildren();
  return ended;
}

/** Collects the exit status of each child of ours that ended (never another's). */
function reapChildren(): void {
  const status = new Int32Array(1);
  for (const [pid, resolve] of children) {
    const r = lib().waitpid(pid, bytes(status), WNOHANG);
    if (r === 0) continue;
    // Ended (or, r < 0: ECHILD, collected by someone else: it ended all the same).
    children.delete(pid);
    releaseOwnChild(pid);
    resolve(r === pid ? decodeWaitStatus(status[0]) : { code: null, signal: null });
  }
  if (children.size === 0 && reapTimer !== undefined) {
    Deno.removeSignalListener("SIGCHLD", reapChildren);
    clearInterval(reapTimer);
    reapTimer = undefined;
  }
}

/*
 * A listening unix socket as a raw file descriptor, for a child process to inherit: kattach makes
 * a guest's QMP socket before QEMU starts and hands it over (as libvirt does with its monitor
 * sockets). QEMU accepts on it; a connection made right after the spawn waits in the socket's
 * backlog until QEMU is ready, instead of trying the path every few milliseconds until QEMU has
 * made it (each try a failed connect and an error object on kattach's JS thread; issue 13).
 *
 * Deno's own listeners do not give their descriptors away, so the socket is made through libc
 * (FFI): socket(2) with SOCK_CLOEXEC (no other child inherits it), bind(2), listen(2).
 */

/** Linux's values (sys/socket.h, bits/socket_type.h). */
const AF_UNIX = 1;
const SOCK_STREAM = 1;
const SOCK_CLOEXEC = 0o2000000;
/** sockaddr_un: a 2-byte family, then sun_path[108] (NUL-terminated). */
const SUN_PATH_BYTES = 108;

/**
 * Makes a unix stream socket listening at `path` and returns its descriptor (close-on-exec; hand
 * it to a child with spawnDetached's `inheritFd`, then {@linkcode closeFd} it here). A socket file
 * left at `path` by an earlier run is replaced; any other file there is an error, as is a path
 * too long for a unix socket.
 */
export function listenUnixFd(path: string, backlog = 4): number {
  const encoded = new TextEncoder().encode(path);
  if (encoded.length === 0 || encoded.length >= SUN_PATH_BYTES || encoded.includes(0)) {
    throw new Error(`cannot listen at ${path}: not a usable unix socket path`);
  }
  try {
    if (Deno.lstatSync(path).isSocket) Deno.removeSync(path);
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
  const addr = new Uint8Array(2 + SUN_PATH_BYTES);
  new DataView(addr.buffer).setUint16(0, AF_UNIX, true);
  addr.set(encoded, 2);
  const c = lib();
  const fd = c.socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw new Error(`cannot make a unix socket for ${path}: ${errnoText(lastErrno())}`);
  if (c.bind(fd, addr, 2 + encoded.length + 1) !== 0 || c.listen(fd, backlog) !== 0) {
    const why = errnoText(lastErrno());
    c.close(fd);
    throw new Error(`cannot listen at ${path}: ${why}`);
  }
  return fd;
}

/** Closes a descriptor from {@linkcode listenUnixFd} (this process' copy; a child keeps its own). */
export function closeFd(fd: number): void {
  lib().close(fd);
}

/**
 * A listening unix socket as a raw file descriptor, for a child process to inherit: kattach makes
 * a guest's QMP socket before QEMU starts and hands it over (as libvirt does with its monitor
 * sockets). QEMU accepts on it; a connection made right after the spawn waits in the socket's
 * backlog until QEMU is ready, instead of trying the path every few milliseconds until QEMU has
 * made it (each try a failed connect and an error object on kattach's JS thread; issue 13).
 *
 * Deno's own listeners do not give their descriptors away, so the socket is made through libc
 * (FFI): socket(2) with SOCK_CLOEXEC (no other child inherits it), bind(2), listen(2).
 */

const SYMBOLS = {
  socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
  bind: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  listen: { parameters: ["i32", "i32"], result: "i32" },
  close: { parameters: ["i32"], result: "i32" },
  strerror: { parameters: ["i32"], result: "pointer" },
  __errno_location: { parameters: [], result: "pointer" },
} as const;

/** Linux's values (sys/socket.h, bits/socket_type.h). */
const AF_UNIX = 1;
const SOCK_STREAM = 1;
const SOCK_CLOEXEC = 0o2000000;
/** sockaddr_un: a 2-byte family, then sun_path[108] (NUL-terminated). */
const SUN_PATH_BYTES = 108;

let libc: Deno.DynamicLibrary<typeof SYMBOLS>["symbols"] | undefined;

function lib(): Deno.DynamicLibrary<typeof SYMBOLS>["symbols"] {
  libc ??= Deno.dlopen("libc.so.6", SYMBOLS).symbols;
  return libc;
}

function errnoText(): string {
  const c = lib();
  const e = c.__errno_location();
  const errno = e ? new Deno.UnsafePointerView(e).getInt32() : 0;
  const p = c.strerror(errno);
  return p ? Deno.UnsafePointerView.getCString(p) : `errno ${errno}`;
}

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
  if (fd < 0) throw new Error(`cannot make a unix socket for ${path}: ${errnoText()}`);
  if (c.bind(fd, addr, 2 + encoded.length + 1) !== 0 || c.listen(fd, backlog) !== 0) {
    const why = errnoText();
    c.close(fd);
    throw new Error(`cannot listen at ${path}: ${why}`);
  }
  return fd;
}

/** Closes a descriptor from {@linkcode listenUnixFd} (this process' copy; a child keeps its own). */
export function closeFd(fd: number): void {
  lib().close(fd);
}

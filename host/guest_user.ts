/**
 * The unprivileged user QEMU runs as when kattach is root (`kaos-qemu`), and the few grants that
 * make a guest's files reachable for it: group read on the shared, read-only guest files (module
 * images, vKaOS kernels), its own instance directory, traversal of the directories above, and
 * /dev/kvm. Nothing else of the host is opened to it. QEMU is started as this user in a session
 * of its own by host/spawn.ts (QEMU's own `-daemonize` forks and calls setsid() after its seccomp
 * sandbox is in place, which the sandbox (`spawn=deny`, `elevateprivileges=deny`) forbids).
 */
import { outputOwned } from "./run.ts";

/** The user (and group) guests' QEMU processes run as. */
export const QEMU_USER = "kaos-qemu";

/** A user's numeric ids. */
export interface UserIds {
  uid: number;
  gid: number;
}

/** Looks a user up in a passwd file's text; null when it is not there. */
export function parsePasswd(text: string, name: string): UserIds | null {
  for (const line of text.split("\n")) {
    const f = line.split(":");
    if (f[0] === name && f.length >= 4) {
      const uid = Number(f[2]), gid = Number(f[3]);
      if (Number.isInteger(uid) && Number.isInteger(gid)) return { uid, gid };
    }
  }
  return null;
}

/** The ids of `name` from /etc/passwd, or null. */
export async function lookupUser(name: string, passwd = "/etc/passwd"): Promise<UserIds | null> {
  const text = await Deno.readTextFile(passwd).catch(() => "");
  return parsePasswd(text, name);
}

/**
 * The ids QEMU runs as: null when kattach is not root (QEMU then runs as kattach's own user).
 * As root, the `kaos-qemu` user is created when missing (`useradd --system`; the appliance image
 * has it already). Throws when it cannot be had: a root kattach never runs QEMU as root.
 */
export function ensureGuestUser(log: (line: string) => void): Promise<UserIds | null> {
  // One answer per process: the user does not change while kattach runs.
  guestUserOnce ??= findOrCreateGuestUser(log);
  return guestUserOnce;
}

let guestUserOnce: Promise<UserIds | null> | undefined;

async function findOrCreateGuestUser(log: (line: string) => void): Promise<UserIds | null> {
  if (Deno.uid() !== 0) return null;
  const found = await lookupUser(QEMU_USER);
  if (found) return found;
  const out = await outputOwned("useradd", {
    args: [
      "--system",
      "--user-group",
      "--no-create-home",
      "--home-dir",
      "/nonexistent",
      "--shell",
      "/usr/sbin/nologin",
      QEMU_USER,
    ],
    stdout: "null",
    stderr: "piped",
  }).catch((err) => ({ success: false, stderr: new TextEncoder().encode(String(err)) }));
  const made = await lookupUser(QEMU_USER);
  if (!made) {
    throw new Error(
      `cannot create the user ${QEMU_USER} QEMU runs as: ${
        new TextDecoder().decode(out.stderr).trim()
      }`,
    );
  }
  log(`host: created the system user ${QEMU_USER} (uid ${made.uid}) for QEMU`);
  return made;
}

/** Gives group `gid` read (files) or traversal (directories) on `path`; the owner stays. */
export async function grantGroup(path: string, gid: number): Promise<void> {
  const st = await Deno.stat(path);
  if (st.gid !== gid) await Deno.chown(path, null, gid);
  const want = (st.mode ?? 0) | (st.isDirectory ? 0o010 : 0o040);
  if (want !== st.mode) await Deno.chmod(path, want & 0o7777);
}

/**
 * Makes every directory above `path` (not `path` itself) traversable by others (`o+x`, never
 * read), so a process of another user can reach a file whose path it is given. Returns the
 * directories it changed.
 */
export async function grantTraversal(path: string): Promise<string[]> {
  const parts = path.split("/").filter((p) => p !== "");
  const dirs = parts.slice(0, -1).map((_, i) => "/" + parts.slice(0, i + 1).join("/")).reverse();
  // Looked at all at once (each a round trip through Deno's thread pool), changed where needed.
  const stats = await Promise.all(dirs.map((dir) => Deno.stat(dir)));
  const changed = dirs.filter((_, i) => ((stats[i].mode ?? 0) & 0o001) === 0);
  await Promise.all(
    changed.map((dir) => Deno.chmod(dir, ((stats[dirs.indexOf(dir)].mode ?? 0) | 0o001) & 0o7777)),
  );
  return changed;
}

/** Hands a directory and everything in it (one level of files) to the user. */
export async function chownTree(dir: string, ids: UserIds): Promise<void> {
  const [, entries] = await Promise.all([
    Deno.chown(dir, ids.uid, ids.gid),
    Array.fromAsync(Deno.readDir(dir)),
  ]);
  // At once: each chown is a round trip through Deno's thread pool (a deploy makes 20 trees).
  await Promise.all(
    entries.filter((e) => !e.isSymlink) // chown follows links: never hand over what one points to
      .map((e) => Deno.chown(`${dir}/${e.name}`, ids.uid, ids.gid).catch(() => {})),
  );
}

/**
 * Lets the user open a device (/dev/kvm, /dev/net/tun, /dev/vhost-net): nothing when everyone
 * may read and write it already (udev makes /dev/net/tun 0666), else an ACL entry
 * (`setfacl -m u:USER:rw`) where setfacl exists, else the device's group becomes the user's group
 * (the appliance owns its /dev). Returns what it did.
 */
export async function grantDevice(ids: UserIds, device: string): Promise<string> {
  const mode = (await Deno.stat(device)).mode ?? 0;
  if ((mode & 0o006) === 0o006) return `${device} is open to every user already (nothing done)`;
  const acl = await outputOwned("setfacl", {
    args: ["-m", `u:${ids.uid}:rw`, device],
    stdout: "null",
    stderr: "null",
  }).then((o) => o.success, () => false);
  if (acl) return `ACL u:${QEMU_USER}:rw on ${device}`;
  const st = await Deno.stat(device);
  await Deno.chown(device, null, ids.gid);
  await Deno.chmod(device, ((st.mode ?? 0) | 0o060) & 0o7777);
  return `${device} group ${QEMU_USER}, mode g+rw`;
}

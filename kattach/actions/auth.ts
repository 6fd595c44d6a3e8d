/** Operator access (the aqcli password, authorized SSH keys) and power (shutdown, reboot). */
import { UserError } from "../../lib/errors.ts";
import {
  checkPasswordPolicy,
  CLI_USER,
  hashPassword,
  isDefaultPassword,
  parsePublicKey,
  publicKeyLine,
  verifyPassword,
} from "../auth.ts";
import {
  addAuthKey,
  type AuthKeyRow,
  deleteAuthKey,
  getAuthUser,
  listAuthKeys,
  setPasswordHash,
} from "../store_auth.ts";
import { outputOwned } from "../../host/mod.ts";
import { supervisorOf } from "../supervisor.ts";
import type { Handlers, Kattach } from "./_types.ts";

/** A hash no password matches, so unknown users cost as much time as known ones. */
let decoy: Promise<string> | undefined;

function keyInfo(k: AuthKeyRow) {
  return {
    fingerprint: k.fingerprint,
    type: k.type,
    comment: k.comment,
    addedAt: k.addedAt,
    line: publicKeyLine(k),
  };
}

/** True when `password` is the user's current password. */
async function passwordMatches(k: Kattach, user: string, password: string): Promise<boolean> {
  const row = user === CLI_USER ? getAuthUser(k.store, user) : undefined;
  if (!row) {
    decoy ??= hashPassword(crypto.randomUUID());
    await verifyPassword(password, await decoy);
    return false;
  }
  if (row.passwordHash === "") return isDefaultPassword(password);
  return await verifyPassword(password, row.passwordHash);
}

/** Runs a power action on the appliance: sync, then busybox reboot/poweroff -f. */
/** How long each guest gets to power off when the appliance shuts down or reboots. */
const GUEST_STOP_TIMEOUT_S = 30;

function power(k: Kattach, what: "reboot" | "poweroff"): { message: string } {
  if (k.mode === "hosted") {
    throw new UserError(
      `Cannot ${what === "reboot" ? "reboot" : "shut down"}: not available in hosted mode`,
      {
        hint: "stop the hosted kattach with Ctrl+C or kill; this command is for the appliance",
        code: "unsupported",
      },
    );
  }
  k.log(`${what} requested by the operator`);
  setTimeout(async () => {
    try {
      // Guests first: each gets its ACPI power-off (quit after the timeout), then disks sync.
      await supervisorOf(k).stopAll({ timeoutSeconds: GUEST_STOP_TIMEOUT_S }).catch((err) =>
        k.log(`${what}: stopping guests failed: ${err instanceof Error ? err.message : err}`)
      );
      await outputOwned("sync").catch(() => {});
      await outputOwned("busybox", { args: [what, "-f"] });
    } catch (err) {
      k.log(`${what} failed: ${err instanceof Error ? err.message : err}`);
    }
  }, 500);
  return {
    message: what === "reboot"
      ? "Stopping the guests, then rebooting."
      : "Stopping the guests, then shutting down.",
  };
}

/** The access and power handlers. */
export const authHandlers: Handlers<
  | "auth.check"
  | "auth.change"
  | "auth.keys.list"
  | "auth.keys.add"
  | "auth.keys.del"
  | "system.shutdown"
  | "system.reboot"
> = {
  async "auth.check"(k, { user, password }) {
    if (!(await passwordMatches(k, user, password))) return { verdict: "denied" };
    return { verdict: getAuthUser(k.store, user)!.mustChange ? "must-change" : "ok" };
  },

  async "auth.change"(k, { user, oldPassword, newPassword, dryRun }) {
    const row = user === CLI_USER ? getAuthUser(k.store, user) : undefined;
    if (!row) {
      throw new UserError(`Cannot change the password of ${JSON.stringify(user.slice(0, 64))}`, {
        hint: `the only user is ${CLI_USER}`,
        code: "not-found",
      });
    }
    if (oldPassword === undefined) {
      if (!row.mustChange) {
        throw new UserError("Cannot change the password without the current one", {
          hint: "give the current password",
          code: "denied",
        });
      }
    } else if (!(await passwordMatches(k, user, oldPassword))) {
      throw new UserError("Cannot change the password: the current password is wrong", {
        hint: "type the password you logged in with",
        code: "denied",
      });
    }
    checkPasswordPolicy(newPassword, { user });
    if (row.passwordHash !== "" && (await verifyPassword(newPassword, row.passwordHash))) {
      throw new UserError("Cannot set the password: it is the current password", {
        hint: "choose a different one",
        code: "invalid",
      });
    }
    if (dryRun) return { user, changed: false };
    setPasswordHash(k.store, user, await hashPassword(newPassword));
    k.log(`password of ${user} changed`);
    return { user, changed: true };
  },

  "auth.keys.list"(k) {
    return listAuthKeys(k.store, CLI_USER).map(keyInfo);
  },

  "auth.keys.add"(k, { key }) {
    const parsed = parsePublicKey(key);
    if (!addAuthKey(k.store, { ...parsed, user: CLI_USER })) {
      throw new UserError(`Cannot add the SSH key: ${parsed.fingerprint} is already authorized`, {
        hint: "see `system ssh-key list`",
        code: "conflict",
      });
    }
    k.log(`ssh key ${parsed.fingerprint} (${parsed.comment || parsed.type}) authorized`);
    return keyInfo(
      listAuthKeys(k.store, CLI_USER).find((r) => r.fingerprint === parsed.fingerprint)!,
    );
  },

  "auth.keys.del"(k, { key }) {
    const keys = listAuthKeys(k.store, CLI_USER);
    const want = key.trim();
    const byFingerprint = keys.filter((r) =>
      r.fingerprint === want || r.fingerprint === `SHA256:${want}`
    );
    const matches = byFingerprint.length > 0
      ? byFingerprint
      : keys.filter((r) => r.comment !== "" && r.comment === want);
    if (matches.length === 0) {
      throw new UserError(`Cannot delete SSH key ${JSON.stringify(want)}: no such key`, {
        hint: "give a fingerprint (SHA256:…) or a comment from `system ssh-key list`",
        code: "not-found",
      });
    }
    if (matches.length > 1) {
      throw new UserError(`Cannot delete SSH key ${JSON.stringify(want)}: several keys match`, {
        hint: "give the fingerprint (SHA256:…) instead of the comment",
        code: "conflict",
      });
    }
    deleteAuthKey(k.store, matches[0].fingerprint);
    k.log(`ssh key ${matches[0].fingerprint} removed`);
    return { deleted: matches[0].fingerprint };
  },

  "system.shutdown": (k) => power(k, "poweroff"),
  "system.reboot": (k) => power(k, "reboot"),
};

/**
 * Operator access and power actions: password checks and changes for the CLI user, authorized
 * SSH keys, shutdown and reboot. Spread into the registry in actions.ts. The IPC token is only
 * readable by root, so only kattach's own front-ends (the sshd and console children, aq as root)
 * can ask these.
 */
import { z } from "zod";
import { lazySchema } from "../lib/lazy_schema.ts";

const None = lazySchema(() => z.strictObject({}));
const User = lazySchema(() => z.string().max(64));
/** A password as typed (the policy is checked by kattach). */
const Password = lazySchema(() => z.string().max(1024));

/** The answer to a login attempt. */
export const AuthVerdict = lazySchema(() => z.enum(["ok", "must-change", "denied"]));
export type AuthVerdict = z.infer<typeof AuthVerdict>;

/** An authorized SSH key. */
export const SshKeyInfo = lazySchema(() =>
  z.strictObject({
    fingerprint: z.string(),
    type: z.string(),
    comment: z.string(),
    addedAt: z.string(),
    /** The OpenSSH authorized_keys line. */
    line: z.string(),
  })
);
export type SshKeyInfo = z.infer<typeof SshKeyInfo>;

/** What a power action did. */
export const PowerResult = lazySchema(() => z.strictObject({ message: z.string() }));
export type PowerResult = z.infer<typeof PowerResult>;

/** The access and power actions: name → a builder of its schemas (actions.ts builds each at first use). */
export const authActions = {
  "auth.check": () => ({
    params: z.strictObject({ user: User, password: Password }),
    result: z.strictObject({ verdict: AuthVerdict }),
  }),
  "auth.change": () => ({
    params: z.strictObject({
      user: User,
      /** Required unless the release's default password must still be changed. */
      oldPassword: Password.optional(),
      newPassword: Password,
      /**
       * Only check (the current password, the policy, not the current one again) and change
       * nothing: the prompts ask right after the first entry of a new password, not after the
       * retype.
       */
      dryRun: z.boolean().optional(),
    }),
    /** `changed` is false after a dry run. */
    result: z.strictObject({ user: z.string(), changed: z.boolean() }),
  }),
  "auth.keys.list": () => ({ params: None, result: z.array(SshKeyInfo) }),
  "auth.keys.add": () => ({
    params: z.strictObject({ key: z.string().max(16384) }),
    result: SshKeyInfo,
  }),
  "auth.keys.del": () => ({
    params: z.strictObject({ key: z.string().min(1).max(256) }),
    result: z.strictObject({ deleted: z.string() }),
  }),
  "system.shutdown": () => ({ params: None, result: PowerResult }),
  "system.reboot": () => ({ params: None, result: PowerResult }),
} as const;

/**
 * The two error families (STYLE rule 13): a UserError is shown to the operator as is; anything
 * else is a bug, logged with its stack and shown as one generic line.
 */

/** An error caused by the operator's input or the state of the system, with a hint to fix it. */
export class UserError extends Error {
  /** What the operator can do about it, or "" when there is nothing useful to say. */
  readonly hint: string;
  /** A stable machine-readable code, e.g. "not-found", "conflict", "invalid". */
  readonly code: string;

  constructor(message: string, options: { hint?: string; code?: string; cause?: unknown } = {}) {
    super(message, { cause: options.cause });
    this.name = "UserError";
    this.hint = options.hint ?? "";
    this.code = options.code ?? "invalid";
  }
}

/** True when the error is a UserError. */
export function isUserError(err: unknown): err is UserError {
  return err instanceof UserError;
}

/** Turns zod issues into one readable sentence: "port: must be at most 65535; name: ...". */
export function describeIssues(
  issues: readonly { path: readonly PropertyKey[]; message: string }[],
): string {
  return issues.map((i) =>
    i.path.length > 0 ? `${i.path.map(String).join(".")}: ${i.message}` : i.message
  ).join("; ");
}

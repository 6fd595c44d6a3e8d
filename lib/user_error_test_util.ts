/** Test helper: runs `fn` and returns the UserError it throws (fails if it throws none). */
import { UserError } from "./errors.ts";

/** The UserError `fn` throws; any other outcome fails the test. */
export function userError(fn: () => unknown): UserError {
  try {
    fn();
  } catch (err) {
    if (err instanceof UserError) return err;
    throw err;
  }
  throw new Error("expected a UserError");
}

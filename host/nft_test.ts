import { rejects } from "node:assert/strict";
import { NftError, realNft } from "./nft.ts";

Deno.test("realNft: an nft that ends before reading its script is an NftError with its own words", async () => {
  // A stand-in that reads nothing, says why on stderr and fails; the script is larger than a
  // pipe's buffer, so our write breaks.
  const host = realNft([
    "sh",
    "-c",
    "echo 'Cannot open network namespace \"gone\"' >&2; exit 1",
    "nft",
  ]);
  const script = `# ${"x".repeat(256 * 1024)}\n`;
  await rejects(host.apply(script), (err: Error) => {
    if (!(err instanceof NftError)) throw err;
    return /refused the ruleset: Cannot open network namespace "gone"/.test(err.message);
  });
});

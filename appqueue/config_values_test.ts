import assert from "node:assert/strict";
import { UserError } from "../lib/errors.ts";
import { checkGivenValues, resolveConfigValues } from "./config_values.ts";
import { Climod } from "./manifest.ts";

const climod = Climod.parse({
  format: "kaos-climod/1",
  fields: [
    { name: "message", type: "string", maxLength: 20, pattern: "^[a-z ]+$", help: "What to print" },
    { name: "count", type: "integer", default: 1, min: 1, max: 10 },
  ],
  commands: [],
});

function refusal(f: () => void): string {
  try {
    f();
  } catch (err) {
    assert.ok(err instanceof UserError);
    return `${err.message} | ${err.hint}`;
  }
  return "";
}

Deno.test("checkGivenValues: each value given on its own (one answer of the menus), not the ones left out", () => {
  const given = (input: Record<string, string>) =>
    refusal(() => checkGivenValues(climod, input, { module: "hello" }));
  // `message` is required, but a check of `count` alone does not ask for it.
  assert.equal(given({ count: "3" }), "");
  assert.equal(given({ message: "hi there" }), "");
  assert.equal(
    given({ message: "Hi!" }),
    'Invalid value "Hi!" for message: must match ^[a-z ]+$ | What to print',
  );
  assert.match(given({ count: "11" }), /^Invalid value "11" for count: must be at most 10/);
  assert.match(
    given({ colour: "red" }),
    /^Module hello has no configuration field colour \| its fields are: message, count/,
  );
  // The whole command: the same refusals, and then what is missing.
  assert.equal(
    refusal(() => resolveConfigValues(climod, { message: "Hi!" }, { module: "hello" })),
    'Invalid value "Hi!" for message: must match ^[a-z ]+$ | What to print',
  );
  assert.match(
    refusal(() => resolveConfigValues(climod, { count: "3" }, { module: "hello" })),
    /^Field message of module hello is required/,
  );
});

import assert from "node:assert/strict";
import { z } from "zod";
import { lazySchema, lazySchemaPending } from "./lazy_schema.ts";

Deno.test("lazySchema: builds once, at the first use, and validates as the schema itself", () => {
  let builds = 0;
  const Name = lazySchema(() => {
    builds++;
    return z.string().regex(/^[a-z]+$/, "names are lower-case letters");
  });
  assert.deepEqual(builds, 0);
  assert(lazySchemaPending(Name));
  assert.deepEqual(Name.parse("web"), "web");
  assert.deepEqual(builds, 1);
  assert(!lazySchemaPending(Name));
  const r = Name.safeParse("Web");
  assert(!r.success);
  assert.deepEqual(r.error.issues[0].message, "names are lower-case letters");
  assert.deepEqual(builds, 1);
});

Deno.test("lazySchema: composed schemas build their parts only when they are built", () => {
  const built: string[] = [];
  const Id = lazySchema(() => (built.push("Id"), z.number().int().min(1, "ids start at 1")));
  const Window = lazySchema(() => (built.push("Window"), { limit: z.number().optional() }));
  const Item = lazySchema(() => (built.push("Item"), z.strictObject({ id: Id, ...Window })));
  const Named = lazySchema(() => (built.push("Named"), Item.extend({ name: z.string() })));
  const List = lazySchema(() => (built.push("List"), z.array(Named)));
  assert.deepEqual(built, []);
  assert.deepEqual(List.parse([{ id: 2, name: "a", limit: 3 }]), [{ id: 2, name: "a", limit: 3 }]);
  assert.deepEqual(built, ["List", "Named", "Item", "Window", "Id"]);
  const r = List.safeParse([{ id: 0, name: "a" }]);
  assert(!r.success);
  assert.deepEqual(r.error.issues.map((i) => [i.path, i.message]), [[[0, "id"], "ids start at 1"]]);
  assert.throws(() => Item.parse({ id: 1, extra: true }), /Unrecognized key/); // still strict
  assert.deepEqual(Object.keys(Item.shape), ["id", "limit"]);
  assert.deepEqual(Object.keys(Window), ["limit"]);
  assert("limit" in Window);
});

Deno.test("lazySchema: the stand-in answers instanceof, discriminated unions and enums", () => {
  const Kind = lazySchema(() => z.enum(["vkaos", "app"]));
  const Msg = lazySchema(() =>
    z.discriminatedUnion("op", [
      z.strictObject({ op: z.literal("ping") }),
      z.strictObject({ op: z.literal("run"), kind: Kind }),
    ])
  );
  assert(Kind instanceof z.ZodEnum);
  assert(Msg instanceof z.ZodDiscriminatedUnion);
  assert.deepEqual(Kind.options, ["vkaos", "app"]);
  assert.deepEqual(Msg.parse({ op: "run", kind: "app" }), { op: "run", kind: "app" });
  assert(!Msg.safeParse({ op: "run", kind: "x" }).success);
  assert(!Msg.safeParse({ op: "stop" }).success);
});

Deno.test("lazySchema: an error in the builder reaches the first user and the next one alike", () => {
  const Broken = lazySchema((): z.ZodString => {
    throw new Error("built wrong");
  });
  assert.throws(() => Broken.parse("x"), /built wrong/);
  assert.throws(() => Broken.parse("x"), /built wrong/);
  assert(lazySchemaPending(Broken));
});

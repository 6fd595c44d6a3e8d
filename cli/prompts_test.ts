/**
 * The pick lists of the prompts against a real hosted kattach holding a few thousand records made
 * through IPC (issue 13: a configuration of thousands): each screen is one `list` request of a
 * screenful, "next"/"previous" fetch the neighbouring window, the name filter is answered by
 * kattach (SQLite, before its LIMIT), and "type a name" is the way out. The `list` actions'
 * `filter` and the one-line `--filter` flag are checked on the same kattach.
 */
import {
  deepStrictEqual as assertEquals,
  match as assertMatch,
  ok as assert,
  rejects as assertRejects,
} from "node:assert/strict";
import { type ActionName, IpcClient, type ParamsOf } from "../ipc/mod.ts";
import { buildFixtures, FIXTURES_OUT, TestKattach } from "../tests/_harness.ts";
import { Scripted } from "../tests/_scripted.ts";
import { screenSelect } from "../tests/_util.ts";
import { commands } from "./commands.ts";
import { pickRunningInstance } from "./menu_debug.ts";
import { type Caller, callerOf, pickPageSize, promptArg, promptFlag } from "./prompts.ts";

const IMAGES = 40;
const PER_IMAGE = 50; // 2,000 instances
const VLANS = 300;

/** One request a pick list sent: its action, parameters and how many entries came back. */
interface Sent {
  action: ActionName;
  params: Record<string, unknown>;
  entries: number;
}

/** A caller to the real kattach that notes every request (the requests still go through). */
function noting(call: Caller, sent: Sent[]): Caller {
  return (async <A extends ActionName>(action: A, params: ParamsOf<A>) => {
    // Noted in the order sent (a pick list's requests for typed text can overlap).
    const note: Sent = { action, params: params as Record<string, unknown>, entries: -1 };
    sent.push(note);
    const result = await call(action, params);
    note.entries = Array.isArray(result) ? result.length : -1;
    return result;
  }) as Caller;
}

async function filled(): Promise<TestKattach> {
  await buildFixtures();
  const k = await TestKattach.start();
  const c = await IpcClient.connect(`${k.stateDir}/run`);
  try {
    await c.call("module.import", { path: `${FIXTURES_OUT}/vkaos` });
    await c.call("module.import", { path: `${FIXTURES_OUT}/web` });
    const pending: Promise<unknown>[] = [];
    for (let id = 1; id <= VLANS; id++) {
      pending.push(
        c.call("vlan.add", { id, name: `net${id}`, cidr: `10.${id >> 8}.${id & 255}.0/24` }),
      );
    }
    for (let i = 0; i < IMAGES; i++) {
      pending.push(
        c.call("configGroup.add", { module: "web", name: `grp${i}`, values: { title: `s${i}` } }),
      );
    }
    await Promise.all(pending);
    for (let i = 0; i < IMAGES; i++) {
      await c.call("vmimage.create", {
        name: `img${i}`,
        modules: ["web"],
        configGroups: [`grp${i}`],
        vlans: [],
      });
    }
    await Promise.all(
      Array.from(
        { length: IMAGES },
        (_, i) => c.call("deploy", { vmimage: `img${i}`, count: PER_IMAGE, noStart: true }),
      ),
    );
  } finally {
    c.close();
  }
  return k;
}

const find = (path: string) => commands.find((c) => c.path.join(" ") === path)!;

Deno.test("pick lists over 2,000 instances: a screenful per request, next, previous, filter, type a name", async (t) => {
  const k = await filled();
  const connect = () => IpcClient.connect(`${k.stateDir}/run`);
  const call = callerOf(connect);
  try {
    await t.step(
      "the list actions take a filter, matched by kattach before the limit",
      async () => {
        const all = await call("instance.list", {});
        assertEquals(all.length, IMAGES * PER_IMAGE);
        const want = all.map((i) => i.name).filter((n) => n.includes("g3-1"));
        const got = await call("instance.list", { filter: "G3-1" }); // any case
        assertEquals(got.map((i) => i.name), want);
        const page = await call("instance.list", { filter: "g3-1", limit: 4, offset: 2 });
        assertEquals(page.map((i) => i.name), want.slice(2, 6));
        // A VLAN by a part of its name or the first digits of its id ("edge" has none in its name).
        await call("vlan.add", { id: 3000, name: "edge", cidr: "10.11.184.0/24" });
        assertEquals((await call("vlan.list", { filter: "300" })).map((v) => v.id), [300, 3000]);
        assertEquals((await call("vlan.list", { filter: "ED" })).map((v) => v.id), [3000]);
        assertEquals((await call("vlan.list", { filter: "29", limit: 4 })).map((v) => v.id), [
          29,
          129,
          229,
          290,
        ]);
        await call("vlan.del", { vlan: "3000" });
        assertEquals((await call("module.list", { filter: "we" })).map((m) => m.name), ["web"]);
        assertEquals(
          (await call("configGroup.list", { filter: "grp3", module: "web" })).map((g) => g.name),
          [
            "grp3",
            "grp30",
            "grp31",
            "grp32",
            "grp33",
            "grp34",
            "grp35",
            "grp36",
            "grp37",
            "grp38",
            "grp39",
          ],
        );
        const images = await call("vmimage.list", { filter: "img1", limit: 2, offset: 1 });
        assertEquals(images.map((v) => [v.name, v.instances, v.configGroups]), [
          ["img10", PER_IMAGE, ["grp10"]],
          ["img11", PER_IMAGE, ["grp11"]],
        ]);
        // "_" is no wildcard (no name has one); "%" and an empty filter are refused, with why.
        assertEquals(await call("instance.list", { filter: "_" }), []);
        for (const filter of ["img%", "", "x".repeat(65)]) {
          await assertRejects(call("instance.list", { filter }), /a list filter is 1-64 letters/);
        }
      },
    );

    await t.step("the one-line --filter, and a bad one refused before kattach", async () => {
      // The list's order (VM image, creation time, name), from the whole list.
      const names = (await call("instance.list", {})).map((i) => i.name);
      const out = await k.json<{ name: string }[]>(
        "instance",
        "list",
        "--filter",
        "img7-4",
        "--limit",
        "3",
      );
      assertEquals(out.map((i) => i.name), names.filter((n) => n.includes("img7-4")).slice(0, 3));
      const bad = await k.aq("vlan", "list", "--filter=a%b");
      assertEquals(bad.code, 2);
      assertMatch(bad.stderr, /--filter "a%b": give 1-64 letters, digits/);
      // By state: every instance here is defined (deployed with --no-start).
      const defined = await k.json<{ name: string }[]>(
        "instance",
        "list",
        "--state",
        "defined,stopped",
        "--limit",
        "2",
      );
      assertEquals(defined.map((i) => i.name), names.slice(0, 2));
      assertEquals(await k.json("instance", "list", "--state", "running"), []);
      const badState = await k.aq("instance", "list", "--state", "running,asleep");
      assertEquals(badState.code, 2);
      assertMatch(badState.stderr, /--state "asleep": instance states are defined, starting/);
    });

    await t.step("published ports: a page of them, by a part of the instance's name", async () => {
      await call("vmimage.create", { name: "fw", modules: ["web"], configGroups: [], vlans: [1] });
      await call("deploy", { vmimage: "fw", count: 12, noStart: true });
      for (let i = 1; i <= 12; i++) {
        await call("firewall.forward.add", {
          instance: `fw-${i}`,
          guestPort: 80,
          hostPort: 20000 + i,
        });
      }
      const all = await call("firewall.forward.list", {});
      assertEquals(all.length, 12);
      const page = await call("firewall.forward.list", { filter: "FW-1", limit: 2, offset: 1 });
      assertEquals(page.map((f) => [f.instance, f.hostPort]), [["fw-10", 20010], ["fw-11", 20011]]);
      const line = await k.json<{ instance: string }[]>(
        "firewall",
        "forward",
        "list",
        "--filter",
        "fw-1",
        "--offset",
        "3",
      );
      assertEquals(line.map((f) => f.instance), ["fw-12"]);
    });

    await t.step(
      "an instance argument: one screenful per request, next, previous, filter",
      async () => {
        const s = new Scripted();
        const sent: Sent[] = [];
        try {
          const size = pickPageSize(s.terminal);
          const answer = promptArg(
            { terminal: s.terminal, call: noting(call, sent) },
            find("instance show"),
            { name: "NAME" },
          );
          const title = "instance (NAME), type to filter:";
          await s.waitForSelect(title);
          assert(s.text.includes("img0-1  defined"), "the first instance is on the first screen");
          let mark = s.text.length;
          await s.choose("› Next");
          await s.waitFor(`› Next ${size} (${size + 1}-${2 * size} shown)`, mark);
          await s.waitForSelect(title);
          mark = s.text.length;
          await s.choose("‹ Previous");
          await s.waitFor(`› Next ${size} (1-${size} shown)`, mark);
          await s.waitForSelect(title);
          // Typing filters: each change of the text is one request for its first screen.
          // A select drawn with the new text but the old entries can come first: wait for the
          // new entries, then for the select.
          mark = s.text.length;
          await s.keys("img23-4");
          await s.waitFor("img23-49  defined", mark);
          await s.waitForSelect(`${title} img23-4`);
          assertEquals(screenSelect(s.lines)!.entries.length, 11 + 1); // and "✎ Type a name…"
          await s.choose("img23-42");
          assertEquals(await answer, "img23-42");
          // Every screen was one request of a screenful and one more (to know whether more follow).
          assertEquals(
            sent.slice(0, 3).map((
              r,
            ) => [r.action, r.params.limit, r.params.offset, r.params.filter]),
            [
              ["instance.list", size + 1, 0, undefined],
              ["instance.list", size + 1, size, undefined],
              ["instance.list", size + 1, 0, undefined],
            ],
          );
          const typed = sent.slice(3);
          assert(typed.length >= 1 && typed.at(-1)!.params.filter === "img23-4", "the filter went");
          for (const r of typed) {
            assertEquals([r.action, r.params.limit, r.params.offset], [
              "instance.list",
              size + 1,
              0,
            ]);
            assert("img23-4".startsWith(String(r.params.filter)), `typed ${r.params.filter}`);
          }
          assert(
            sent.every((r) => r.entries <= size + 1),
            "no request brought more than a screenful",
          );
        } finally {
          s.terminal.close();
        }
      },
    );

    await t.step("a filter that matches nothing, then type a name: the way out", async () => {
      const s = new Scripted();
      try {
        const answer = promptArg({ terminal: s.terminal, call }, find("instance show"), {
          name: "NAME",
        });
        await s.waitForSelect("instance (NAME), type to filter:");
        const mark = s.text.length;
        await s.keys("zzz");
        await s.waitFor('no name contains "zzz"', mark);
        await s.waitForSelect("instance (NAME), type to filter: zzz");
        assertEquals(s.active(), '✎ Type a name… (no name contains "zzz")');
        await s.choose("✎ Type a name");
        await s.waitFor(/\? NAME/);
        await s.line("img39-50"); // typed over the default (what was typed to filter)
        assertEquals(await answer, "img39-50");
      } finally {
        s.terminal.close();
      }
    });

    await t.step("Tab on an entry filters by its name, not its whole label", async () => {
      const s = new Scripted();
      const sent: Sent[] = [];
      try {
        const answer = promptArg(
          { terminal: s.terminal, call: noting(call, sent) },
          find("instance show"),
          { name: "NAME" },
        );
        const title = "instance (NAME), type to filter:";
        await s.waitForSelect(title);
        const label = s.active(); // e.g. "fw-1  defined": the name and the state
        const name = label.split(/\s+/)[0];
        assert(label !== name, label);
        const mark = s.text.length;
        await s.keys("\t"); // inquirer writes the whole label as the search text
        await s.waitForSelect(`${title} ${label}`);
        assert(!s.text.slice(mark).includes("a filter is letters"), "the label was not refused");
        assertEquals(sent.at(-1)!.params.filter, name);
        assertEquals(s.active(), label);
        await s.keys("\r");
        assertEquals(await answer, name);
      } finally {
        s.terminal.close();
      }
    });

    await t.step(
      "the Debug menu's running instances: one request by state, none among 2,000",
      async () => {
        const s = new Scripted();
        const sent: Sent[] = [];
        try {
          const picked = await pickRunningInstance({
            terminal: s.terminal,
            call: noting(call, sent),
            run: () => Promise.reject(new Error("nothing runs here")),
          });
          assertEquals(picked, undefined);
          assertMatch(s.text, /No instance is running/);
          assertEquals(sent.map((r) => [r.params.state, r.params.limit, r.entries]), [
            [["running", "paused", "starting", "stopping"], pickPageSize(s.terminal) + 1, 0],
          ]);
        } finally {
          s.terminal.close();
        }
      },
    );

    await t.step("a flag naming several VLANs of 300: one pick at a time until Done", async () => {
      const s = new Scripted();
      const sent: Sent[] = [];
      try {
        const flag = find("vmimage create").flags.find((f) => f.name === "vlan")!;
        const answer = promptFlag({ terminal: s.terminal, call: noting(call, sent) }, flag);
        await s.choose("2  net2");
        await s.waitFor("✓ Done (2)");
        const mark = s.text.length;
        await s.keys("net25");
        await s.waitFor("259  net259", mark);
        await s.waitForSelect(
          "--vlan: VLANs to attach (one NIC each; none: NAT), type to filter: net25",
        );
        await s.choose("250  net250");
        await s.waitFor("✓ Done (2,250)");
        await s.choose("✓ Done");
        assertEquals(await answer, "2,250");
        assert(
          sent.every((r) => r.action === "vlan.list" && r.entries <= pickPageSize(s.terminal) + 1),
        );
      } finally {
        s.terminal.close();
      }
    });
  } finally {
    await k.dispose();
  }
});

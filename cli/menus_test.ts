/**
 * Menu tests: the menu tree built from the command registry (pure), and menu flows driven by
 * scripted keystrokes on in-memory streams against a real hosted kattach.
 */
import {
  deepStrictEqual as assertEquals,
  match as assertMatch,
  ok as assert,
} from "node:assert/strict";
import { IpcClient } from "../ipc/mod.ts";
import { buildFixtures, FIXTURES_OUT, TestKattach } from "../tests/_harness.ts";
import { Scripted } from "../tests/_scripted.ts";
import type { Command } from "./commands.ts";
import { commands } from "./commands.ts";
import { buildMenu, type MenuPage, oneLineText, runMenus } from "./menus.ts";
import { argSource, type Caller, flagSource, OBJECT_SOURCES } from "./prompts.ts";

function fake(path: string[], extra: Partial<Command> = {}): Command {
  return {
    path,
    summary: `do ${path.join(" ")}`,
    args: [],
    flags: [],
    build: () => ({ action: "system.status", params: {} }),
    render: () => "",
    ...extra,
  };
}

function titles(page: MenuPage): string[] {
  return page.items.map((i) => i.label.split(/\s{2,}| ›/)[0]);
}

Deno.test("the menu tree is built from the registry: pages, sub-pages and More", () => {
  const menu = buildMenu([
    fake(["system", "status"]),
    fake(["system", "ssh-key", "add"]),
    fake(["system", "ssh-key", "list"]),
    fake(["system", "lonely", "one"]),
    fake(["vlan", "add"]),
    fake(["frobnicate", "now"]),
  ]);
  assertEquals(menu.items.map((i) => i.label), ["System", "Networking", "App Modules", "More"]);
  const system = (menu.items[0] as { page: MenuPage }).page;
  assertEquals(titles(system), ["system status", "system ssh-key", "system lonely one"]);
  const keys = (system.items[1] as { page: MenuPage }).page;
  assertEquals(keys.title, "System › ssh-key");
  assertEquals(titles(keys), ["system ssh-key add", "system ssh-key list"]);
  const more = (menu.items[3] as { page: MenuPage }).page;
  assertEquals(titles(more), ["frobnicate now"]);
});

Deno.test("every registered command appears exactly once in the real menu", () => {
  const seen: string[] = [];
  const walk = (p: MenuPage) => {
    for (const i of p.items) {
      if (i.kind === "page") walk(i.page);
      else seen.push(i.command.path.join(" "));
    }
  };
  walk(buildMenu());
  assertEquals(seen.sort(), commands.map((c) => c.path.join(" ")).sort());
});

Deno.test("arguments naming existing objects get pick lists; new names do not", () => {
  const find = (p: string) => commands.find((c) => c.path.join(" ") === p)!;
  const src = (p: string, arg: string) =>
    argSource(find(p), find(p).args.find((a) => a.name === arg)!);
  assertEquals(src("vlan del", "VLAN"), "vlan");
  assertEquals(src("vlan add", "NAME"), undefined);
  assertEquals(src("config-group add", "MODULE"), "module");
  assertEquals(src("config-group add", "NAME"), undefined);
  assertEquals(src("config-group show", "NAME"), "config-group");
  assertEquals(src("vmimage del", "NAME"), "vmimage");
  assertEquals(src("instance show", "NAME"), "instance");
  assertEquals(src("deploy", "VMIMAGE"), "vmimage");
  assertEquals(src("system ssh-key del", "SSH-KEY"), "ssh-key");
  assertEquals(src("module install", "NAME[@VERSION]"), "available"); // what the queues offer
  assertEquals(src("module update", "NAME"), "module");
  // A guest verb offers the instances it can act on.
  assertEquals(src("instance start", "NAME"), "instance-stopped");
  assertEquals(src("instance stop", "NAME"), "instance-live");
  assertEquals(src("instance kill", "NAME"), "instance-live");
  assertEquals(src("instance pause", "NAME"), "instance-running");
  assertEquals(src("instance resume", "NAME"), "instance-paused");
  assertEquals(src("instance del", "NAME"), "instance");
  if (commands.some((c) => c.path.join(" ") === "qmp")) {
    assertEquals(src("qmp", "NAME"), "instance");
  }
  const create = find("vmimage create");
  const flag = (n: string) => flagSource(create.flags.find((f) => f.name === n)!);
  assertEquals(flag("modules"), { key: "module", multiple: true });
  assertEquals(flag("config-groups"), { key: "config-group", multiple: true });
  assertEquals(flag("vlan"), { key: "vlan", multiple: true });
  assertEquals(flag("memory"), undefined);
  assertEquals(
    oneLineText(["vlan", "reserve", "10", "10.0.10.5", "--note=a b"]),
    "vlan reserve 10 10.0.10.5 '--note=a b'",
  );
});

Deno.env.set("KAOS_SSH_PORT", "0"); // no sshd for the kattach of these tests

Deno.test("Ctrl-C twice goes up two levels: in one chunk, or in two back to back", async () => {
  const inner: MenuPage = {
    title: "Outer › inner",
    items: [{ kind: "command", label: "inner run", command: fake(["inner", "run"]) }],
  };
  const outer: MenuPage = {
    title: "Outer",
    items: [{ kind: "page", label: "inner ›", page: inner }],
  };
  const menu: MenuPage = { title: "KaOS", items: [{ kind: "page", label: "Outer", page: outer }] };
  const s = new Scripted({ waitMs: 5000 });
  const connect = () => Promise.reject(new Error("no kattach in this test"));
  const done = runMenus(s.terminal, { connect, menu });
  try {
    const sends: [string, () => void][] = [
      ["one chunk", () => s.input.write("\x03\x03")],
      ["two chunks", () => {
        s.input.write("\x03"); // two SSH packets read at once: two data events in one turn
        s.input.write("\x03");
      }],
    ];
    for (const [how, send] of sends) {
      await s.waitForSelect("KaOS");
      await s.choose("Outer");
      await s.waitForSelect("Outer");
      await s.choose("inner ›");
      await s.waitForSelect("Outer › inner");
      const mark = s.text.length;
      send();
      await s.waitForSelect("KaOS");
      assertEquals(s.text.slice(mark).match(/^\? Outer$/gm)?.length, 1, `${how}: via Outer`);
      assert(
        !s.text.slice(mark).includes("(choose Log out to leave)"),
        `${how}: one level too many`,
      );
    }
    // At the top, each Ctrl-C only redraws.
    const mark = s.text.length;
    s.input.write("\x03\x03");
    await s.waitFor(/\(choose Log out to leave\)[\s\S]*\(choose Log out to leave\)/, mark);
    await s.waitForSelect("KaOS");
    await s.choose("Log out");
    await done;
    assertMatch(s.text, /Bye\.\n$/);
  } finally {
    s.terminal.close();
    await done.catch(() => {});
  }
});

Deno.test("menu flows against a real kattach: VLAN add, errors, cancel, confirm, password", async () => {
  const k = await TestKattach.start();
  const s = new Scripted();
  const connect = () => IpcClient.connect(`${k.stateDir}/run`);
  const done = runMenus(s.terminal, { connect });
  try {
    await s.waitFor(/KaOS .* AppQueue CLI/);
    await s.waitFor("Log out");

    // Networking → vlan add, with prompts per argument and flag
    await s.choose("Networking");
    await s.choose("vlan ›");
    await s.choose("vlan add");
    await s.waitFor("ID");
    await s.line("10");
    await s.line("web");
    await s.line("10.0.10.0/24");
    await s.waitFor("--gateway");
    await s.line("");
    await s.waitFor("--pool");
    await s.line("");
    for (const flag of ["--uplink", "--nat", "--isolate"]) { // choices: "(leave out)" first
      await s.waitFor(flag);
      await s.line("");
    }
    await s.waitFor("Added VLAN 10.");
    assertMatch(s.text, /= vlan add 10 web 10\.0\.10\.0\/24\n/);
    const vlans = await k.json<{ id: number; name: string }[]>("vlan", "list");
    assertEquals(vlans.map((v) => [v.id, v.name]), [[10, "web"]]);

    // Each answer is checked as it is given, by the one-line grammar's rules: a wrong one is
    // refused with its reason and asked again, before the next prompt.
    let mark = s.text.length;
    await s.choose("vlan add");
    await s.waitFor("ID", mark);
    await s.line("abc");
    await s.waitFor('Error: the VLAN id must be a whole number, not "abc"\n', mark);
    await s.line("5000");
    await s.waitFor("Error: the VLAN id runs from 1 to 4094, not 5000\n", mark);
    assert(!s.text.slice(mark).includes("NAME"), "NAME asked before the ID was right");
    await s.line("11");
    await s.waitFor("NAME", mark);
    await s.line("Big_One");
    await s.waitFor('Error: "Big_One" is not a valid VLAN name (NAME): names are 1-32', mark);
    await s.line("big");
    await s.waitFor("CIDR", mark);
    const refused = s.text.slice(mark, s.text.lastIndexOf("CIDR"));
    assertEquals(refused.match(/^Error: /gm)?.length, 3, refused);
    // What only kattach can tell (an overlap) is asked of it (`check`) right after the answer.
    mark = s.text.length;
    await s.line("10.0.10.128/25");
    await s.waitFor(
      "Error: Cannot add VLAN 11: 10.0.10.128/25 overlaps VLAN 10 (10.0.10.0/24)\n" +
        "Hint: each VLAN needs a subnet of its own\n",
      mark,
    );
    await s.waitFor("CIDR", s.text.lastIndexOf("Hint: "));
    assert(!s.text.slice(mark).includes("--gateway"), "--gateway asked after an overlap");
    await s.line("10.0.11.0/33"); // the address formats: the CLI's own check (lib/ipv4.ts)
    await s.waitFor(
      'Error: "10.0.11.0/33" is not a valid CIDR: not a VLAN subnet: the prefix',
      mark,
    );
    await s.waitFor("CIDR", s.text.lastIndexOf("Error: "));
    await s.line("10.0.11.0/24");
    await s.waitFor("--gateway", mark);
    await s.line("10.0.12.1");
    await s.waitFor(
      'Error: "10.0.12.1" is not a valid IP (--gateway): it must be a host address',
      mark,
    );
    await s.waitFor("--gateway", s.text.lastIndexOf("Error: "));
    assert(!s.text.slice(mark).includes("--pool"), "--pool asked after a wrong gateway");
    await s.line("");
    for (let i = 0; i < 4; i++) await s.line(""); // --pool, --uplink, --nat, --isolate
    await s.waitFor("= vlan add 11 big 10.0.11.0/24\n", mark);
    await s.waitFor("Added VLAN 11.", mark);
    assertEquals((await k.json<unknown[]>("vlan", "list")).length, 2);
    assertEquals((await k.aq("vlan", "del", "11")).code, 0);
    // vmimage create: a bad NAME is refused at once although --modules is not asked yet.
    mark = s.text.length;
    await s.keys("\x03");
    await s.waitForSelect("Networking");
    await s.keys("\x03");
    await s.waitForSelect("KaOS");
    await s.choose("VM Images");
    await s.choose("vmimage create");
    await s.waitFor("NAME", mark);
    await s.line("Web");
    await s.waitFor('Error: "Web" is not a valid VM image name (NAME)', mark);
    await s.waitFor("NAME", s.text.lastIndexOf("Error: "));
    await s.keys("\x03"); // Ctrl+C at the asked-again prompt leaves the command
    await s.waitFor("Cancelled.", mark);
    await s.keys("\x03");
    await s.waitForSelect("KaOS");
    await s.choose("Networking");
    await s.choose("vlan ›");

    // Ctrl+C inside a prompt cancels the command only.
    mark = s.text.length;
    await s.choose("vlan add");
    await s.waitFor("ID", mark);
    await s.keys("\x03");
    await s.waitFor("Cancelled.", mark);

    // vlan del picks the VLAN from a list and asks for confirmation; "no" changes nothing.
    mark = s.text.length;
    await s.choose("vlan del");
    await s.waitFor("10  web  10.0.10.0/24", mark);
    await s.keys("\r");
    await s.waitFor("= vlan del 10", mark);
    await s.waitFor("Really vlan del?", mark);
    await s.line("n");
    await s.waitFor("Cancelled.", mark);
    assertEquals((await k.json<unknown[]>("vlan", "list")).length, 1);

    // Ctrl+C on a page goes back one level; at the top it only redraws.
    mark = s.text.length;
    await s.keys("\x03");
    await s.waitForSelect("Networking");
    await s.keys("\x03");
    await s.waitForSelect("KaOS");
    mark = s.text.length;
    await s.keys("\x03");
    await s.waitFor("(choose Log out to leave)", mark);

    // System → password: the current one is required (the default here), then the policy.
    mark = s.text.length;
    await s.choose("System");
    await s.choose("system password");
    await s.waitFor("= system password", mark);
    // Each is told right after the first entry of the new password, before any retype.
    await s.line("wrong-one");
    await s.line("n3w-passw0rd");
    await s.waitFor("the current password is wrong", mark);
    assert(!s.text.slice(mark).includes("Retype"), "a retype asked after a wrong current one");
    mark = s.text.length;
    await s.choose("system password");
    await s.line("kaos-0.1.0-dev");
    await s.line("short");
    await s.waitFor(/shorter than 8 characters\nHint: use at least 8 characters\n/, mark);
    await s.waitFor("New password", s.text.lastIndexOf("Hint: use at least"));
    assert(!s.text.slice(mark).includes("Retype"), "a retype asked for a refused password");
    await s.line("n3w-passw0rd");
    await s.waitFor("Retype new password", mark);
    await s.line("n3w-passw0rd");
    await s.waitFor("Password changed.", mark);
    assert(!s.text.includes("n3w-passw0rd"), "a password was echoed");

    // A long list is fetched a page at a time through IPC (the terminal has 40 rows: pages of
    // 36), the one-line command shown once as chosen (no page size); the next only when asked for.
    const c = await connect();
    for (let id = 100; id < 140; id++) {
      await c.call("vlan.add", { id, name: `p${id}`, cidr: `10.1.${id}.0/24` });
    }
    c.close();
    await s.keys("\x03");
    await s.waitForSelect("KaOS");
    mark = s.text.length;
    await s.choose("Networking");
    await s.choose("vlan ›");
    await s.choose("vlan list");
    await s.waitFor("--filter TEXT", mark);
    await s.line("");
    await s.waitFor("= vlan list\n", mark);
    await s.waitFor("Entries 1-36 shown. More?", mark);
    const first = s.text.slice(mark);
    assert(first.includes("\n134  p134") && !first.includes("p135"), "the first page ends at 134");
    mark = s.text.length;
    await s.line("y");
    await s.waitFor(/139\s+p139\s/, mark);
    await s.waitFor("vlan list", s.text.lastIndexOf("p139")); // back on the page, no question
    const second = s.text.slice(s.text.indexOf("More? Yes\n", mark) + "More? Yes\n".length);
    assert(!second.includes("= vlan list"), "the one-line is shown once, not per page");
    assert(!first.includes("--limit") && !second.includes("--limit"), "no page size shown");
    assert(!second.includes("More?"), "no question after the last page");
    assert(!second.includes("p134"), "the second page starts after the first");

    // The same list with a filter: kattach sends only the names containing it.
    mark = s.text.length;
    await s.choose("vlan list");
    await s.waitFor("--filter TEXT", mark);
    await s.line("p12");
    await s.waitFor("= vlan list --filter=p12\n", mark);
    await s.waitFor(/129\s+p129\s/, mark);
    await s.waitFor("vlan list", s.text.lastIndexOf("p129"));
    const filtered = s.text.slice(mark);
    assert(!filtered.includes("p130") && !filtered.includes("More?"), "only p120-p129, one page");

    // An argument naming one of them: a pick list fetched a screenful at a time (15 here), typing
    // filters it (kattach answers), and the one-line equivalent of what was picked is shown.
    mark = s.text.length;
    await s.choose("vlan show");
    await s.waitForSelect("VLAN (VLAN), type to filter:");
    await s.choose("› Next");
    await s.waitFor("› Next 15 (16-30 shown)", mark);
    await s.waitForSelect("VLAN (VLAN), type to filter:");
    mark = s.text.length;
    await s.keys("p13"); // typing filters, from the first screen of what matches
    await s.waitFor("139  p139", mark); // the new entries (a select with the old ones can come first)
    await s.waitForSelect("VLAN (VLAN), type to filter: p13");
    await s.choose("137  p137");
    await s.waitFor("= vlan show 137\n", mark);
    await s.waitFor("10.1.137.0/24", mark);
    await s.waitForSelect("Networking › vlan");

    // Back to the top and log out.
    await s.keys("\x03");
    await s.waitForSelect("Networking");
    await s.keys("\x03");
    await s.waitForSelect("KaOS");
    await s.choose("Log out");
    await done;
    assertMatch(s.text, /Bye\.\n$/);
  } finally {
    s.terminal.close();
    await done.catch(() => {});
    await k.dispose();
  }
});

Deno.test("menu answers checked against the store as they are given: taken names, addresses, a module's pattern", async () => {
  await buildFixtures();
  // hello with a pattern on its required `message` field (an unsigned local module directory).
  const tmp = await Deno.makeTempDir({ prefix: "kaos-pattern-" });
  const dir = `${tmp}/hello`; // a module directory is named as its module
  const k = await TestKattach.start();
  const s = new Scripted();
  const connect = () => IpcClient.connect(`${k.stateDir}/run`);
  let done: Promise<void> | undefined;
  try {
    await Deno.mkdir(dir);
    for await (const e of Deno.readDir(`${FIXTURES_OUT}/hello`)) {
      await Deno.copyFile(`${FIXTURES_OUT}/hello/${e.name}`, `${dir}/${e.name}`);
    }
    const climod = JSON.parse(await Deno.readTextFile(`${dir}/climod.aq`));
    climod.fields[0].pattern = "^[a-z ]+$";
    await Deno.writeTextFile(`${dir}/climod.aq`, JSON.stringify(climod));
    const c = await connect();
    try {
      await c.call("module.import", { path: `${FIXTURES_OUT}/vkaos` });
      await c.call("module.import", { path: `${FIXTURES_OUT}/web` });
      await c.call("module.import", { path: dir });
      await c.call("vlan.add", { id: 10, name: "web", cidr: "10.0.10.0/24" });
      await c.call("configGroup.add", { module: "web", name: "site", values: {} });
      await c.call("vmimage.create", {
        name: "web",
        modules: ["web"],
        configGroups: ["site"],
        vlans: [10],
      });
    } finally {
      c.close();
    }
    done = runMenus(s.terminal, { connect });
    await s.waitFor("Log out");
    // Each refusal comes right after its answer, with kattach's reason and hint, and the same
    // prompt is asked again (no later prompt shown in between).
    const refusedAt = async (answer: string, error: string, prompt: string) => {
      const mark = s.text.length;
      await s.line(answer);
      await s.waitFor(`Error: ${error}`, mark);
      const after = s.text.indexOf(`Error: ${error}`, mark) + `Error: ${error}`.length;
      await s.waitFor(prompt, after);
      return mark;
    };
    // Ticks one entry of a checkbox (moving down to it) and goes on.
    const cursor = () => s.lines.split("\n").findLast((l) => l.startsWith("❯")) ?? "";
    const tick = async (label: string) => {
      for (let i = 0; i < 5 && !cursor().includes(label); i++) await s.keys("\x1b[B");
      assert(cursor().includes(label), `no ${label} in the checkbox`);
      await s.keys(" ");
      await s.keys("\r");
    };
    // Ctrl+C at the asked-again prompt leaves the command; then one page up per select named.
    const leave = async (from: number, ...up: string[]) => {
      await s.keys("\x03");
      await s.waitFor("Cancelled.", from);
      for (const select of up) {
        await s.keys("\x03");
        await s.waitForSelect(select);
      }
    };

    await s.choose("Networking");
    await s.choose("vlan ›");
    await s.choose("vlan add");
    await s.waitFor("ID");
    let mark = await refusedAt(
      "10",
      "Cannot add VLAN 10: it exists already\nHint: choose another id, or `vlan del` the old one first\n",
      "ID",
    );
    await s.line("12");
    await s.waitFor("NAME", mark);
    await refusedAt(
      "web",
      "Cannot add VLAN 12: the name web is taken\nHint: VLAN names are unique; choose another\n",
      "NAME",
    );
    await leave(mark);

    // vlan set: the gateway against the VLAN's own subnet (only kattach knows it).
    mark = s.text.length;
    await s.choose("vlan set");
    await s.waitFor("10  web  10.0.10.0/24", mark);
    await s.keys("\r");
    await s.waitFor("--name", mark);
    await s.line("");
    await s.waitFor("--gateway", mark);
    const gateway = await refusedAt(
      "10.0.20.1",
      "Invalid gateway 10.0.20.1: it must be a host address inside 10.0.10.0/24\n" +
        "Hint: choose an address from 10.0.10.1-10.0.10.254, usually 10.0.10.1\n",
      "--gateway",
    );
    assert(!s.text.slice(gateway).includes("--pool"), "--pool asked after a wrong gateway");
    await leave(mark, "Networking", "KaOS");

    // config-group add: a taken name, then a value the module's climod.aq pattern refuses,
    // asked again field by field (not after the last field).
    mark = s.text.length;
    await s.choose("Configuration Groups");
    await s.choose("config-group add");
    await s.waitForSelect("module (MODULE), type to filter:");
    await s.choose("hello");
    await s.waitFor("NAME", mark);
    await refusedAt(
      "site",
      "Cannot add configuration group site: the name is taken\n" +
        "Hint: configuration group names are unique on the host\n",
      "NAME",
    );
    await s.line("greet");
    await s.waitFor("message", mark);
    const value = await refusedAt(
      "Hello World!",
      'Invalid value "Hello World!" for message: must match ^[a-z ]+$\nHint: What to print\n',
      "message",
    );
    assert(!s.text.slice(value).includes("count"), "the next field asked after a wrong value");
    await s.line("hello world");
    await s.waitFor("count", value);
    await s.line("");
    await s.waitFor("loud", value);
    await s.line("");
    await s.waitFor("= config-group add hello greet 'message=hello world'\n", mark);
    await s.waitFor("Added configuration group greet.", mark);
    await s.keys("\x03");
    await s.waitForSelect("KaOS");

    // vmimage create: a taken name at once, before --modules is asked.
    mark = s.text.length;
    await s.choose("VM Images");
    await s.choose("vmimage create");
    await s.waitFor("NAME", mark);
    await refusedAt(
      "web",
      "Cannot create VM image web: it exists already\n" +
        "Hint: choose another name, or `vmimage del` the old one first\n",
      "NAME",
    );
    assert(!s.text.slice(mark).includes("--modules"), "--modules asked after a taken name");
    // A flag left out is checked too: hello's required field needs a configuration group.
    await s.line("hi");
    await s.waitFor("--modules", mark);
    await s.waitFor("hello  0.1.0", mark);
    await tick("hello  0.1.0");
    await s.waitFor("--config-groups", mark);
    await s.waitFor("greet  (hello)", mark);
    const left = await refusedAt(
      "",
      "Module hello needs a configuration group\nHint: it has required fields;",
      "--config-groups",
    );
    assert(!s.text.slice(left).includes("--vlan"), "--vlan asked after a missing group");
    await s.waitFor("greet  (hello)", s.text.lastIndexOf("Error: "));
    await tick("greet  (hello)");
    await s.waitFor("--vlan", left);
    for (let i = 0; i < 5; i++) await s.line(""); // --vlan, --memory, --cpus, --data-disk, --storage
    await s.waitFor("= vmimage create --modules=hello --config-groups=greet hi\n", mark);
    await s.waitFor("Created VM image hi.", mark);
    await s.keys("\x03");
    await s.waitForSelect("KaOS");
    await s.choose("Log out");
    await done;

    // Nothing the refused answers named was made; the one accepted command was.
    assertEquals((await k.json<{ id: number }[]>("vlan", "list")).map((v) => v.id), [10]);
    assertEquals(
      (await k.json<{ name: string }[]>("config-group", "list")).map((g) => g.name),
      ["greet", "site"],
    );
    if (Deno.env.get("KAOS_SHOW_SCREEN")) console.log(s.text);
  } finally {
    s.terminal.close();
    await done?.catch(() => {});
    await k.dispose();
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("a guest verb's pick list asks kattach for the instances in the states it acts on", async () => {
  const asked: unknown[] = [];
  const call = ((action: string, params: unknown) => {
    asked.push([action, params]);
    return Promise.resolve([{ name: "web-1", state: "paused" }]);
  }) as unknown as Caller;
  const paused = await OBJECT_SOURCES["instance-paused"].list(call, { limit: 5, offset: 0 });
  assertEquals(paused, [{ value: "web-1", label: "web-1  paused" }]);
  await OBJECT_SOURCES["instance-stopped"].list(call, { limit: 5, offset: 0 });
  await OBJECT_SOURCES.instance.list(call, { limit: 5, offset: 0 });
  assertEquals(asked, [
    ["instance.list", { limit: 5, offset: 0, state: ["paused"] }],
    ["instance.list", { limit: 5, offset: 0, state: ["defined", "stopped", "failed"] }],
    ["instance.list", { limit: 5, offset: 0 }],
  ]);
});

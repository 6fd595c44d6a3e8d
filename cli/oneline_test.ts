/**
 * The one-line grammar as a newcomer meets it, before kattach is asked (the runner's `connect`
 * refuses): usage lines that say what is required and what has JSON output, help for a word
 * that names nothing, numbers out of range refused with the flag's own name, and the text
 * renderers' indentation.
 */
import assert from "node:assert/strict";
import type { Instance } from "../ipc/mod.ts";
import { commands, usage } from "./commands.ts";
import { EXIT, progressLines } from "./oneline.ts";
import { INSTANCE_BASE, runLine as run } from "./oneline_test_util.ts";

const find = (path: string) => commands.find((c) => c.path.join(" ") === path)!;

Deno.test("system password: no --json offered; given, a usage error", async () => {
  const help = await run(["system", "password", "--help"]);
  assert.equal(help.code, EXIT.ok);
  assert.match(help.out, /^ {2}system password$/m);
  const json = await run(["system", "password", "--json"]);
  assert.equal(json.code, EXIT.usage);
  assert.equal(
    json.err,
    "Error: system password has no JSON output (it runs in the menus)\n" +
      "Usage: system password\n",
  );
});

Deno.test("usage lines: required words and flags have no brackets, optional ones do", () => {
  assert.equal(usage(find("system ssh-key add")), "system ssh-key add KEY… [--json]");
  assert.equal(
    usage(find("config-group set")),
    "config-group set NAME KEY=VALUE… [--no-apply] [--json]",
  );
  assert.equal(
    usage(find("config-group add")),
    "config-group add MODULE NAME [KEY=VALUE…] [--json]",
  );
  assert.match(
    usage(find("vmimage create")),
    /^vmimage create NAME --modules A,B \[--config-groups/,
  );
});

Deno.test("a required flag left out: a usage error naming it, before kattach is asked", async () => {
  assert.match(usage(find("appqueue add")), /^appqueue add NAME --url URL --key KEY \[--sub/);
  assert.match(
    usage(find("firewall rule add")),
    /^firewall rule add --chain input\|forward --action accept\|drop\|reject \[--proto/,
  );
  const cases: [string[], string][] = [
    [["appqueue", "add", "x", "--url", "http://x/"], "--key is missing: the publisher's public"],
    [["appqueue", "add", "x"], "--url is missing: base URL holding index.json and parts/"],
    [["firewall", "rule", "add", "--chain", "input"], "--action is missing: what to do with"],
  ];
  for (const [words, message] of cases) {
    const r = await run(words);
    assert.equal(r.code, EXIT.usage, words.join(" "));
    assert.ok(r.err.startsWith(`Error: ${message}`), `${words.join(" ")}: ${r.err}`);
    assert.match(r.err, /\nUsage: /);
  }
});

Deno.test("help for a word that names no command: an error; extra words: the command's help", async () => {
  const unknown: [string[], string][] = [
    [["help", "nosuch"], "nosuch"],
    [["nosuch", "--help"], "nosuch"],
    [["web", "stats", "--help"], "web"], // a module's command: `module commands` lists them
  ];
  for (const [words, word] of unknown) {
    const r = await run(words);
    assert.equal(r.code, EXIT.usage, words.join(" "));
    assert.equal(r.out, "");
    assert.ok(r.err.startsWith(`Error: no command starts with "${word}"\n`), r.err);
  }
  const vlanFrob = await run(["vlan", "frob"]);
  assert.equal(vlanFrob.code, EXIT.usage);
  assert.equal(
    vlanFrob.err,
    'Error: unknown command "vlan frob"\n' +
      "Hint: run `help` for the list of commands (`module commands` for the modules' own)\n",
  );
  const add = await run(["vlan", "add", "10", "front", "--help"]);
  assert.equal(add.code, EXIT.ok);
  assert.match(add.out, /^ {2}vlan add ID NAME CIDR /);
  assert.doesNotMatch(add.out, /vlan list/);
  const group = await run(["help", "vlan"]);
  assert.match(group.out, /vlan list/);
  assert.doesNotMatch(group.out, /module list/);
});

Deno.test("numbers out of range: refused with the flag's name before kattach is asked", async () => {
  const cases: [string[], string][] = [
    [["deploy", "web", "--count", "0"], "--count runs from 1 to 256, not 0"],
    [["deploy", "web", "--count", "300"], "--count runs from 1 to 256, not 300"],
    [["vmimage", "create", "w", "--modules", "web", "--memory", "1"], "--memory runs from 32"],
    [["vmimage", "create", "w", "--modules", "web", "--cpus", "0"], "--cpus runs from 1 to 64"],
    [["vmimage", "create", "w", "--modules", "web", "--vlan", "5000"], "a VLAN id runs from 1"],
    [["vlan", "add", "4095", "x", "10.0.0.0/24"], "the VLAN id runs from 1 to 4094, not 4095"],
    [["instance", "stop", "web-1", "--timeout", "0"], "--timeout runs from 1 to 3600, not 0"],
    [
      ["vmimage", "create", "w", "--modules", "web", "--data-disk", "0"],
      "--data-disk runs from 1M",
    ],
    [
      ["vmimage", "create", "w", "--modules", "web", "--data-disk", "2000G"],
      '--data-disk runs from 1M to 1024G, not "2000G"',
    ],
    // A whole number too long to take is out of range, not "not a whole number".
    [["deploy", "web", "--count", "99999999999"], "--count runs from 1 to 256, not 99999999999"],
    [
      ["vlan", "list", "--limit", "99999999999"],
      "--limit must be a whole number of at most 9 digits, not 99999999999",
    ],
  ];
  for (const [words, message] of cases) {
    const r = await run(words);
    assert.equal(r.code, EXIT.usage, words.join(" "));
    assert.ok(r.err.startsWith(`Error: ${message}`), `${words.join(" ")}: ${r.err}`);
  }
});

Deno.test("kattach's parameter checks name the word and the value given, before kattach is asked", async () => {
  const names = "names are 1-32 lower-case letters, digits or '-', starting with a letter";
  const cases: [string[], string][] = [
    [["instance", "start", "Web_1"], `"Web_1" is not a valid instance name (NAME): instance names`],
    [
      ["vlan", "add", "10", "Front_1", "10.0.0.0/24"],
      `"Front_1" is not a valid VLAN name (NAME): ${names}`,
    ],
    [["vlan", "set", "10", "--name", "X"], `"X" is not a valid VLAN name (--name): ${names}`],
    [["vmimage", "create", "Web", "--modules", "web"], `"Web" is not a valid VM image name (NAME)`],
    [["deploy", "Web"], `"Web" is not a valid VM image (VMIMAGE): ${names}`],
    [
      ["config-group", "add", "web", "Site"],
      `"Site" is not a valid configuration group name (NAME)`,
    ],
    // A length bound the schema states without words of its own: said in plain words, not zod's
    // "Too big: expected string to have <=64 characters".
    [
      ["firewall", "mgmt", "add", "a".repeat(70)],
      `"${"a".repeat(70)}" is not a valid CIDR: it must have at most 64 characters`,
    ],
    [
      ["firewall", "rule", "add", "--chain", "input", "--action", "drop", "--port", "1".repeat(12)],
      `"${"1".repeat(12)}" is not a valid port (--port): it must have at most 11 characters`,
    ],
    [
      ["vmimage", "create", "w", "--modules", "web", "--vlan", "1,2,3,4,5,6,7,8,9"],
      `"1,2,3,4,5,6,7,8,9" is not a valid VLAN (--vlan): it must have at most 8 items`,
    ],
    [
      ["vlan", "reserve", "10", "10.0.10.60", "--note", "x".repeat(201)],
      `"${"x".repeat(201)}" is not a valid TEXT (--note): it must have at most 200 characters`,
    ],
  ];
  for (const [words, message] of cases) {
    const r = await run(words); // kattach is not asked: `connect` refuses, so nothing changed
    assert.equal(r.code, EXIT.failed, words.join(" "));
    assert.equal(r.out, "");
    assert.ok(r.err.startsWith(`Error: ${message}`), `${words.join(" ")}: ${r.err}`);
    assert.doesNotMatch(r.err, /^Error: (name|vmimage): /);
  }
});

Deno.test("a refused word in --json: the error's shape kept, its words added", async () => {
  const r = await run(["vlan", "add", "10", "Front_1", "10.0.0.0/24", "--json"]);
  assert.equal(r.code, EXIT.failed);
  const { error } = JSON.parse(r.err);
  assert.deepEqual(Object.keys(error), ["kind", "code", "message", "hint", "issues"]);
  assert.equal(error.kind, "user");
  assert.equal(error.code, "invalid");
  assert.equal(error.hint, "");
  assert.match(error.message, /^"Front_1" is not a valid VLAN name \(NAME\): names are/);
  assert.deepEqual(error.issues.map((i: Record<string, string>) => [i.word, i.value, i.field]), [
    ["NAME", "Front_1", "name"],
  ]);
});

Deno.test("addresses: a bad CIDR, a gateway or a pool outside the subnet, refused before kattach is asked", async () => {
  const cases: [string[], string][] = [
    [
      ["vlan", "add", "10", "front", "10.0.10.0/33"],
      '"10.0.10.0/33" is not a valid CIDR: not a VLAN subnet: the prefix ("33") must be a whole number from 8 to 30',
    ],
    [
      ["vlan", "add", "10", "front", "10.0.10.7/24"],
      '"10.0.10.7/24" is not a valid CIDR: not a VLAN subnet: host bits are set after the prefix; did you mean 10.0.10.0/24?',
    ],
    [
      ["vlan", "add", "10", "front", "10.0.10.0/24", "--gateway", "10.0.11.1"],
      '"10.0.11.1" is not a valid IP (--gateway): it must be a host address inside 10.0.10.0/24 (choose an address from 10.0.10.1-10.0.10.254, usually 10.0.10.1)',
    ],
    [
      ["vlan", "add", "10", "front", "10.0.10.0/24", "--gateway", "10.0.10.255"],
      '"10.0.10.255" is not a valid IP (--gateway): it must be a host address inside 10.0.10.0/24',
    ],
    [
      ["vlan", "add", "10", "front", "10.0.10.0/24", "--pool", "10.0.10.5-10.0.12.9"],
      '"10.0.12.9" is not a valid pool (--pool): it must be a host address inside 10.0.10.0/24 (choose a pool within 10.0.10.1-10.0.10.254)',
    ],
    [
      ["vlan", "set", "10", "--gateway", "10.0.10.01"],
      '"10.0.10.01" is not a valid IP (--gateway): not an IPv4 address: octet 4 ("01") has a leading zero',
    ],
    [
      ["vlan", "reserve", "10", "10.0.10"],
      '"10.0.10" is not a valid IP: not an IPv4 address: expected 4 octets, found 3',
    ],
  ];
  for (const [words, message] of cases) {
    const r = await run(words); // kattach is not asked: `connect` refuses, so nothing changed
    assert.equal(r.code, EXIT.failed, words.join(" "));
    assert.equal(r.out, "");
    assert.ok(r.err.startsWith(`Error: ${message}`), `${words.join(" ")}: ${r.err}`);
  }
  const json = await run(["vlan", "add", "10", "front", "10.0.10.0/33", "--json"]);
  assert.deepEqual(
    JSON.parse(json.err).error.issues.map((
      i: Record<string, string>,
    ) => [i.word, i.value, i.field]),
    [["CIDR", "10.0.10.0/33", "cidr"]],
  );
});

Deno.test("valid words pass the check and go to kattach unchanged", async () => {
  for (
    const words of [
      ["instance", "start", "web-1"],
      ["vlan", "add", "10", "front", "10.0.0.0/24", "--pool", "10.0.0.5-10.0.0.9"],
      ["vmimage", "create", "web", "--modules", "web"],
    ]
  ) {
    let asked = 0;
    const { code, err } = await run(words, () => {
      asked++;
      return Promise.reject(new Error("kattach reached"));
    });
    assert.equal(asked, 1, words.join(" "));
    assert.equal(code, EXIT.internal);
    assert.equal(err, "Error: kattach reached\n");
  }
});

Deno.test("instance show: a stopped instance's health is its last run's, not now's", () => {
  const health = [
    { module: "web", status: "starting", detail: "booting", checkedAt: "2026-11-27T12:00:00Z" },
  ] satisfies Instance["health"];
  const base = INSTANCE_BASE;
  const show = find("instance show");
  assert.match(
    show.render({ ...base, state: "stopped", health } satisfies Instance),
    /^Health: +not running \(at its last run: web starting \(booting\)\)$/m,
  );
  assert.match(
    show.render({ ...base, state: "defined" } satisfies Instance),
    /^Health: +not running$/m,
  );
  assert.match(
    show.render({ ...base, state: "starting", health } satisfies Instance),
    /^Health: +web starting \(booting\)$/m,
  );
});

Deno.test("instance show: the NIC table and DNS indented alike, the machine and why", () => {
  const shown = find("instance show").render(
    {
      name: "web-1",
      vmimage: "web",
      state: "running",
      autostart: false,
      restartPolicy: "on-failure",
      nics: [],
      createdAt: "2026-11-27T12:00:00.000Z",
      machine: "q35: set on the instance",
      published: [
        { id: 3, proto: "tcp", hostPort: 8080, guestPort: 80 },
        { id: 4, proto: "udp", hostPort: 5353, guestPort: 53 },
      ],
      network: [{
        index: 0,
        vlan: 10,
        mode: "tap",
        tap: "kt0a4b53000000",
        bridge: "kbr10",
        mac: "0a:4b:53:00:00:00",
        address: "10.0.10.2/24",
        gateway: "10.0.10.1",
        state: "up",
        restartNeeded: false,
      }],
      dns: [],
    } satisfies Instance,
  );
  assert.match(shown, /^Machine: +q35, set on the instance$/m);
  assert.match(shown, /^Published ports: +tcp 8080 -> 80 \(id 3\), udp 5353 -> 53 \(id 4\)$/m);
  assert.match(shown, /\n {2}NIC +VLAN/);
  assert.match(shown, /\n {2}DNS: none\n$/);
  const set = find("instance set").render(
    {
      name: "web-1",
      vmimage: "web",
      state: "running",
      autostart: true,
      restartPolicy: "always",
      nics: [],
      createdAt: "2026-11-27T12:00:00.000Z",
      machine: "q35: web needs PCI (over the instance's microvm setting)",
    } satisfies Instance,
  );
  assert.equal(
    set,
    "web-1: restart policy always, autostart yes; machine from its next start: q35, web needs " +
      "PCI (over the instance's microvm setting)\n",
  );
});

Deno.test("instance show: Published ports only where publishing applies (not on user-mode NICs), Forwards only where forwards do (not on taps alone)", () => {
  const userNic = {
    index: 0,
    vlan: null,
    mode: "user" as const,
    tap: null,
    bridge: null,
    mac: "0a:4b:53:00:00:00",
    address: "10.0.2.15/24",
    gateway: "10.0.2.2",
    state: "-",
    restartNeeded: false,
  };
  const hosted = {
    ...INSTANCE_BASE,
    state: "running",
    forwards: [{ hostPort: 43455, guestPort: 80, module: "web" }],
    published: [],
    network: [userNic],
    dns: ["10.0.2.3"],
  } satisfies Instance;
  const shown = find("instance show").render(hosted);
  assert.match(shown, /^Forwards: +127\.0\.0\.1:43455 -> 80 \(web\)$/m);
  assert.doesNotMatch(shown, /Published/);
  // A port published to it anyway (stored in hosted mode) is listed as not in effect.
  const stored = find("instance show").render({
    ...hosted,
    published: [{ id: 1, proto: "tcp", hostPort: 8080, guestPort: 80 }],
  });
  assert.match(
    stored,
    /^Published ports: +tcp 8080 -> 80 \(id 1\) \(not in effect: user-mode NICs\)$/m,
  );
  // A bridged instance with nothing published says so.
  const bridged = find("instance show").render({
    ...hosted,
    forwards: [],
    network: [{ ...userNic, vlan: 10, mode: "tap", tap: "kt0a4b53000000", bridge: "kbr10" }],
  });
  assert.match(bridged, /^Published ports: +none$/m);
  // Its NICs all taps: no forwards can reach it, and no Forwards line says "none".
  assert.doesNotMatch(bridged, /Forwards/);
  assert.match(shown, /^Forwards: /m);
  assert.match(find("instance show").render({ ...hosted, forwards: [] }), /^Forwards: +none$/m);
});

Deno.test("progress lines: a download's counter at most once a second and at its end; every new message", () => {
  let lines = "";
  let clock = 0;
  const show = progressLines((t) => lines += t, () => clock);
  show("reading the index of local");
  for (let done = 262144; done < 4194304; done += 262144) {
    show("downloading web.aqi", done, 4194304);
    clock += 50; // 15 frames within 0.75 s
  }
  clock += 400;
  show("downloading web.aqi", 4194304 - 1, 4194304); // a second since the last line
  show("downloading web.aqi", 4194304, 4194304); // the end, however soon
  show("verifying web 1.0.0");
  show("defined web-1", 1, 2); // messages of their own are never held back
  show("defined web-2", 2, 2);
  assert.equal(
    lines,
    [
      "reading the index of local",
      "[262144/4194304] downloading web.aqi",
      "[4194303/4194304] downloading web.aqi",
      "[4194304/4194304] downloading web.aqi",
      "verifying web 1.0.0",
      "[1/2] defined web-1",
      "[2/2] defined web-2",
      "",
    ].join("\n"),
  );
});

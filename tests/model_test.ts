/**
 * Modules, configuration groups, VM images and deploy against a real hosted kattach, with the
 * real fixture modules from `fixtures/build-modules` (built on first use, then cached).
 */
import assert from "node:assert/strict";
import type { ConfigGroup, Instance, Module, VlanInfo, VmImage } from "../ipc/mod.ts";
import { buildFixtures, FIXTURES_OUT as OUT, TestKattach } from "./_harness.ts";

/** Every file (relative path) under a directory. */
async function tree(dir: string): Promise<string[]> {
  const found: string[] = [];
  const walk = async (d: string, rel: string) => {
    for await (const e of Deno.readDir(d)) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory) await walk(`${d}/${e.name}`, r);
      else found.push(r);
    }
  };
  await walk(dir, "").catch(() => {});
  return found.sort();
}

async function withKattach(fn: (k: TestKattach) => Promise<void>): Promise<void> {
  await buildFixtures();
  const k = await TestKattach.start();
  try {
    await fn(k);
  } finally {
    await k.dispose();
  }
}

Deno.test("module import: vKaOS first; files copied with digests; malformed modules refused, nothing left", async () => {
  await withKattach(async (k) => {
    const early = await k.aq("module", "import", `${OUT}/web`);
    assert.equal(early.code, 1);
    assert.match(early.stderr, /vKaOS is not installed/);
    assert.deepEqual(await tree(`${k.stateDir}/modules`), []);

    const vkaos = await k.json<Module>("module", "import", `${OUT}/vkaos`);
    assert.equal(vkaos.kind, "vkaos");
    const web = await k.json<Module>("module", "import", `${OUT}/web`);
    assert.equal(web.kind, "app");
    assert.deepEqual(web.files.map((f) => f.part).sort(), [
      "appmgr",
      "climod",
      "image",
      "manifest",
    ]);
    for (const f of web.files) {
      const copy = await Deno.readFile(`${web.dir}/${f.file}`);
      const digest = Array.from(
        new Uint8Array(await crypto.subtle.digest("SHA-256", copy)),
        (b) => b.toString(16).padStart(2, "0"),
      ).join("");
      assert.equal(digest, f.sha256, f.file);
      assert.equal(copy.length, f.size);
    }
    const dup = await k.aq("module", "import", `${OUT}/web`);
    assert.equal(dup.code, 1);
    assert.match(dup.stderr, /installed/);

    const before = await tree(`${k.stateDir}/modules`);
    // Each fixture's exact reason (the Error line), not a word that many errors contain.
    const bad = `${OUT}/bad`;
    const expectations: Record<string, string | RegExp> = {
      "missing-climod": `Invalid module: climod.aq is missing from ${bad}/missing-climod`,
      "missing-image": `Invalid module: missing-image.aqi is missing from ${bad}/missing-image`,
      "bad-manifest-json": /^Invalid manifest\.json: not valid JSON \(.*position \d+.*\)$/,
      "unknown-manifest-key": `Invalid manifest.json: Unrecognized key: "author"`,
      "name-mismatch": `Invalid module directory ${bad}/name-mismatch: the manifest names the ` +
        "module other-name, the directory is name-mismatch",
      "bad-version": "Invalid manifest.json: version: a version looks like 1.2.3 or 1.2.3-rc1",
      "kind-image-mismatch":
        "Invalid manifest.json: an app module's image must be ext4 or squashfs",
      "climod-dup-field": "Invalid climod.aq: field title is declared twice",
      "climod-unknown-type": "Invalid climod.aq: fields.0.type: Invalid discriminator value. " +
        "Expected 'string' | 'integer' | 'boolean' | 'enum' | 'ipv4'",
      "appmgr-bad-readiness":
        "Invalid appmgr.aq: readiness.marker: Invalid input: expected string, received undefined",
      "extra-file": `Invalid module directory ${bad}/extra-file: unexpected file notes.txt`,
      "symlink-image": "Invalid module: symlink-image.aqi is not a regular file",
      "empty-image": "Invalid module: the image empty-image.aqi is empty",
      "wrong-image-magic": "Invalid module: wrong-image-magic.aqi is not a ext4 image",
      "truncated-vkaos-tar": `Cannot read truncated-vkaos-tar.aqi: entry "kernel" is truncated`,
      "traversal-vkaos-tar":
        `Cannot read traversal-vkaos-tar.aqi: entry "../x": the path holds a '..' component`,
      "vkaos-missing-initrd": "Invalid module: vkaos-missing-initrd.aqi must hold exactly the " +
        "files kernel and initrd, not kernel",
      "vkaos-symlink-in-tar":
        `Cannot read vkaos-symlink-in-tar.aqi: entry "kernel" is a symbolic link`,
      "vkaos-not-tar": `Cannot read vkaos-not-tar.aqi: the checksum field "ZZZZZZZZ" is not octal`,
    };
    const cases = (await Array.fromAsync(Deno.readDir(`${OUT}/bad`))).map((e) => e.name).sort();
    assert.deepEqual(
      cases,
      Object.keys(expectations).sort(),
      "every bad fixture has an expectation",
    );
    for (const [name, message] of Object.entries(expectations)) {
      const r = await k.aq("module", "import", `${OUT}/bad/${name}`);
      assert.equal(r.code, 1, `${name}: ${r.stdout}${r.stderr}`);
      const reason = r.stderr.split("\n").find((l) => l.startsWith("Error: "))?.slice(7) ?? "";
      if (typeof message === "string") assert.equal(reason, message, name);
      else assert.match(reason, message, name);
    }
    assert.deepEqual(await tree(`${k.stateDir}/modules`), before);
    assert.deepEqual(
      (await k.json<Module[]>("module", "list")).map((m) => m.name),
      ["vkaos", "web"],
    );
  });
});

Deno.test("config groups, VM images and deploy: validation, IPAM, MACs, all-or-nothing", async () => {
  await withKattach(async (k) => {
    await k.json("module", "import", `${OUT}/vkaos`);
    await k.json("module", "import", `${OUT}/web`);
    await k.json("module", "import", `${OUT}/hello`);

    // Configuration groups are validated against climod.aq; defaults are filled in.
    const g = await k.json<ConfigGroup>("config-group", "add", "web", "site", "title=My site");
    assert.deepEqual(g.values, { title: "My site", port: 80, greeting: "hello" });
    const badGroups: [string[], RegExp][] = [
      [["config-group", "add", "web", "x1", "port=70000"], /at most 65535/],
      [["config-group", "add", "web", "x2", "port=abc"], /whole number/],
      [["config-group", "add", "web", "x3", "greeting=bye"], /one of hello, welcome/],
      [["config-group", "add", "web", "x4", "colour=red"], /no configuration field colour/],
      [["config-group", "add", "web", "site", "title=again"], /name is taken/],
      [["config-group", "add", "hello", "h0"], /message of module hello is required/],
      [["config-group", "add", "nosuch", "x5"], /nosuch is not installed/],
      [["config-group", "add", "web", "Bad Name"], /lower-case/],
    ];
    for (const [args, message] of badGroups) {
      const r = await k.aq(...args);
      assert.equal(r.code, 1, args.join(" "));
      assert.match(r.stderr, message, args.join(" "));
    }
    const usage = await k.aq("config-group", "add", "web", "x6", "novalue");
    assert.equal(usage.code, 2);
    const set = await k.json<ConfigGroup>("config-group", "set", "site", "port=8080");
    assert.deepEqual(set.values, { title: "My site", port: 8080, greeting: "hello" });
    assert.equal((await k.aq("config-group", "set", "site", "port=0")).code, 1);
    assert.equal((await k.json<ConfigGroup>("config-group", "show", "site")).values.port, 8080);
    await k.json("config-group", "add", "hello", "greet", "message=hi there", "count=3");
    assert.equal(
      (await k.json<ConfigGroup[]>("config-group", "list", "--module", "web")).length,
      1,
    );

    // VM images.
    await k.json<VlanInfo>("vlan", "add", "10", "front", "10.0.10.0/29"); // pool .2-.6: 5 addresses
    const image = await k.json<VmImage>(
      "vmimage",
      "create",
      "web",
      "--modules",
      "web",
      "--config-groups",
      "site",
      "--vlan",
      "10",
      "--memory",
      "128",
    );
    assert.deepEqual(image.vlans, [10]);
    assert.equal(image.memoryMiB, 128);
    const badImages: [string[], RegExp][] = [
      [["vmimage", "create", "web", "--modules", "web"], /exists already/],
      [["vmimage", "create", "i1", "--modules", "hello"], /needs a configuration group/],
      [
        ["vmimage", "create", "i2", "--modules", "web", "--config-groups", "greet"],
        /belongs to module hello/,
      ],
      [["vmimage", "create", "i3", "--modules", "vkaos"], /is vKaOS/],
      [["vmimage", "create", "i4", "--modules", "web", "--vlan", "99"], /VLAN 99 does not exist/],
      [["vmimage", "create", "i5", "--modules", "nosuch"], /not installed/],
    ];
    for (const [args, message] of badImages) {
      const r = await k.aq(...args);
      assert.equal(r.code, 1, args.join(" "));
      assert.match(r.stderr, message, args.join(" "));
    }
    assert.equal((await k.aq("vmimage", "create", "i6")).code, 2); // --modules missing
    await k.json(
      "vmimage",
      "create",
      "both",
      "--modules",
      "hello,web",
      "--config-groups",
      "greet,site",
    );

    // Deploy: unique names, one address and one MAC per NIC, never the gateway.
    const three = await k.json<Instance[]>("deploy", "web", "--count", "3", "--no-start");
    assert.deepEqual(three.map((i) => i.name), ["web-1", "web-2", "web-3"]);
    assert.deepEqual(three.map((i) => i.nics[0].ip), ["10.0.10.2", "10.0.10.3", "10.0.10.4"]);
    const macs = three.map((i) => i.nics[0].mac);
    assert.equal(new Set(macs).size, 3);
    for (const m of macs) assert.match(m, /^0a:4b:53:[0-9a-f]{2}:[0-9a-f]{2}:[0-9a-f]{2}$/);
    assert.ok(three.every((i) => i.state === "defined"));

    // The pool has 2 left: deploying 3 fails as a whole.
    const tooMany = await k.aq("deploy", "web", "--count", "3", "--no-start");
    assert.equal(tooMany.code, 1);
    assert.match(tooMany.stderr, /exhausted/);
    assert.equal((await k.json<Instance[]>("instance", "list")).length, 3);

    // Widening the pool makes room; shrinking it under an assigned address is refused.
    const shrink = await k.aq("vlan", "set", "10", "--pool", "10.0.10.5-10.0.10.6");
    assert.equal(shrink.code, 1);
    assert.match(shrink.stderr, /an instance has 10\.0\.10\.2, outside the new pool/);
    const moveGw = await k.aq("vlan", "set", "10", "--gateway", "10.0.10.3");
    assert.equal(moveGw.code, 1);
    assert.equal(
      moveGw.stderr,
      "Error: Cannot make 10.0.10.3 the gateway of VLAN 10: web-2 has it\n" +
        "Hint: choose an address no instance has (see `instance list`)\n",
    );
    assert.equal((await k.aq("vlan", "set", "10")).code, 2); // nothing to change
    const taken = await k.aq("vlan", "reserve", "10", "10.0.10.4");
    assert.deepEqual([taken.code, taken.stderr], [
      1,
      "Error: Cannot reserve 10.0.10.4: web-3 has it\n" +
      "Hint: reserve another address, or delete web-3 first\n",
    ]);
    const renamed = await k.json<VlanInfo>("vlan", "set", "front", "--name", "edge");
    assert.equal(renamed.name, "edge");
    assert.equal(renamed.poolEnd, "10.0.10.6");

    // Releasing an address makes it available again; the name is never reused. Its published
    // port goes with it, and the answer says so.
    await k.json("firewall", "forward", "add", "web-2", "80", "--host-port", "8080");
    const gone = await k.aq("instance", "del", "web-2");
    assert.deepEqual([gone.code, gone.stdout, gone.stderr], [
      0,
      "Deleted web-2.\nNo longer published: tcp 8080 -> 80 (id 1).\n",
      "",
    ]);
    assert.deepEqual(await k.json("firewall", "forward", "list"), []);
    const next = await k.json<Instance[]>("deploy", "web", "--no-start");
    assert.equal(next[0].name, "web-4");
    assert.equal(next[0].nics[0].ip, "10.0.10.3");
    assert.ok(!macs.slice(0, 1).concat(macs.slice(2)).includes(next[0].nics[0].mac));

    // A NAT-only image gets a MAC but no address.
    const nat = await k.json<Instance[]>("deploy", "both", "--no-start");
    assert.equal(nat[0].nics[0].vlan, null);
    assert.equal(nat[0].nics[0].ip, null);

    // Deleting what is in use is refused; nothing changes.
    const refusals: [string[], RegExp][] = [
      [["vlan", "del", "10"], /instances use it/],
      [["vmimage", "del", "web"], /instance\(s\) are deployed/],
      [["module", "del", "web"], /VM images use it/],
      [["config-group", "del", "site"], /VM images use it/],
      [["module", "del", "vkaos"], /VM images need vKaOS|VM images use it|configuration groups/],
    ];
    for (const [args, message] of refusals) {
      const r = await k.aq(...args);
      assert.equal(r.code, 1, args.join(" "));
      assert.match(r.stderr, message, args.join(" "));
    }

    // Restart: everything is still there.
    await k.stop();
    await k.restart();
    const listed = await k.json<Instance[]>("instance", "list", "--vmimage", "web");
    assert.deepEqual(listed.map((i) => i.name), ["web-1", "web-3", "web-4"]);
    // A page of the list is that slice of it, NICs included (the menus page this way).
    const all = await k.json<Instance[]>("instance", "list");
    assert.equal(all.length, 4);
    assert.deepEqual(
      await k.json("instance", "list", "--limit", "2", "--offset", "1"),
      all.slice(1, 3),
    );
    assert.deepEqual(
      await k.json("instance", "list", "--vmimage", "web", "--offset", "2"),
      listed.slice(2),
    );

    // Tear down in order; each step is allowed once its users are gone.
    for (const i of ["web-1", "web-3", "web-4", "both-1"]) await k.json("instance", "del", i);
    await k.json("vmimage", "del", "web");
    await k.json("vmimage", "del", "both");
    await k.json("vlan", "del", "10");
    await k.json("config-group", "del", "site");
    await k.json("config-group", "del", "greet");
    await k.json("module", "del", "web");
    await k.json("module", "del", "hello");
    await k.json("module", "del", "vkaos");
    assert.deepEqual(await tree(`${k.stateDir}/modules`), []);
    const status = await k.json<{ counts: Record<string, number> }>("system", "status");
    assert.deepEqual(Object.values(status.counts), [0, 0, 0, 0, 0]);
  });
});

Deno.test("module import: a crash between copy and commit leaves no files behind after restart", async () => {
  await withKattach(async (k) => {
    await k.json("module", "import", `${OUT}/vkaos`);
    // What an interrupted import or delete leaves: a staging dir, a trash dir, an unrecorded dir.
    for (const d of [".staging-x", ".trash-y", "ghost"]) {
      await Deno.mkdir(`${k.stateDir}/modules/${d}`);
      await Deno.writeTextFile(`${k.stateDir}/modules/${d}/f`, "x");
    }
    await k.stop("SIGKILL");
    await k.restart();
    assert.deepEqual(
      (await Array.fromAsync(Deno.readDir(`${k.stateDir}/modules`))).map((e) => e.name),
      ["vkaos"],
      k.log,
    );
    assert.deepEqual((await k.json<Module[]>("module", "list")).map((m) => m.name), ["vkaos"]);
  });
});

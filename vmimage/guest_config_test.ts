import { deepStrictEqual as assertEquals, ok as assert, throws } from "node:assert/strict";
import { fileURLToPath } from "node:url";
import {
  CONFIG_DISK_MIN_BYTES,
  type GuestConfig,
  guestNics,
  moduleDiskSerial,
  renderConfigDisk,
  renderGuestConfig,
  renderModuleConfig,
  shellQuote,
} from "./guest_config.ts";
import { readUstar } from "../lib/ustar.ts";
import { UserError } from "../lib/errors.ts";

/** Set UPDATE_GOLDEN=1 to rewrite the golden files from the current renderer. */
const UPDATE = Deno.env.get("UPDATE_GOLDEN") === "1";
const GOLDEN = fileURLToPath(new URL("../fixtures/golden/guest_config/", import.meta.url));

const web1: GuestConfig = {
  instance: "web-1",
  vmimage: "web",
  nics: [{ mac: "52:54:00:00:00:01", address: "10.0.2.15/24", gateway: "10.0.2.2", vlan: 10 }],
  modules: [{
    name: "web",
    version: "1.0.0",
    startOrder: 100,
    exec: ["bin/start"],
    config: { title: "Hello from KaOS", port: 80, greeting: "hello" },
  }],
};

const tricky: GuestConfig = {
  instance: "pair-7",
  vmimage: "pair",
  nics: [
    { mac: "52:54:00:aa:bb:01", address: "192.0.2.10/24", gateway: "192.0.2.1", vlan: 4094 },
    { mac: "52:54:00:aa:bb:02" },
  ],
  dns: ["192.0.2.53", "198.51.100.53"],
  modules: [
    {
      name: "web",
      version: "1.2.3-rc1",
      startOrder: 100,
      exec: ["bin/start", "--title", 'it\'s "quoted" $HOME `x`'],
      config: { title: "O'Brien's $PATH `id` \\ \"q\"\nline 2", port: 8080, greeting: "welcome" },
    },
    {
      name: "hello",
      version: "0.1.0",
      startOrder: 10,
      exec: ["bin/hello"],
      config: { message: "hi", count: 3, loud: true },
    },
  ],
};

async function compareGolden(name: string, files: Map<string, string>): Promise<void> {
  const dir = `${GOLDEN}${name}`;
  if (UPDATE) {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    for (const [path, text] of files) {
      await Deno.mkdir(`${dir}/${path.split("/").slice(0, -1).join("/")}`, { recursive: true });
      await Deno.writeTextFile(`${dir}/${path}`, text);
    }
  }
  const onDisk: string[] = [];
  async function walk(rel: string): Promise<void> {
    for await (const e of Deno.readDir(`${dir}/${rel}`)) {
      const p = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory) await walk(p);
      else onDisk.push(p);
    }
  }
  await walk("");
  assertEquals(onDisk.sort(), [...files.keys()].sort(), `golden ${name}: file list differs`);
  for (const [path, text] of files) {
    assertEquals(text, await Deno.readTextFile(`${dir}/${path}`), `golden ${name}/${path} differs`);
  }
}

Deno.test("renderGuestConfig matches the golden files (UPDATE_GOLDEN=1 rewrites them)", async () => {
  await compareGolden("web-1", renderGuestConfig(web1));
  await compareGolden("pair-7", renderGuestConfig(tricky));
});

Deno.test("modules are listed in start order and files come in a stable order", () => {
  const files = renderGuestConfig(tricky);
  assertEquals([...files.keys()], [
    "guest.env",
    "guest.json",
    "modules/hello.env",
    "modules/hello.json",
    "config/hello.env",
    "config/hello.json",
    "modules/web.env",
    "modules/web.json",
    "config/web.env",
    "config/web.json",
  ]);
  assertEquals(JSON.parse(files.get("guest.json")!).modules, ["hello", "web"]);
});

Deno.test("busybox sh reads back exactly the values from the env files", async () => {
  const dir = await Deno.makeTempDir();
  try {
    for (const [path, text] of renderGuestConfig(tricky)) {
      await Deno.mkdir(`${dir}/${path.split("/").slice(0, -1).join("/")}`, { recursive: true });
      await Deno.writeTextFile(`${dir}/${path}`, text);
    }
    const script = `set -eu
. ./guest.env; . ./config/web.env; . ./modules/web.env
printf '%s\\0' "$KAOS_INSTANCE" "$KAOS_MODULES" "$KAOS_NIC1_ADDR" "$KAOS_NIC0_VLAN" \
  "$title" "$port" "$KAOS_EXEC_2"`;
    const out = await new Deno.Command("busybox", { args: ["sh", "-c", script], cwd: dir })
      .output();
    assert(out.success, new TextDecoder().decode(out.stderr));
    const values = new TextDecoder().decode(out.stdout).split("\0").slice(0, -1);
    assertEquals(values, [
      "pair-7",
      "hello web",
      "",
      "4094",
      tricky.modules[0].config.title,
      "8080",
      tricky.modules[0].exec[2],
    ]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("renderConfigDisk is a padded ustar that GNU tar extracts", async () => {
  const disk = renderConfigDisk(tricky);
  assertEquals(disk.length % 512, 0);
  assert(disk.length >= CONFIG_DISK_MIN_BYTES);
  const files = renderGuestConfig(tricky);
  const entries = readUstar(disk);
  assertEquals(entries.map((e) => e.path), [...files.keys()]);
  assertEquals(new TextDecoder().decode(entries[0].data), files.get("guest.env"));
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeFile(`${dir}/disk.raw`, disk);
    await Deno.mkdir(`${dir}/x`);
    const out = await new Deno.Command("tar", { args: ["-xf", "../disk.raw"], cwd: `${dir}/x` })
      .output();
    assert(out.success, new TextDecoder().decode(out.stderr));
    assertEquals(await Deno.readTextFile(`${dir}/x/config/web.env`), files.get("config/web.env"));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("moduleDiskSerial fits QEMU's 20-byte virtio-blk serial", () => {
  assertEquals(moduleDiskSerial("web"), "mod-web");
  assertEquals(moduleDiskSerial("a".repeat(32)), "mod-" + "a".repeat(16));
});

Deno.test("shellQuote quotes single quotes safely", () => {
  assertEquals(shellQuote("a'b"), `'a'\\''b'`);
  assertEquals(shellQuote(""), "''");
});

Deno.test("bad guest configurations are refused with a UserError naming the problem", () => {
  const bad = (patch: Partial<GuestConfig>, re: RegExp) =>
    throws(() => renderGuestConfig({ ...web1, ...patch }), (e: unknown) => {
      assert(e instanceof UserError, String(e));
      assert(re.test(e.message), e.message);
      return true;
    });
  bad({ instance: "Web_1" }, /instance: a name is/);
  bad({ nics: [{ mac: "53:54:00:00:00:01" }] }, /unicast/);
  bad({ nics: [{ mac: "52:54:00:00:00:01", address: "10.0.0.300/24" }] }, /address looks like/);
  bad({ nics: [{ mac: "52:54:00:00:00:01", address: "10.0.0.3" }] }, /address looks like/);
  bad({ nics: [{ mac: "52:54:00:00:00:01", gateway: "10.0.0.1" }] }, /static address/);
  bad({ dns: ["10.0.0.256"] }, /dns\.0: an IPv4 address/);
  bad({ dns: ["192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4"] }, /dns/);
  bad(
    { nics: [{ mac: "52:54:00:00:00:01", address: "10.0.0.3/24", gateway: "10.0.1.1" }] },
    /outside/,
  );
  bad({ nics: [web1.nics[0], web1.nics[0]] }, /used twice/);
  bad({ modules: [web1.modules[0], web1.modules[0]] }, /listed twice/);
  bad({ modules: [{ ...web1.modules[0], config: { Title: "x" } }] }, /config\.Title/);
  bad({ modules: [{ ...web1.modules[0], config: { t: "a\0b" } }] }, /NUL/);
  bad({ modules: [{ ...web1.modules[0], exec: [] }] }, /exec/);
  const long = (name: string) => ({ ...web1.modules[0], name });
  bad({ modules: [long("abcdefghijklmnop-one"), long("abcdefghijklmnop-two")] }, /disk serial/);
});

Deno.test("a module's agent declarations go to modules/<m>.agent.env (golden web-1-agent)", async () => {
  const withAgent: GuestConfig = {
    ...web1,
    modules: [{
      ...web1.modules[0],
      agent: {
        reload: { exec: ["bin/reload"], timeoutSeconds: 10 },
        commands: [{ name: "stats", exec: ["bin/stats", "--it's"], timeoutSeconds: 5 }],
        logs: "/run/modules/web/access.log",
      },
    }],
  };
  const files = renderGuestConfig(withAgent);
  await compareGolden("web-1-agent", files);
  assertEquals(renderGuestConfig(web1).has("modules/web.agent.env"), false);
  // what apply-config writes is what the config disk holds
  const cfg = renderModuleConfig(web1.modules[0]);
  assertEquals(cfg.env, files.get("config/web.env"));
  assertEquals(cfg.json, files.get("config/web.json"));
});

Deno.test("guestNics: user-mode NICs get slirp's address statically; one default route; slirp DNS", () => {
  const user = (mac: string, vlan: number | null = null) => ({
    mac,
    mode: "user" as const,
    address: null,
    gateway: null,
    vlan,
  });
  const tap = {
    mac: "52:54:00:00:00:01",
    mode: "tap" as const,
    address: "192.0.2.10/24",
    gateway: "192.0.2.1",
    vlan: 10,
  };
  assertEquals(guestNics([user("52:54:00:00:00:02", 20), user("52:54:00:00:00:03")], []), {
    nics: [
      { mac: "52:54:00:00:00:02", address: "10.0.2.15/24", gateway: "10.0.2.2", vlan: 20 },
      { mac: "52:54:00:00:00:03", address: "10.0.2.15/24" },
    ],
    dns: ["10.0.2.3"],
  });
  // A tap NIC with the gateway keeps the default route; the DNS servers set are kept.
  assertEquals(guestNics([user("52:54:00:00:00:02"), tap], ["192.0.2.53"]), {
    nics: [
      { mac: "52:54:00:00:00:02", address: "10.0.2.15/24" },
      { mac: tap.mac, address: tap.address, gateway: tap.gateway, vlan: 10 },
    ],
    dns: ["192.0.2.53"],
  });
  assertEquals(guestNics([tap], []), {
    nics: [{ mac: tap.mac, address: tap.address, gateway: tap.gateway, vlan: 10 }],
    dns: [],
  });
  // What the guest gets is a valid configuration.
  const cfg = { ...web1, ...guestNics([user("52:54:00:00:00:02")], []) };
  assert(renderGuestConfig(cfg).get("guest.env")!.includes("KAOS_NIC0_ADDR='10.0.2.15/24'"));
});

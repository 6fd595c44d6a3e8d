/**
 * Firewall actions: management sources, published ports and user rules (store first, then the
 * firewall is applied; if nft refuses, the store change is undone and nothing changed), the
 * rendered ruleset, its status and commit-confirmed.
 */
import type { FirewallApplied, UserRule } from "../../ipc/mod.ts";
import { UserError } from "../../lib/errors.ts";
import { applyFirewall, confirmFirewall, normalizeCidr, renderFromStore } from "../firewall.ts";
import {
  deleteForward,
  deleteMgmt,
  deleteRule,
  insertForward,
  insertMgmt,
  insertRule,
  lastConfirmedGeneration,
  latestGeneration,
  listForwards,
  listMgmt,
  listRules,
} from "../store_firewall.ts";
import type { Handlers, Kattach } from "./_types.ts";

/** Applies after a store change; when nft refuses, runs `undo` and says nothing changed. */
async function applyOrUndo(
  k: Kattach,
  reason: string,
  undo: () => void,
  confirmWithin?: number,
): Promise<FirewallApplied> {
  try {
    return await applyFirewall(k, { reason, confirmWithin });
  } catch (err) {
    k.store.tx(undo);
    k.log(`firewall: ${reason}: refused, undone: ${(err as Error).message}`);
    throw new UserError(
      `The firewall refused the change, so nothing changed: ${(err as Error).message}`,
      {
        hint: "this is a bug in KaOS' firewall renderer; `firewall show` prints the ruleset",
        code: "refused",
        cause: err,
      },
    );
  }
}

function cidrArg(text: string, what: string): string {
  try {
    return normalizeCidr(text);
  } catch (err) {
    const inner = err instanceof UserError ? err : undefined;
    const problem = (err as Error).message.replace(/^Invalid (CIDR|IPv4 address) "[^"]*": /, "");
    throw new UserError(`Invalid ${what} "${text}": ${problem}`, {
      hint: inner?.hint.startsWith("did you mean")
        ? inner.hint
        : "write an IPv4 address or block, e.g. 192.168.1.0/24 or 203.0.113.7",
    });
  }
}

/** Parses `--from`/`--to`: a CIDR, `vlan:ID`, or (to only) an instance name. */
function endArg(k: Kattach, text: string | undefined, side: "from" | "to", chain: string) {
  if (text === undefined) return null;
  const vlan = text.match(/^vlan:(\d+)$/);
  if (vlan) {
    if (!k.store.getVlan(Number(vlan[1]))) {
      throw new UserError(`Cannot use ${text}: VLAN ${vlan[1]} does not exist`, {
        hint: "see `vlan list`",
        code: "not-found",
      });
    }
    return `vlan:${Number(vlan[1])}`;
  }
  if (/^[0-9./]+$/.test(text)) return cidrArg(text, `--${side}`);
  if (side === "to" && chain === "forward") {
    const inst = k.store.getInstance(text);
    if (!inst) {
      throw new UserError(`Cannot use --to ${text}: no such instance`, {
        hint: "--to takes a CIDR, vlan:ID or an instance name (see `instance list`)",
        code: "not-found",
      });
    }
    if (!inst.nics.some((n) => n.vlan !== null && n.ip !== null)) {
      throw new UserError(`Cannot use --to ${text}: it has no address on a VLAN`, {
        hint: "rules follow VLAN addresses; user-mode NICs are not filtered here",
      });
    }
    return text;
  }
  throw new UserError(`Invalid --${side} "${text}"`, {
    hint: side === "to" && chain === "forward"
      ? "write a CIDR (10.0.10.0/24), vlan:ID or an instance name"
      : side === "to"
      ? "input rules concern the host's own addresses: write a CIDR or vlan:ID"
      : "write a CIDR (10.0.10.0/24) or vlan:ID",
  });
}

function portArg(text: string | undefined, proto: string | undefined): string | null {
  if (text === undefined) return null;
  const m = text.match(/^(\d{1,5})(?:-(\d{1,5}))?$/);
  const from = Number(m?.[1]);
  const to = m?.[2] === undefined ? from : Number(m[2]);
  if (!m || from < 1 || to > 65535 || to < from) {
    throw new UserError(`Invalid --port "${text}"`, {
      hint: "write a port or a range from 1 to 65535, e.g. 443 or 8000-8099",
    });
  }
  if (proto !== "tcp" && proto !== "udp") {
    throw new UserError("--port needs --proto tcp or --proto udp", { hint: "" });
  }
  return from === to ? String(from) : `${from}-${to}`;
}

/** The firewall actions. */
export const firewallHandlers: Handlers<
  | "firewall.mgmt.add"
  | "firewall.mgmt.del"
  | "firewall.mgmt.list"
  | "firewall.forward.add"
  | "firewall.forward.list"
  | "firewall.forward.del"
  | "firewall.rule.add"
  | "firewall.rule.list"
  | "firewall.rule.del"
  | "firewall.show"
  | "firewall.status"
  | "firewall.confirm"
> = {
  async "firewall.mgmt.add"(k, p) {
    const cidr = cidrArg(p.cidr, "management source");
    k.store.tx(() => {
      if (listMgmt(k.store).some((m) => m.cidr === cidr)) {
        throw new UserError(`${cidr} is a management source already`, { code: "conflict" });
      }
      insertMgmt(k.store, cidr, p.note ?? "");
    });
    const applied = await applyOrUndo(
      k,
      `firewall mgmt add ${cidr}`,
      () => deleteMgmt(k.store, cidr),
      p.confirmWithin,
    );
    return { mgmt: listMgmt(k.store), applied };
  },

  async "firewall.mgmt.del"(k, p) {
    const cidr = cidrArg(p.cidr, "management source");
    const old = listMgmt(k.store).find((m) => m.cidr === cidr);
    if (!old) {
      throw new UserError(`${cidr} is not a management source`, {
        hint: "see `firewall mgmt list`",
        code: "not-found",
      });
    }
    k.store.tx(() => deleteMgmt(k.store, cidr));
    const applied = await applyOrUndo(
      k,
      `firewall mgmt del ${cidr}`,
      () => insertMgmt(k.store, old.cidr, old.note, old.addedAt),
      p.confirmWithin,
    );
    return { mgmt: listMgmt(k.store), applied };
  },

  "firewall.mgmt.list"(k) {
    return listMgmt(k.store);
  },

  async "firewall.forward.add"(k, p) {
    const proto = p.proto ?? "tcp";
    const hostPort = p.hostPort ?? p.guestPort;
    const mgmtPort = k.firewallHost?.mgmtPort ?? 1289;
    if (proto === "tcp" && hostPort === mgmtPort) {
      throw new UserError(`Cannot publish TCP ${hostPort}: it is the AppQueue CLI's port`, {
        hint: "choose another --host-port",
        code: "conflict",
      });
    }
    const id = k.store.tx(() => {
      const inst = k.store.getInstance(p.instance);
      if (!inst) {
        throw new UserError(`Instance ${p.instance} does not exist`, {
          hint: "see `instance list`",
          code: "not-found",
        });
      }
      if (!inst.nics.some((n) => n.vlan !== null && n.ip !== null)) {
        throw new UserError(`Cannot publish a port of ${p.instance}: it has no address on a VLAN`, {
          hint: "published ports go to VLAN addresses; deploy it from a VM image with --vlan",
        });
      }
      const clash = listForwards(k.store).find((f) => f.proto === proto && f.hostPort === hostPort);
      if (clash) {
        throw new UserError(
          `Cannot publish ${proto} ${hostPort}: it goes to ${clash.instance}:${clash.guestPort} already`,
          {
            hint: "choose another --host-port, or `firewall forward del` the other",
            code: "conflict",
          },
        );
      }
      return insertForward(k.store, {
        instance: p.instance,
        proto,
        hostPort,
        guestPort: p.guestPort,
      });
    });
    const applied = await applyOrUndo(
      k,
      `firewall forward add ${p.instance} ${p.guestPort}`,
      () => deleteForward(k.store, id),
    );
    return { forward: listForwards(k.store).find((f) => f.id === id)!, applied };
  },

  "firewall.forward.list"(k, p) {
    return listForwards(k.store, p);
  },

  async "firewall.forward.del"(k, p) {
    const old = listForwards(k.store).find((f) => f.id === p.id);
    if (!old) {
      throw new UserError(`There is no published port ${p.id}`, {
        hint: "see `firewall forward list`",
        code: "not-found",
      });
    }
    k.store.tx(() => deleteForward(k.store, p.id));
    const applied = await applyOrUndo(k, `firewall forward del ${p.id}`, () => {
      k.store.run(
        "INSERT INTO firewall_forward (id, instance, proto, host_port, guest_port, created_at) VALUES (?, ?, ?, ?, ?, ?)",
        [old.id, old.instance, old.proto, old.hostPort, old.guestPort, old.createdAt],
      );
    });
    return { deleted: `published port ${p.id}`, applied };
  },

  async "firewall.rule.add"(k, p) {
    if (p.proto === "icmp" && p.port !== undefined) {
      throw new UserError("--port does not go with --proto icmp", { hint: "" });
    }
    const rule: Omit<UserRule, "id" | "createdAt"> = {
      chain: p.chain,
      action: p.action,
      proto: p.proto ?? null,
      from: endArg(k, p.from, "from", p.chain),
      to: endArg(k, p.to, "to", p.chain),
      port: portArg(p.port, p.proto),
      note: p.note ?? "",
    };
    const id = k.store.tx(() => insertRule(k.store, rule));
    const applied = await applyOrUndo(
      k,
      `firewall rule add #${id} (${p.chain} ${p.action})`,
      () => deleteRule(k.store, id),
      p.confirmWithin,
    );
    return { rule: listRules(k.store).find((r) => r.id === id)!, applied };
  },

  "firewall.rule.list"(k) {
    return listRules(k.store);
  },

  async "firewall.rule.del"(k, p) {
    const old = listRules(k.store).find((r) => r.id === p.id);
    if (!old) {
      throw new UserError(`There is no firewall rule ${p.id}`, {
        hint: "see `firewall rule list`",
        code: "not-found",
      });
    }
    k.store.tx(() => deleteRule(k.store, p.id));
    const applied = await applyOrUndo(
      k,
      `firewall rule del #${p.id}`,
      () => insertRule(k.store, old),
      p.confirmWithin,
    );
    return { deleted: `rule ${p.id}`, applied };
  },

  "firewall.show"(k) {
    const { text, warnings } = renderFromStore(k);
    return { text, warnings };
  },

  async "firewall.status"(k) {
    const strip = <T extends { ruleset: string; access: string }>(g: T | undefined) => {
      if (!g) return null;
      const { ruleset: _r, access: _a, ...rest } = g;
      return rest;
    };
    const counters: Record<string, number> = {};
    if (k.firewallHost) {
      for (const family of ["inet", "bridge"] as const) {
        const c = await k.firewallHost.nft.counters(family, "kaos").catch(() => ({}));
        for (const [name, v] of Object.entries(c)) counters[`${family}/${name}`] = v.packets;
      }
    }
    return {
      managed: k.firewallHost !== undefined,
      current: strip(latestGeneration(k.store)),
      lastConfirmed: strip(lastConfirmedGeneration(k.store)),
      warnings: renderFromStore(k).warnings,
      mgmtPort: k.firewallHost?.mgmtPort ?? 1289,
      mgmt: listMgmt(k.store),
      forwards: listForwards(k.store).length,
      rules: listRules(k.store).length,
      counters,
    };
  },

  "firewall.confirm"(k, _p, ctx) {
    return confirmFirewall(k, ctx.origin);
  },
};

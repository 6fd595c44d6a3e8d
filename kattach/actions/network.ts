/** Network actions: routes between VLANs and the host's uplink and DNS settings. */
import { UserError } from "../../lib/errors.ts";
import { isKaosLinkName, parseIpv4 } from "../../netmgr/mod.ts";
import { applyNetwork, networkStatus, uplinkWarning } from "../network.ts";
import type { Handlers } from "./_types.ts";
import { resolveVlan } from "./vlan.ts";

/** The network actions. */
export const networkHandlers: Handlers<
  | "vlan.route.add"
  | "vlan.route.del"
  | "vlan.route.list"
  | "network.set"
  | "network.status"
  | "network.apply"
> = {
  "network.status"(k) {
    return networkStatus(k);
  },

  "network.apply"(k) {
    return applyNetwork(k, { reason: "network apply" });
  },

  "vlan.route.add"(k, p) {
    return k.store.tx(() => {
      const a = resolveVlan(k.store, p.a);
      const b = resolveVlan(k.store, p.b);
      if (a.id === b.id) {
        throw new UserError(`Cannot route VLAN ${a.id} to itself`, {
          hint: "a route joins two different VLANs",
        });
      }
      if (!k.store.insertVlanRoute(a.id, b.id)) {
        throw new UserError(`VLANs ${a.id} and ${b.id} are routed already`, {
          hint: "see `vlan route list`",
          code: "conflict",
        });
      }
      k.log(`vlan: route ${a.id} <-> ${b.id} added`);
      return k.store.listVlanRoutes();
    });
  },

  "vlan.route.del"(k, p) {
    return k.store.tx(() => {
      const a = resolveVlan(k.store, p.a);
      const b = resolveVlan(k.store, p.b);
      if (!k.store.deleteVlanRoute(a.id, b.id)) {
        throw new UserError(`VLANs ${a.id} and ${b.id} are not routed`, {
          hint: "see `vlan route list`",
          code: "not-found",
        });
      }
      k.log(`vlan: route ${a.id} <-> ${b.id} deleted`);
      return k.store.listVlanRoutes();
    });
  },

  "vlan.route.list"(k) {
    return k.store.listVlanRoutes();
  },

  async "network.set"(k, p) {
    if (p.uplink !== undefined && isKaosLinkName(p.uplink)) {
      throw new UserError(`Cannot use ${p.uplink} as the uplink: it is a link KaOS makes`, {
        hint: "name the host's physical interface, e.g. eth0",
      });
    }
    const dns = p.dns;
    for (const ip of dns ?? []) parseIpv4(ip); // a UserError naming the bad address
    if (dns !== undefined && new Set(dns).size !== dns.length) {
      throw new UserError("Cannot set DNS: an address is given twice");
    }
    const s = k.store.tx(() => {
      k.store.setNetworkSettings({ uplink: p.uplink, dns });
      const s = k.store.networkSettings();
      k.log(`network: uplink ${s.uplink}, dns ${s.dns.join(",") || "none"}`);
      return s;
    });
    // Stored all the same: an interface that is not there now may come later (a USB NIC).
    const missing = await uplinkWarning(k, s.uplink);
    if (missing) k.log(`network: ${missing}`);
    return { ...s, warnings: missing ? [missing] : [] };
  },
};

/**
 * A synthetic firewall input of any size, for tests and benchmarks: `vlans` VLANs on /22s of
 * 10.0.0.0/10 (every other one NATed, every third isolated, a route from VLAN 1 to every fifth),
 * `nics` guest ports spread round-robin over them, 100 published ports at most.
 */
import type { FirewallInput } from "./firewall.ts";

/** A host with `vlans` VLANs (1-4094) and `nics` guest NICs spread over them. */
export function syntheticFirewall(vlans: number, nics: number): FirewallInput {
  const vs = Array.from({ length: vlans }, (_, i) => ({
    id: i + 1,
    cidr: `10.${(i >> 6) & 255}.${(i & 63) * 4}.0/22`,
    gateway: `10.${(i >> 6) & 255}.${(i & 63) * 4}.1`,
    bridge: `kbr${i + 1}`,
    nat: i % 2 === 0,
    isolate: i % 3 === 0,
  }));
  const ports = Array.from({ length: nics }, (_, n) => {
    const i = n % vlans;
    const host = 2 + Math.floor(n / vlans);
    const mac = `0a:4b:53:${hex(n >> 16)}:${hex((n >> 8) & 255)}:${hex(n & 255)}`;
    return {
      tap: `kt${mac.replaceAll(":", "")}`,
      mac,
      ip: `10.${(i >> 6) & 255}.${(i & 63) * 4 + (host >> 8)}.${host & 255}`,
      vlan: i + 1,
    };
  });
  return {
    uplink: "eth0",
    mgmtPort: 1289,
    mgmt: ["192.168.0.0/16"],
    vlans: vs,
    routes: vs.slice(1).filter((_, i) => i % 5 === 0).map((v) => ({ a: 1, b: v.id })),
    ports,
    forwards: ports.slice(0, Math.min(100, nics)).map((p, i) => ({
      proto: "tcp" as const,
      hostPort: 20000 + i,
      ip: p.ip,
      guestPort: 80,
    })),
    rules: [],
  };
}

function hex(n: number): string {
  return n.toString(16).padStart(2, "0");
}

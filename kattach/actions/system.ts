/** System actions: what the operator sees first. */
import { openMgmtWarning } from "../../netmgr/mod.ts";
import { listMgmt } from "../store_firewall.ts";
import { uplinkWarning } from "../network.ts";
import { sshHostKeyStatus } from "../ssh_host_key.ts";
import { storageStatus } from "../storage.ts";
import type { Handlers } from "./_types.ts";

/** The KaOS release this build is. */
export const KAOS_VERSION = "0.1.0-dev";

/** The system actions. */
export const systemHandlers: Handlers<"system.status" | "system.check"> = {
  async "system.status"(k) {
    const vkaos = k.store.getVkaos();
    const sshHostKey = await sshHostKeyStatus(k.stateDir);
    const uplink = await uplinkWarning(k);
    return {
      version: KAOS_VERSION,
      hostname: Deno.hostname(),
      pid: Deno.pid,
      mode: k.mode,
      stateDir: k.stateDir,
      uptimeSeconds: Math.round((Date.now() - k.startedAt) / 100) / 10,
      accel: k.accel,
      vkaos: vkaos ? `${vkaos.name} ${vkaos.version}` : null,
      counts: k.store.counts(),
      store: (({ integrity, checkedAt }) => ({
        schema: k.store.schemaVersion(),
        integrity,
        integrityCheckedAt: checkedAt,
      }))(k.store.lastIntegrityCheck()),
      dataDisk: k.dataDisk ?? null,
      warnings: [
        ...(k.firewallHost && listMgmt(k.store).length === 0
          ? [openMgmtWarning(k.firewallHost.mgmtPort)]
          : []),
        ...(uplink ? [uplink] : []),
        ...(sshHostKey.notice ? [sshHostKey.notice] : []),
      ],
      sshHostKey,
      storage: storageStatus(k),
    };
  },

  "system.check"(k) {
    const check = k.store.integrityCheck();
    k.log(`store: integrity check: ${check.integrity} (${check.durationMs} ms)`);
    return check;
  },
};

/**
 * The running kattach's parts, as every layer of kattach gets them (action handlers, the guest
 * supervisor, the network and firewall code). A lower layer than the action handlers: it imports
 * none of them.
 */
import type { NftHost } from "../host/mod.ts";
import type { DataDiskStatus } from "../ipc/mod.ts";
import type { LogBook } from "./log.ts";
import type { Store } from "./store.ts";

/** What every handler and service gets: the running kattach's parts. */
export interface Kattach {
  store: Store;
  stateDir: string;
  mode: "hosted" | "appliance";
  startedAt: number;
  accel: { kind: "kvm" | "tcg"; reason: string };
  log(line: string): void;
  /** The appliance's data partition as found at boot (absent in hosted mode). */
  dataDisk?: DataDiskStatus;
  /** Queues the image carries (the read-only `local`): `appqueue set/del` refuse them. */
  builtinQueues?: string[];
  /**
   * Present only when kattach manages the host's networking (the appliance, or hosted mode with
   * bridged networking): where the firewall goes, and the SSH port it keeps reachable.
   */
  firewallHost?: {
    nft: NftHost;
    mgmtPort: number;
    /** Reconciles the links after a rollback restored another uplink (then the firewall). */
    onUplinkRestored?: (reason: string) => Promise<unknown>;
  };
  /** Hosted mode: the only disks `storage` may consider (`--storage-disks`); none by default. */
  storageDisks?: string[];
  /** kattach's own log (`system log`); absent in unit tests. */
  logBook?: LogBook;
  /**
   * The appliance: resolves once QEMU is in place (kattach/late_archive.ts unpacks it after the
   * SSH service is up), rejects saying why it is not; instance starts wait for it.
   */
  guestRuntime?: () => Promise<void>;
}

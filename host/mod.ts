/** The host: the few facts and side effects KaOS needs from the machine it runs on. */
export { type Accel, type AccelProbe, decideAccel, probeAccel } from "./accel.ts";
export {
  type BlockDisk,
  freeSpace,
  makeExt4,
  mountsOf,
  parseDf,
  parseSuperblock,
  type Partition,
  readDisks,
  readSuperblock,
  type Superblock,
  swapDevices,
} from "./disks.ts";
export {
  ext4Label,
  findByLabel,
  type MountEntry,
  mountOnce,
  type MountSpec,
  parseMounts,
  readMounts,
} from "./mounts.ts";
export {
  holdOwnChild,
  libcWaitpid,
  listProcesses,
  parseProcStat,
  type ProcStat,
  Reaper,
  releaseOwnChild,
  type Waitpid,
  zombieChildren,
} from "./reaper.ts";
export { parseProcCpuMs, processCpuMs } from "./proc_cpu.ts";
export { growMbrEntry, growPartitionToDisk, type MbrGrowth } from "./mbr.ts";
export {
  type CommandResult,
  outputOwned,
  runChecked,
  type RunCommand,
  runCommand,
  spawnOwned,
} from "./run.ts";
export { hostTscKhz, parseTscKhz } from "./tsc.ts";
export {
  lastLogLines,
  LogTail,
  type LogTailOptions,
  rotateAppendLog,
  rotatedLogPath,
  SERIAL_LOG_MAX_BYTES,
} from "./append_log.ts";
export {
  type LinkCounters,
  type Netlink,
  realNetlink,
  type RealNetlinkOptions,
  sysfsCounters,
} from "./netlink.ts";
export {
  dumpLinks,
  type DumpOptions,
  LinkCache,
  type LinkCacheOptions,
  type LinkDump,
  rtnetlinkUnavailable,
} from "./rtnetlink.ts";
export {
  type DumpAccumulator,
  dumpRequest,
  LINK_GROUPS,
  type LinkEvent,
  NetlinkError,
  newDump,
  type NlAddress,
  type NlLink,
  parseDumpChunk,
  parseNotifications,
} from "./rtnetlink_msg.ts";
export { type FakeLink, FakeNetlink } from "./netlink_fake.ts";
export { countersOf, FakeNft, type NftCounter, NftError, type NftHost, realNft } from "./nft.ts";
export {
  chownTree,
  ensureGuestUser,
  grantDevice,
  grantGroup,
  grantTraversal,
  lookupUser,
  parsePasswd,
  QEMU_USER,
  type UserIds,
} from "./guest_user.ts";
export {
  closeFd,
  decodeWaitStatus,
  type DetachedProcess,
  INHERITED_FD,
  listenUnixFd,
  type ProcessEnd,
  spawnDetached,
  type SpawnDetachedOptions,
} from "./spawn.ts";

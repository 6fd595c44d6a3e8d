/**
 * The vKaOS kernel: a minimal all-built-in Linux 6.1 for KaOS guests, built by
 * scripts/build-vkaos-kernel into build/vkaos-kernel/{bzImage,vmlinux,config}. This face offers
 * its paths, a cached build call and the boot helpers its tests and bench/vkaos_boot.ts share.
 */
export {
  buildScript,
  ensureKernel,
  exists,
  type KernelPaths,
  kernelPaths,
  missingOptions,
  parseKernelConfig,
  REPO_ROOT,
} from "./kernel.ts";
export { buildBusyboxInitramfs, buildExt4Image, BUSYBOX } from "./initramfs.ts";
export {
  type BootKind,
  type BootResult,
  type BootSpec,
  bootToMarker,
  hostTscKhz,
  parseTscKhz,
  QBOOT,
  qmpSystemPowerdown,
  renderBootArgv,
} from "./boot.ts";

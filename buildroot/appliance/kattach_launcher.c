/*
 * /sbin/kattach: the appliance's init launcher. The kernel starts it as PID 1 (rdinit=/sbin/kattach;
 * /init links here too); it fixes up the console if the kernel could not open one and then exec()s
 * the deno runtime on the bundled KaOS program, so PID 1 *is* the deno process running kattach.
 * Deno cannot start without /proc (it reads /proc/self/exe), so the launcher mounts /proc, /sys
 * and /dev first; kattach/pid1.ts mounts the rest and treats these three as already done.
 * It never returns: if exec fails it logs, syncs and reboots (init must not exit).
 * Static C because the kernel cannot pass arguments to init's interpreter and a shell wrapper
 * would be a second init.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <unistd.h>

static void early_mounts(void) {
  if (access("/proc/self/exe", F_OK) != 0) mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
  if (access("/sys/kernel", F_OK) != 0) mount("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
  if (access("/dev/zero", F_OK) != 0) mount("devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=0755");
}

static void console_fds(void) {
  if (fcntl(0, F_GETFD) != -1 && fcntl(1, F_GETFD) != -1 && fcntl(2, F_GETFD) != -1) return;
  int fd = open("/dev/console", O_RDWR | O_NOCTTY);
  if (fd < 0) return;
  for (int i = 0; i < 3; i++)
    if (fcntl(i, F_GETFD) == -1) dup2(fd, i);
  if (fd > 2) close(fd);
}

int main(int argc, char **argv) {
  (void)argc;
  (void)argv;
  early_mounts();
  console_fds();
  /* The V8 flags are lib/v8_flags.ts' KATTACH_V8_FLAGS_OPTION (kattach/pid1_test.ts keeps them
     equal). */
  char *const args[] = {"/bin/deno",
                        "run",
                        "-A",
                        "--cached-only",
                        "--no-config",
                        "--v8-flags=--max-semi-space-size=1,--max-old-space-size=512,--expose-gc,--max-opt=2",
                        "/kaos/kaos.js",
                        "kattach",
                        "--appliance",
                        NULL};
  char *const env[] = {"HOME=/root", "PATH=/sbin:/bin:/usr/sbin:/usr/bin", "TERM=linux",
                       "DENO_DIR=/var/cache/deno", "DENO_NO_UPDATE_CHECK=1", "NO_COLOR=1",
                       "KAOS_APPLIANCE=1",
                       /* lib/idle_memory.ts' KATTACH_MALLOC_ENV (kattach/pid1_test.ts keeps it
                          equal); kattach takes it out of its children's environment. */
                       "MALLOC_ARENA_MAX=1", NULL};
  execve(args[0], args, env);
  fprintf(stderr, "kattach-launcher: cannot exec %s: %s; rebooting in 10 s\n", args[0],
          strerror(errno));
  sync();
  sleep(10);
  reboot(RB_AUTOBOOT);
  for (;;) pause();
}

# The vKaOS guest init's first mounts (buildroot/vkaos/init, phase_mounts: mount -a -T this file).
proc     /proc proc     nosuid,nodev,noexec         0 0
sysfs    /sys  sysfs    nosuid,nodev,noexec         0 0
devtmpfs /dev  devtmpfs nosuid,mode=0755            0 0
tmpfs    /run  tmpfs    nosuid,nodev,mode=0755      0 0
tmpfs    /tmp  tmpfs    nosuid,nodev,mode=1777      0 0

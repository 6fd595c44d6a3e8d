# Redis from Debian's packages (sourced by modules/build).
PACKAGES="redis-server redis-tools liblzf1 libjemalloc2"
KEEP="usr/bin/redis-check-rdb usr/bin/redis-server usr/bin/redis-cli"
# Uncompressed: under TCG, decompressing the binaries and libraries at start costs more than
# reading a larger image (bench/modules.ts: Redis ready 2.4x -> 1.6-1.9x of web).
COMPRESS=none

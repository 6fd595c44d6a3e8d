# Redis from Debian's packages (sourced by modules/build).
PACKAGES="redis-server redis-tools liblzf1 libjemalloc2"
KEEP="usr/bin/redis-check-rdb usr/bin/redis-server usr/bin/redis-cli"

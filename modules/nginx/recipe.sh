# nginx from Debian's packages (sourced by modules/build).
PACKAGES="nginx nginx-common"
KEEP="usr/sbin/nginx etc/nginx/mime.types"
# Uncompressed: under TCG, decompressing the binaries and libraries at start costs more than
# reading a larger image (bench/modules.ts: Redis ready 2.4x -> 1.6-1.9x of web).
COMPRESS=none

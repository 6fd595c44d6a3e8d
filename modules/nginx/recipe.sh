# nginx from Debian's packages (sourced by modules/build).
PACKAGES="nginx nginx-common"
KEEP="usr/sbin/nginx etc/nginx/mime.types"

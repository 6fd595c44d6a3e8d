# PostgreSQL from Debian's packages (sourced by modules/build).
PACKAGES="postgresql-15 postgresql-client-15 libpq5 tzdata"
KEEP="usr/lib/postgresql/15/bin/postgres usr/lib/postgresql/15/bin/initdb
  usr/lib/postgresql/15/bin/psql usr/lib/postgresql/15/lib/plpgsql.so
  usr/lib/postgresql/15/lib/dict_snowball.so usr/share/postgresql/15
  usr/share/zoneinfo/UTC usr/share/zoneinfo/Etc/UTC"

# Uncompressed: the first start of postgres and psql reads them and ~40 libraries from the image;
# under TCG decompressing those pages (zstd) cost more than the reads (modules/README.md).
COMPRESS=none
# The template cluster keeps its owner (the guest's postgres user, uid 70) in the image: the guest
# mounts it as the read-only lower layer of an overlay, nothing copied.
OWNERS=keep

# prepare ROOT EXTRACTED: a template cluster made at build time (initdb under TCG in the guest
# takes a minute), shipped as the directory usr/share/kaos/pgdata. Run as nobody: initdb refuses
# root.
prepare() {
  local tmp
  need runuser util-linux
  stub_libraries "$1"
  # bin/kaos-pg (tools/kaos-pg.c): static, so starting it loads and resolves no library
  [ -f /usr/lib/x86_64-linux-gnu/libc.a ] || { echo "prepare: no static libc (apt-get install libc6-dev)" >&2; return 1; }
  gcc -O2 -Wall -Wextra -Werror -static -o "$1/bin/kaos-pg" "$(dirname "${BASH_SOURCE[0]}")/tools/kaos-pg.c"
  tmp=$(mktemp -d)
  chmod 0755 "$tmp"
  cp -a "$2/usr" "$tmp/usr"
  chown nobody "$tmp"
  runuser -u nobody -- env -i PATH=/usr/bin:/bin LD_LIBRARY_PATH="$1/lib" TZ=UTC \
    "$tmp/usr/lib/postgresql/15/bin/initdb" -D "$tmp/data" -U postgres -A trust -E UTF8 \
    --locale=C -N --no-instructions --wal-segsize=1 >"$tmp/initdb.log" 2>&1 || {
    cat "$tmp/initdb.log" >&2
    rm -rf "$tmp"
    return 1
  }
  # an empty database the first start renames to the configured one (CREATE DATABASE would copy
  # template1 under TCG at every boot)
  echo "CREATE DATABASE kaos_app;" | runuser -u nobody -- env -i LD_LIBRARY_PATH="$1/lib" TZ=UTC \
    "$tmp/usr/lib/postgresql/15/bin/postgres" --single -D "$tmp/data" -c fsync=off template1 \
    >>"$tmp/initdb.log" 2>&1 || {
    cat "$tmp/initdb.log" >&2
    rm -rf "$tmp"
    return 1
  }
  # the cluster was shut down cleanly: one fresh WAL segment instead of the 6 initdb left
  runuser -u nobody -- env -i LD_LIBRARY_PATH="$1/lib" \
    "$tmp/usr/lib/postgresql/15/bin/pg_resetwal" -D "$tmp/data" >>"$tmp/initdb.log" 2>&1 || {
    cat "$tmp/initdb.log" >&2
    rm -rf "$tmp"
    return 1
  }
  printf 'local all all trust\nhost all all 0.0.0.0/0 scram-sha-256\n' >"$tmp/data/pg_hba.conf"
  # the module's settings (port and socket directory: bin/start's command line); fsync stays on.
  # kaos-start.conf: bin/start starts the server with autovacuum off, and on after ready
  cat >>"$tmp/data/postgresql.conf" <<'CONF'

# KaOS (modules/postgresql/recipe.sh)
listen_addresses = '*'
logging_collector = off
shared_buffers = 16MB
max_connections = 50
dynamic_shared_memory_type = mmap
# no logical replication launcher at start (the module's user cannot subscribe: no superuser)
max_logical_replication_workers = 0
include_if_exists = 'kaos-start.conf'
CONF
  # owned by the guest's postgres user (uid 70), mode 0700 as the server demands
  chown -R 70:70 "$tmp/data"
  chmod 0700 "$tmp/data"
  mkdir -p "$1/usr/share/kaos"
  mv "$tmp/data" "$1/usr/share/kaos/pgdata"
  # the template's identity: an upper layer made over it (on a data disk) is refused over another
  (cd "$1/usr/share/kaos/pgdata" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum) |
    sha256sum | cut -c1-16 >"$1/usr/share/kaos/pgdata.id"
  rm -rf "$tmp"
}

# stub_libraries ROOT: LDAP, PAM and GSSAPI authentication and systemd's sd_notify are nothing the
# module uses (its pg_hba.conf allows trust over the unix socket and scram-sha-256 over TCP; the
# guest has no systemd), but their libraries pulled in 22 more (GnuTLS, Kerberos, SASL, libgcrypt,
# ...) whose symbols every start of postgres and psql resolved (half the instructions before main).
# Each is replaced by a small library (stubs/*.c) with the symbols postgres and libpq import,
# failing as the real one does when nothing is configured; libraries nothing needs any more are
# dropped. The build fails if any symbol or version of the binaries no longer resolves (ldd -r).
stub_libraries() {
  local root=$1 dir src soname ver elf bad keep f
  [ -n "$root" ] && [ -d "$root/lib" ] || { echo "stub_libraries: no $root/lib" >&2; return 1; }
  need gcc gcc
  dir=$(dirname "${BASH_SOURCE[0]}")/stubs
  while read -r src soname ver; do
    echo "$ver { global: *; };" >"$root/lib/.$src.map"
    gcc -O2 -Wall -Wextra -Werror -shared -fPIC -nostartfiles -Wl,-soname,"$soname" \
      -Wl,--version-script="$root/lib/.$src.map" -o "$root/lib/$soname" "$dir/$src.c"
    rm "$root/lib/.$src.map"
  done <<STUBS
gssapi libgssapi_krb5.so.2 gssapi_krb5_2_MIT
ldap libldap-2.5.so.0 OPENLDAP_2.5
pam libpam.so.0 LIBPAM_1.0
systemd libsystemd.so.0 LIBSYSTEMD_209
STUBS
  keep=""
  for elf in "$root"/usr/lib/postgresql/15/bin/*; do
    bad=$(LD_LIBRARY_PATH="$root/lib" ldd -r "$elf" 2>&1 | grep -E 'not found|undefined symbol|version .* not' || true)
    [ -z "$bad" ] || { echo "stub_libraries: $elf: $bad" >&2; return 1; }
    keep="$keep $(LD_LIBRARY_PATH="$root/lib" ldd "$elf" | grep -oE '=> [^ ]+' | cut -c4- | xargs -n1 basename | tr "\n" " ")"
  done
  for f in "$root"/lib/*.so*; do
    case " $keep ld-linux-x86-64.so.2 " in *" ${f##*/} "*) ;; *) rm "$f" ;; esac
  done
}

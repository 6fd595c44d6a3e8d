# PostgreSQL from Debian's packages (sourced by modules/build).
PACKAGES="postgresql-15 postgresql-client-15 libpq5 tzdata"
KEEP="usr/lib/postgresql/15/bin/postgres usr/lib/postgresql/15/bin/initdb
  usr/lib/postgresql/15/bin/psql usr/lib/postgresql/15/lib/plpgsql.so
  usr/lib/postgresql/15/lib/dict_snowball.so usr/share/postgresql/15
  usr/share/zoneinfo/UTC usr/share/zoneinfo/Etc/UTC"

# prepare ROOT EXTRACTED: a template cluster made at build time (initdb under TCG in the guest
# takes a minute; extracting the template takes under a second), shipped as one tar
# (usr/share/kaos/pgdata.tar). Run as nobody: initdb refuses root.
prepare() {
  local tmp
  need runuser util-linux
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
  # one tar, owned by the guest's postgres user (uid 70): the guest reads it in one stream and
  # extracts it with owners and modes, 2-3x faster under TCG than cp -a and chown -R of its files
  chown -R 70:70 "$tmp/data"
  mkdir -p "$1/usr/share/kaos"
  tar -C "$tmp" --numeric-owner --mtime=@0 --sort=name -cf "$1/usr/share/kaos/pgdata.tar" data
  rm -rf "$tmp"
}

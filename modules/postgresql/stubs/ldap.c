/*
 * libldap-2.5.so.0 for the KaOS PostgreSQL module: LDAP is not available. postgres imports these
 * for `ldap` authentication (pg_hba.conf, which the module writes without it) and libpq for
 * `ldap://` lines in a service file (none in the guest); every call fails with an LDAP error.
 * Built by modules/postgresql/recipe.sh (modules/README.md, "PostgreSQL's start (session 4)").
 */
#include <stddef.h>

#define SERVER_DOWN (-1) /* LDAP_SERVER_DOWN */
#define FAIL(name) \
  int name(void) { return SERVER_DOWN; }
#define NONE(name) \
  void *name(void) { return NULL; }
#define NOTHING(name) \
  void name(void) {}

FAIL(ldap_count_entries)
FAIL(ldap_get_option)
FAIL(ldap_initialize)
FAIL(ldap_result)
FAIL(ldap_search_s)
FAIL(ldap_search_st)
FAIL(ldap_set_option)
FAIL(ldap_simple_bind)
FAIL(ldap_simple_bind_s)
FAIL(ldap_start_tls_s)
FAIL(ldap_unbind)
FAIL(ldap_unbind_s)
FAIL(ldap_dn2domain)
FAIL(ldap_domain2hostlist)
FAIL(ldap_url_parse)
NONE(ldap_init)
NONE(ldap_first_entry)
NONE(ldap_get_dn)
NONE(ldap_get_values_len)
NOTHING(ldap_memfree)
NOTHING(ldap_msgfree)
NOTHING(ldap_free_urldesc)
NOTHING(ldap_value_free_len)

const char *ldap_err2string(int err) {
  (void)err;
  return "LDAP is not available in the KaOS PostgreSQL module";
}

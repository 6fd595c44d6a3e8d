/*
 * libpam.so.0 for the KaOS PostgreSQL module: PAM is not available. postgres imports these for
 * `pam` authentication (pg_hba.conf, which the module writes without it); every call fails.
 * Built by modules/postgresql/recipe.sh (modules/README.md, "PostgreSQL's start (session 4)").
 */
#define SYSTEM_ERR 4 /* PAM_SYSTEM_ERR */
#define FAIL(name) \
  int name(void) { return SYSTEM_ERR; }

FAIL(pam_start)
FAIL(pam_set_item)
FAIL(pam_authenticate)
FAIL(pam_acct_mgmt)

int pam_end(void) { return 0; }

const char *pam_strerror(void *pamh, int err) {
  (void)pamh, (void)err;
  return "PAM is not available in the KaOS PostgreSQL module";
}

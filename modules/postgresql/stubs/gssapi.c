/*
 * libgssapi_krb5.so.2 for the KaOS PostgreSQL module: GSSAPI is not available. postgres and libpq
 * import these symbols; every call fails the way MIT Kerberos fails without credentials or a
 * keytab (GSS_S_FAILURE), so the server refuses GSSAPI encryption and libpq goes on without it.
 * Built by modules/postgresql/recipe.sh (modules/README.md, "PostgreSQL's start (session 4)").
 */
#include <stddef.h>
#include <stdint.h>

typedef uint32_t OM_uint32;
typedef struct {
  size_t length;
  void *value;
} gss_buffer_desc;

#define FAILURE (13u << 16) /* GSS_S_FAILURE */

/* gss_OID GSS_C_NT_HOSTBASED_SERVICE: no mechanism knows it here */
void *GSS_C_NT_HOSTBASED_SERVICE = NULL;

/* the callers pass more arguments; only the first (the minor status) is written */
#define FAIL(name)                      \
  OM_uint32 name(OM_uint32 *minor) {    \
    if (minor) *minor = 0;              \
    return FAILURE;                     \
  }
FAIL(gss_accept_sec_context)
FAIL(gss_acquire_cred)
FAIL(gss_display_name)
FAIL(gss_import_name)
FAIL(gss_init_sec_context)
FAIL(gss_unwrap)
FAIL(gss_wrap)
FAIL(gss_wrap_size_limit)

/* releasing: nothing was ever allocated; outputs cleared as the real library does */
OM_uint32 gss_release_buffer(OM_uint32 *minor, gss_buffer_desc *buf) {
  if (minor) *minor = 0;
  if (buf) {
    buf->length = 0;
    buf->value = NULL;
  }
  return 0;
}
OM_uint32 gss_release_cred(OM_uint32 *minor, void **cred) {
  if (minor) *minor = 0;
  if (cred) *cred = NULL;
  return 0;
}
OM_uint32 gss_release_name(OM_uint32 *minor, void **name) {
  if (minor) *minor = 0;
  if (name) *name = NULL;
  return 0;
}
OM_uint32 gss_delete_sec_context(OM_uint32 *minor, void **ctx, gss_buffer_desc *out) {
  if (minor) *minor = 0;
  if (ctx) *ctx = NULL;
  if (out) {
    out->length = 0;
    out->value = NULL;
  }
  return 0;
}

static char unavailable[] = "GSSAPI is not available in the KaOS PostgreSQL module";

/* one message, then done (message_context 0) */
OM_uint32 gss_display_status(OM_uint32 *minor, OM_uint32 status, int type, void *mech,
                             OM_uint32 *message_context, gss_buffer_desc *out) {
  (void)status, (void)type, (void)mech;
  if (minor) *minor = 0;
  if (message_context) *message_context = 0;
  if (out) {
    out->length = sizeof unavailable - 1;
    out->value = unavailable;
  }
  return 0;
}

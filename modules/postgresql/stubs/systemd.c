/*
 * libsystemd.so.0 for the KaOS PostgreSQL module: postgres tells systemd when it is ready or
 * reloading (sd_notify). The guest has no systemd, so there is nobody to tell: sd_notify does what
 * the real one does without $NOTIFY_SOCKET (nothing, returns 0).
 * Built by modules/postgresql/recipe.sh (modules/README.md, "PostgreSQL's start (session 4)").
 */
int sd_notify(int unset_environment, const char *state) {
  (void)unset_environment, (void)state;
  return 0;
}

/** App Modules: the module format, reading and verifying module directories, config values. */
export * from "./manifest.ts";
export {
  MAX_PART_BYTES,
  type ModulePart,
  type ModuleSource,
  readModuleDir,
  sha256File,
} from "./module_dir.ts";
export {
  checkClimodDefaults,
  checkGivenValues,
  coerce,
  resolveConfigValues,
  type ResolveOptions,
} from "./config_values.ts";
export * from "./signing.ts";
export * from "./index_format.ts";
export * from "./fetch.ts";
export * from "./bundle.ts";
export * from "./publish.ts";
export { compilePattern, MAX_PATTERN_STATES, Pattern, PatternError } from "./pattern.ts";

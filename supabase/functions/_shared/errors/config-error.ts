/**
 * The configuration error, in a module of its own so provider configuration modules can throw it
 * without importing ../config.ts (which imports the provider registry: an import cycle).
 */

/** Thrown when the environment is missing or has a malformed variable; the message names it. */
export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ConfigError";
  }
}

/**
 * The project's settings: snapdeploy.yaml if the project folder has one, else the
 * defaults. Flags override the file; the file overrides defaults. The schema (and the
 * validation library) is loaded only when there is a file: every command reads the
 * config, and most projects' sync would otherwise pay for it on each run.
 */
import { existsSync } from "node:fs";
import path from "node:path";
import { DEFAULT_CONFIG } from "./defaults.js";
import type { Config } from "./schema.js";

export type { Config };
export const CONFIG_FILE = "snapdeploy.yaml";
export { DEFAULT_CONFIG };

/** Reads <dir>/snapdeploy.yaml if present; an absent file means all defaults. */
export async function loadConfig(dir: string): Promise<Config> {
  const file = path.join(dir, CONFIG_FILE);
  if (!existsSync(file)) return structuredClone(DEFAULT_CONFIG);
  const { parseConfigFile } = await import("./schema.js");
  return parseConfigFile(file);
}

/** Lowercases and replaces what a workspace name cannot hold; "" if nothing is left. */
export function toName(s: string): string {
  return s
    .toLowerCase()
    .replace(/[^a-z0-9._-]+/g, "-")
    .replace(/^[^a-z0-9]+|[^a-z0-9]+$/g, "")
    .slice(0, 63)
    .replace(/[^a-z0-9]+$/, "");
}

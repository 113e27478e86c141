/**
 * snapdeploy's local cache folder: `$XDG_CACHE_HOME/snapdeploy` (if absolute), else
 * `~/.cache/snapdeploy`. Everything in it can be deleted at any time; it only saves work.
 */
import { homedir } from "node:os";
import { isAbsolute, join } from "node:path";

export function cacheDir(...parts: string[]): string {
  const xdg = process.env.XDG_CACHE_HOME;
  const base = xdg && isAbsolute(xdg) ? xdg : join(homedir(), ".cache");
  return join(base, "snapdeploy", ...parts);
}

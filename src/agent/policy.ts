/**
 * What this build server may be asked to push, as its admin set it at `server install`
 * (--allow-repository, --allow-tag-prefix; the agent reads them from its environment). With
 * neither set, the agent pushes wherever the client names (within what the registry
 * credentials allow). With either set, a build's reference must name a repository under one
 * of the allowed prefixes (whole path segments: "reg/team" allows "reg/team/app", not
 * "reg/team-b"), and its tag must be a snapshot tag: an allowed prefix (default "snap-")
 * followed by a 32-hex snapshot id; never "latest" or any other tag.
 *
 * The agent cannot know who is calling: a port-forward or exec carries no identity to it,
 * so these bounds apply to everyone who may reach the build server (RBAC on pods/portforward
 * and pods/exec in its namespace is the gate).
 */
import { parseRef } from "./registry.js";

export interface PushPolicy {
  /** host/path prefixes pushes may go to; empty: any. */
  repositories: string[];
  /** Prefixes of snapshot tags; empty: the default "snap-" (when a policy is set). */
  tagPrefixes: string[];
}

export const ALLOW_REPOSITORIES_ENV = "SNAPDEPLOY_ALLOW_REPOSITORIES";
export const ALLOW_TAG_PREFIXES_ENV = "SNAPDEPLOY_ALLOW_TAG_PREFIXES";
const DEFAULT_TAG_PREFIX = "snap-";

/** The policy in the agent's environment (comma-separated lists), or undefined when none is set. */
export function policyFromEnv(env: NodeJS.ProcessEnv): PushPolicy | undefined {
  const list = (v: string | undefined) =>
    (v ?? "")
      .split(",")
      .map((s) => s.trim())
      .filter(Boolean);
  const repositories = list(env[ALLOW_REPOSITORIES_ENV]).map((p) => p.replace(/\/+$/, ""));
  const tagPrefixes = list(env[ALLOW_TAG_PREFIXES_ENV]);
  return repositories.length || tagPrefixes.length ? { repositories, tagPrefixes } : undefined;
}

/** Why `ref` (a validated host/repository:tag) may not be pushed, or undefined when it may. */
export function pushRefusal(policy: PushPolicy | undefined, ref: string): string | undefined {
  if (!policy) return undefined;
  const { host, repository, tag } = parseRef(ref);
  const name = `${host}/${repository}`;
  if (
    policy.repositories.length &&
    !policy.repositories.some((p) => name === p || name.startsWith(`${p}/`))
  ) {
    return `this build server may push only to repositories under ${policy.repositories.join(", ")}, not ${name}`;
  }
  const prefixes = policy.tagPrefixes.length ? policy.tagPrefixes : [DEFAULT_TAG_PREFIX];
  const snapshot = prefixes.some((p) => tag.startsWith(p) && /^[0-9a-f]{32}$/.test(tag.slice(p.length)));
  if (!snapshot) {
    return `this build server pushes only snapshot tags (${prefixes.map((p) => `${p}<id>`).join(", ")}), not "${tag}"`;
  }
  return undefined;
}

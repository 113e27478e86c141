/** API failures (an HTTP status, or no answer at all) as errors that say what to do. */
import { UserError } from "../errors.js";

/** One RBAC right: `verb` on `resource` (with its subresource, e.g. pods/portforward) of API group `group`. */
export interface Right {
  verb: string;
  resource: string;
  /** "" is the core group. */
  group: string;
  /** Undefined: cluster scope. */
  namespace?: string;
}

/** The right an RBAC refusal names, and who was refused. */
export interface Refusal extends Right {
  user?: string;
}

/** Where snapdeploy's Roles are documented and shipped. */
export const ROLES_HINT = "snapdeploy's Roles: server/rbac/ (see the README's RBAC section)";

/**
 * The right the API server's 403 message names: it reads `User "u" cannot VERB resource
 * "R" in API group "G" in the namespace "N"` (or `at the cluster scope`) for every RBAC
 * refusal. Undefined for other 403s (an admission plugin's, a non-resource path's).
 */
export function parseRefusal(message: string): Refusal | undefined {
  const m =
    /User "((?:[^"\\]|\\.)*)" cannot (\S+) resource "([^"]+)" in API group "([^"]*)" (?:in the namespace "([^"]+)"|at the cluster scope)/.exec(
      message,
    );
  if (!m) return undefined;
  const [, user, verb, resource, group, namespace] = m as unknown as string[];
  return {
    user: user || undefined,
    verb: verb as string,
    resource: resource as string,
    group: group as string,
    namespace: namespace || undefined,
  };
}

/** `"get" on "pods/portforward"` / `"patch" on "deployments" (API group "apps")`. */
export function describeRight(r: Right): string {
  return `"${r.verb}" on "${r.resource}"${r.group ? ` (API group "${r.group}")` : ""}`;
}

function where(r: Right): string {
  return r.namespace ? `in namespace ${r.namespace}` : "at the cluster scope";
}

/** The Role rule that grants `r`, as YAML flow. */
export function ruleFor(r: Right): string {
  return `{apiGroups: ["${r.group}"], resources: ["${r.resource}"], verbs: ["${r.verb}"]}`;
}

/**
 * The UserError (exit code 4) for a refused `action` ("patch deployments/web in namespace
 * x"): it names the missing verb, resource and namespace, the rule that grants it, and how to
 * check it. `refusal` is what the API server said (parseRefusal) or, where its answer is
 * not available (a watch), what the request needed.
 */
export function permissionError(action: string, refusal: Refusal | undefined, serverMessage = ""): UserError {
  if (!refusal) {
    return new UserError(
      "permission",
      `you are not allowed to ${action}${serverMessage ? `: ${serverMessage}` : ""}`,
      { hint: `ask a cluster admin for the RBAC rights this needs; ${ROLES_HINT}` },
    );
  }
  const kubectlResource = refusal.group ? `${refusal.resource}.${refusal.group}` : refusal.resource;
  const scope = refusal.namespace ? ` -n ${refusal.namespace}` : "";
  return new UserError(
    "permission",
    `you are not allowed to ${action}: missing RBAC permission ${describeRight(refusal)} ${where(refusal)}`,
    {
      details: [
        ...(refusal.user ? [`as user ${refusal.user}`] : []),
        `check with: kubectl auth can-i ${refusal.verb} ${kubectlResource}${scope}`,
      ],
      hint: `ask a cluster admin to grant it${refusal.namespace ? ` with a Role in namespace ${refusal.namespace}` : " with a ClusterRole"} holding the rule ${ruleFor(refusal)}; ${ROLES_HINT}`,
    },
  );
}

/**
 * The UserError for an API response with HTTP status `code` and body `body` (a Status
 * object, usually). `action` reads like "list pods in namespace x".
 */
export function statusError(code: number, body: unknown, action: string): UserError {
  let message = "";
  try {
    message = (JSON.parse(String(body)) as { message?: string }).message ?? "";
  } catch {
    message = String(body ?? "");
  }
  // A namespace being deleted refuses new objects with 403 too; no right is missing.
  const terminating = /unable to create new content in namespace (\S+) because it is being terminated/.exec(
    message,
  );
  if (code === 403 && terminating)
    return new UserError("cluster", `cannot ${action}: namespace ${terminating[1]} is being deleted`, {
      hint: `wait until it is gone (kubectl get namespace ${terminating[1]}), then run the command again`,
    });
  if (code === 403) return permissionError(action, parseRefusal(message), message);
  if (code === 401) return new UserError("cluster", `the API server rejected your credentials: ${message}`);
  if (code === 404) return new UserError("notFound", `not found while trying to ${action}: ${message}`);
  // Invalid or malformed objects: the input is wrong, not the cluster.
  if (code === 400 || code === 422)
    return new UserError("input", `the API server refused to ${action}: ${message}`);
  return new UserError("cluster", `failed to ${action}: HTTP ${code} ${message}`);
}

/**
 * A watch that the API server refused: client-node's Watch keeps only the HTTP status
 * (`statusCode`), so the right is the one the request needed, `watch` on `right`.
 * Undefined when `e` is no refusal of permission (the caller retries or reports it).
 */
export function watchRefusal(e: unknown, right: Omit<Right, "verb">, action: string): UserError | undefined {
  if ((e as { statusCode?: number } | null)?.statusCode !== 403) return undefined;
  return permissionError(action, { ...right, verb: "watch" });
}

/** The UserError for a request that never got an answer; undefined when `e` is no network failure. */
export function networkError(e: unknown, server?: string): UserError | undefined {
  const err = e as NodeJS.ErrnoException;
  const netCodes = ["ECONNREFUSED", "ENOTFOUND", "EHOSTUNREACH", "ETIMEDOUT", "ECONNRESET"];
  const code = err?.code ?? (err?.cause as NodeJS.ErrnoException | undefined)?.code;
  if (
    (code && netCodes.includes(code)) ||
    /ECONNREFUSED|ENOTFOUND|fetch failed|socket hang up|timed out/.test(err?.message ?? "")
  ) {
    return new UserError(
      "cluster",
      `cannot reach the Kubernetes API server${server ? ` at ${server}` : ""}: ${err.message}`,
      {
        hint: "check that the cluster is up and your kubeconfig points at it",
        cause: e,
      },
    );
  }
  return undefined;
}

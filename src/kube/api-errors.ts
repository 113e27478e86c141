/** API failures (an HTTP status, or no answer at all) as errors that say what to do. */
import { UserError } from "../errors.js";

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
  if (code === 403) {
    return new UserError("permission", `you are not allowed to ${action}: ${message}`, {
      hint: "ask a cluster admin for RBAC rights for this verb and resource",
    });
  }
  if (code === 401) return new UserError("cluster", `the API server rejected your credentials: ${message}`);
  if (code === 404) return new UserError("notFound", `not found while trying to ${action}: ${message}`);
  // Invalid or malformed objects: the input is wrong, not the cluster.
  if (code === 400 || code === 422)
    return new UserError("input", `the API server refused to ${action}: ${message}`);
  return new UserError("cluster", `failed to ${action}: HTTP ${code} ${message}`);
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

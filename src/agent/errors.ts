/**
 * The agent's own error classes: what the client sent wrong, what policy refuses, and the
 * client giving up. How each failure reaches the client is in report-error.ts.
 */

/** Something the client sent that the agent refuses (code "input"). */
export class InvalidInput extends Error {
  override name = "InvalidInput";
}

/** What the build server's policy (policy.ts) refuses (code "denied"). */
export class Denied extends Error {
  override name = "Denied";
}

/** The client gave up on the operation ({ t: "abort" }): nothing to report back. */
export class ClientAbort extends Error {}

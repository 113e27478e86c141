/**
 * How a failed operation reaches the client: every failure goes back as
 * { t: "error", code, message, hint, ...details } before the connection closes.
 */
import { promises as fs } from "node:fs";
import type { AgentErrorCode } from "../protocol/constants.js";
import { PeerClosed, RemoteError } from "../protocol/connection.js";
import { ProtocolError } from "../protocol/frames.js";
import { BlobMismatch } from "./blobs.js";
import { StepFailed } from "./build.js";
import { BuilderUnavailable } from "./buildkit.js";
import type { AgentConnection, AgentContext } from "./context.js";
import { ClientAbort, Denied, InvalidInput } from "./errors.js";
import { RegistryError } from "./registry.js";

export async function reportError(conn: AgentConnection, ctx: AgentContext, e: unknown) {
  const err = e as NodeJS.ErrnoException;
  let code: AgentErrorCode = "internal";
  let message = err?.message ?? String(e);
  let hint: string | undefined;
  let extra: Record<string, unknown> = {};
  if (e instanceof InvalidInput) code = "input";
  else if (e instanceof BlobMismatch) {
    code = "input";
    if (e.blob) extra = { blob: e.blob };
  } else if (e instanceof Denied) {
    code = "denied";
    hint =
      "the build server's admin sets what it may push with: snapdeploy server install --allow-repository PREFIX [--allow-tag-prefix PREFIX]";
  } else if (e instanceof StepFailed) {
    code = e.phase;
    extra = { step: e.step, tail: e.tail, kind: e.kind };
  } else if (e instanceof BuilderUnavailable) {
    code = "builder";
    const pod = process.env.HOSTNAME ?? "<build-server pod>";
    hint = `nothing was pushed; the builder's container restarts by itself: run the command again (if this repeats: kubectl logs ${pod} -c buildkitd --previous, in the build server's namespace)`;
  } else if (e instanceof RegistryError) {
    code = "registry";
    extra = { kind: e.kind };
  } else if (e instanceof PeerClosed) {
    // Nobody is left to tell: one line, no stack.
    ctx.log(`client went away: ${message}`);
    return;
  } else if (e instanceof ProtocolError) code = "protocol";
  else if (e instanceof RemoteError) {
    // The client sent { t: "error" } where the agent expected a message of its own.
    code = "protocol";
    message = `the client sent an error message where the build server expected an operation: ${message}`;
  } else if (e instanceof ClientAbort) {
    ctx.log(`client aborted: ${message}`);
    return;
  } else if (err?.code === "ENOSPC") {
    code = "noSpace";
    const disk = await fs.statfs(ctx.dataDir).catch(() => undefined);
    const gib = (n: number) => `${(n / 2 ** 30).toFixed(2)} GiB`;
    message = `the build server's volume ${ctx.volumeName} (mounted at ${ctx.dataDir}) is full${
      disk ? `: ${gib(disk.bavail * disk.bsize)} free of ${gib(disk.blocks * disk.bsize)}` : ""
    }`;
    hint =
      "grow it (snapdeploy server install --size <bigger>, where the storage class allows expansion) or free space with snapdeploy gc (idle workspaces, unreferenced blobs, the builder's cache; --dry-run shows what goes)";
  }
  if (code === "internal" || code === "protocol") ctx.log(`error: ${err?.stack ?? message}`);
  await conn.send({ t: "error", code, message, hint, ...extra }).catch(() => {});
}

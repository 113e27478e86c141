/** The build operation: builds the workspace's current tree with BuildKit (its own daemon, or Docker's) and pushes the image. */
import { randomBytes } from "node:crypto";
import { promises as fs } from "node:fs";
import os from "node:os";
import path from "node:path";
import type { Message } from "../../protocol/messages.js";
import { type BuildParams, buildImage, pushImage } from "../build.js";
import { buildAndPush } from "../buildkit.js";
import type { AgentConnection, AgentContext } from "../context.js";
import { Denied, InvalidInput } from "../errors.js";
import { pushRefusal } from "../policy.js";
import { imageLabels, validateName, validateRef, validateSecrets } from "../validate.js";
import { Workspace } from "../workspace.js";

/** Builds the workspace's current tree and pushes it; streams the output as { t: "log" }. */
export async function build(conn: AgentConnection, ctx: AgentContext, op: Message) {
  const user = validateName("user", op.user);
  const project = validateName("project", op.project);
  const ws = new Workspace(ctx.workspacesDir, user, project);
  const ref = validateRef(op.ref);
  const refused = pushRefusal(ctx.policy, ref);
  if (refused) throw new Denied(refused);
  const secretList = validateSecrets(op.secrets);
  // In Kubernetes the host name is the pod's name.
  const labels = imageLabels(op.labels, { user, ref, buildServer: `pod/${os.hostname()}`, now: new Date() });
  const dockerfile = String(op.dockerfile ?? "Dockerfile");
  const abort = new AbortController();
  const onGone = () => abort.abort();
  conn.stream.once("close", onGone);
  const release = await ctx.locks.acquire(`${user}/${project}`, `build by ${user}`, (holder, since) => {
    void conn.send({ t: "waiting", holder, since }).catch(() => {});
  });
  let secrets: string | undefined;
  let leaveQueue: (() => void) | undefined;
  try {
    const current = await ws.currentManifest();
    const tree = await ws.currentTree();
    if (!current || !tree || current.digest !== op.manifest) {
      throw new InvalidInput(
        "the workspace changed since this snapshot was synced (another sync ran); run the command again",
      );
    }
    const inTree = path.posix.normalize(dockerfile);
    if (
      inTree.startsWith("../") ||
      inTree.startsWith("/") ||
      !current.entries.some((e) => e.path === inTree && e.type === "file")
    ) {
      throw new InvalidInput(
        `Dockerfile ${dockerfile} is not a file in the synced tree (is it excluded by .dockerignore?)`,
      );
    }
    leaveQueue = await ctx.builds.acquire((position) => {
      void conn.send({ t: "queued", position }).catch(() => {});
    });
    if (abort.signal.aborted) return;
    secrets = path.join(ctx.secretsDir, randomBytes(8).toString("hex"));
    await fs.mkdir(secrets, { recursive: true, mode: 0o700 });
    const secretFiles: Record<string, string> = {};
    for (const s of secretList) {
      const file = path.join(secrets, s.id);
      await fs.writeFile(file, Buffer.from(String(s.data), "base64"), { mode: 0o600 });
      secretFiles[s.id] = file;
    }
    const send = (line: string) => void conn.send({ t: "log", line }).catch(() => {});
    const t0 = Date.now();
    await conn.send({ t: "phase", phase: "build" });
    const params: BuildParams = {
      contextDir: ws.buildContext,
      dockerfile: path.join(ws.buildContext, inTree),
      ref,
      buildArgs: (op.buildArgs ?? {}) as Record<string, string>,
      labels,
      target: op.target ? String(op.target) : undefined,
      platform: op.platform ? String(op.platform) : undefined,
      secrets: secretFiles,
    };
    let digest: string;
    let t1: number;
    if (ctx.buildkit) {
      // One step: BuildKit pushes as it exports, so the push time is part of the build's.
      digest = await buildAndPush(params, { ...ctx.buildkit, scratchDir: secrets }, send, abort.signal);
      t1 = Date.now();
    } else {
      await buildImage(params, send, abort.signal);
      t1 = Date.now();
      await conn.send({ t: "phase", phase: "push" });
      digest = await pushImage(ref, send, abort.signal);
    }
    const t2 = Date.now();
    await ws.recordBuild({
      ref,
      digest,
      manifest: current.digest,
      settings: (op.settings ?? {}) as Record<string, unknown>,
      time: new Date().toISOString(),
    });
    ctx.log(`build ${user}/${project}: ${ref}@${digest} (build ${t1 - t0} ms, push ${t2 - t1} ms)`);
    await conn.send({ t: "built", ref, digest, buildMs: t1 - t0, pushMs: t2 - t1 });
  } finally {
    conn.stream.off("close", onGone);
    if (secrets) await fs.rm(secrets, { recursive: true, force: true });
    leaveQueue?.();
    release();
  }
}

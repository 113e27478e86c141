/**
 * Builds and pushes an image in one step with the pod's own BuildKit daemon, through
 * `buildctl` on the daemon's unix socket. The context is sent from the workspace's
 * tree (BuildKit transfers only what changed since the last build it got); the
 * digest comes from buildctl's metadata file; the plain progress output is streamed
 * line by line. Registry credentials reach buildctl as a docker config.json in a
 * per-build folder on the memory-backed volume, removed after the build.
 */
import { randomBytes } from "node:crypto";
import { promises as fs } from "node:fs";
import net from "node:net";
import path from "node:path";
import { type BuildParams, explainBuildFailure, pushFailureKind, runStreaming, StepFailed } from "./build.js";

export interface BuildkitOptions {
  /** The buildctl binary (copied from the BuildKit image into the pod). */
  buildctl: string;
  /** The daemon's address, e.g. unix:///run/buildkit/buildkitd.sock. */
  addr: string;
  /** A docker config.json with registry credentials, if any. */
  dockerConfigFile?: string;
  /** Where per-build folders go (memory-backed). */
  scratchDir: string;
  /** "registry": also export the cache to and import it from <repository>:buildcache (mode max). */
  cache?: "registry";
  /** How new layers are compressed: BuildKit's gzip, or zstd (faster to write and to unpack, smaller). */
  compression?: Compression;
}

export type Compression = "gzip" | "zstd";

/** The repository of a reference: without its tag or digest. */
export function repositoryOf(ref: string): string {
  const noDigest = ref.split("@")[0] as string;
  const slash = noDigest.lastIndexOf("/");
  const colon = noDigest.lastIndexOf(":");
  return colon > slash ? noDigest.slice(0, colon) : noDigest;
}

/** The builder daemon is not answering: stopped during a build, or not back yet. */
export class BuilderUnavailable extends Error {
  override name = "BuilderUnavailable";
}

/** How long a build waits for a builder daemon that is restarting (its container restarts at once). */
export const BUILDER_WAIT_MS = 60_000;

/** buildctl's failure when the daemon went away (killed, restarted) rather than the build failing. */
export function daemonLost(lines: string[]): string | undefined {
  const text = lines.join("\n");
  if (!/code = Unavailable|: Unavailable: /.test(text)) return undefined;
  if (!/error reading from server|connection refused|transport is closing|connection reset|EOF/.test(text))
    return undefined;
  return [...lines]
    .reverse()
    .find((l) => /Unavailable/.test(l))
    ?.replace(/^(error|ERROR):? /, "");
}

/**
 * Waits until the daemon's unix socket takes connections, at most `ms`; says once that it
 * waits. A TCP or other address is not checked: buildctl reports it.
 */
export async function waitForDaemon(addr: string, onLine: (l: string) => void, ms = BUILDER_WAIT_MS) {
  const socket = /^unix:\/\/(.+)$/.exec(addr)?.[1];
  if (!socket) return;
  const deadline = Date.now() + ms;
  let said = false;
  for (;;) {
    const err = await probeSocket(socket);
    if (!err) return;
    if (Date.now() >= deadline)
      throw new BuilderUnavailable(
        `the builder (buildkitd) has not answered on ${socket} for ${Math.round(ms / 1000)} s: ${err.code ?? err.message}`,
      );
    if (!said)
      onLine(`waiting for the builder (buildkitd) to answer on ${socket} (${err.code ?? err.message})`);
    said = true;
    await new Promise((r) => setTimeout(r, 500));
  }
}

/** Whether a unix socket takes a connection: undefined when it does, else the error. */
function probeSocket(socket: string): Promise<NodeJS.ErrnoException | undefined> {
  return new Promise((resolve) => {
    const c = net.connect(socket);
    c.once("connect", () => {
      c.destroy();
      resolve(undefined);
    });
    c.once("error", (e) => resolve(e));
  });
}

/**
 * The identity of the daemon's unix socket (inode and change time), which a restarted
 * daemon makes anew; undefined for another address or no socket.
 */
export async function socketIdentity(addr: string): Promise<string | undefined> {
  const socket = /^unix:\/\/(.+)$/.exec(addr)?.[1];
  if (!socket) return undefined;
  const st = await fs.stat(socket).catch(() => undefined);
  return st ? `${st.ino}:${st.ctimeMs}` : undefined;
}

/**
 * After buildctl failed: why the daemon is gone, when it is; from buildctl's output, or, when
 * that ended before saying so (buildctl killed with it, or its last line lost), from the
 * daemon's unix socket no longer taking connections, or being another one than `before`
 * (socketIdentity when the build started: the daemon was started again meanwhile).
 */
export async function daemonGone(
  addr: string,
  lines: string[],
  before?: string,
): Promise<string | undefined> {
  const said = daemonLost(lines);
  if (said) return said;
  const socket = /^unix:\/\/(.+)$/.exec(addr)?.[1];
  if (!socket) return undefined;
  if (before !== undefined && (await socketIdentity(addr)) !== before)
    return `it was started again meanwhile (its socket ${socket} is a new one)`;
  const err = await probeSocket(socket);
  return err ? `its socket ${socket} no longer takes connections (${err.code ?? err.message})` : undefined;
}

/** buildctl's arguments for one build-and-push (exported for tests). */
export function buildctlArgs(
  p: BuildParams,
  context: string,
  addr: string,
  metadataFile: string,
  o: { cache?: "registry"; compression?: Compression } = {},
): string[] {
  const args = ["--addr", addr, "build", "--progress=plain", "--frontend", "dockerfile.v0"];
  args.push("--local", `context=${context}`);
  args.push("--local", `dockerfile=${path.dirname(p.dockerfile)}`);
  args.push("--opt", `filename=${path.basename(p.dockerfile)}`);
  for (const [k, v] of Object.entries(p.buildArgs)) args.push("--opt", `build-arg:${k}=${v}`);
  for (const [k, v] of Object.entries(p.labels)) args.push("--opt", `label:${k}=${v}`);
  for (const [id, file] of Object.entries(p.secrets)) args.push("--secret", `id=${id},src=${file}`);
  if (p.target) args.push("--opt", `target=${p.target}`);
  if (p.platform) args.push("--opt", `platform=${p.platform}`);
  // zstd layers need OCI media types (the base image's gzip layers are kept as they are).
  const compression = o.compression === "zstd" ? ",compression=zstd,oci-mediatypes=true" : "";
  args.push("--output", `type=image,name=${p.ref},push=true${compression}`, "--metadata-file", metadataFile);
  if (o.cache === "registry") {
    const ref = `${repositoryOf(p.ref)}:buildcache`;
    args.push(
      "--export-cache",
      `type=registry,ref=${ref},mode=max`,
      "--import-cache",
      `type=registry,ref=${ref}`,
    );
  }
  return args;
}

/**
 * Which step failed, from the plain progress output: export/push steps carry no
 * "[stage n/m]" name, so a failure there (or one that says it failed to push) is a push.
 */
export function failedInPush(lines: string[]): boolean {
  let failed: string | undefined;
  for (const l of lines) {
    const m = /^#(\d+) ERROR: (.*)$/.exec(l);
    if (m) failed = m[1];
  }
  const first = failed ? lines.find((l) => l.startsWith(`#${failed} `)) : undefined;
  const text = lines.join("\n");
  return (
    (first !== undefined && /^#\d+ (exporting|pushing|writing image)/.test(first)) ||
    /failed to push|failed commit on ref "(manifest|layer|index|config)/.test(text)
  );
}

/** Builds and pushes p.ref; returns the pushed manifest's digest (sha256:...). */
export async function buildAndPush(
  p: BuildParams,
  o: BuildkitOptions,
  onLine: (l: string) => void,
  signal: AbortSignal,
): Promise<string> {
  const dir = path.join(o.scratchDir, `build-${randomBytes(8).toString("hex")}`);
  await fs.mkdir(dir, { recursive: true, mode: 0o700 });
  try {
    const config = o.dockerConfigFile
      ? await fs.readFile(o.dockerConfigFile).catch(() => Buffer.from("{}"))
      : Buffer.from("{}");
    await fs.writeFile(path.join(dir, "config.json"), config, { mode: 0o600 });
    const metadataFile = path.join(dir, "metadata.json");
    // The tree "current" names: the transfer is diffed against what the daemon got last,
    // whichever tree that was, so resolving the link costs nothing.
    const context = await fs.realpath(p.contextDir);
    const dockerfile = path.join(context, path.relative(p.contextDir, p.dockerfile));
    const args = buildctlArgs({ ...p, dockerfile }, context, o.addr, metadataFile, {
      cache: o.cache,
      compression: o.compression,
    });
    const env = { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: dir, DOCKER_CONFIG: dir };
    await waitForDaemon(o.addr, onLine);
    const daemon = await socketIdentity(o.addr);
    const { code, lines } = await runStreaming(o.buildctl, args, env, onLine, signal);
    if (signal.aborted) throw new StepFailed("build", "the build was cancelled", undefined, []);
    if (code !== 0) {
      const lost = await daemonGone(o.addr, lines, daemon);
      if (lost) throw new BuilderUnavailable(`the builder (buildkitd) stopped during the build: ${lost}`);
      if (failedInPush(lines)) {
        const last = lines.filter((l) => l.trim()).slice(-5);
        throw new StepFailed(
          "push",
          `pushing ${p.ref} failed`,
          undefined,
          last,
          pushFailureKind(lines.join("\n")),
        );
      }
      const { step, tail, summary } = explainBuildFailure(lines);
      throw new StepFailed("build", summary, step, tail);
    }
    const meta = JSON.parse(await fs.readFile(metadataFile, "utf8")) as Record<string, unknown>;
    const digest = meta["containerimage.digest"];
    if (typeof digest !== "string" || !/^sha256:[0-9a-f]{64}$/.test(digest)) {
      throw new StepFailed(
        "push",
        `pushed ${p.ref} but BuildKit reported no digest`,
        undefined,
        lines.slice(-5),
      );
    }
    return digest;
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
}

/**
 * Live update of one running container over the Kubernetes API: the changed files as a
 * tar stream into `tar -x` by exec (deleted paths removed first, in the same session),
 * then the rule's commands. Nothing but `sh` and `tar` is needed in the container; one
 * without them is reported as `LiveUpdateUnsupported` so the caller can rebuild instead.
 */
import { lstat, readFile } from "node:fs/promises";
import path from "node:path";
import { UserError } from "../errors.js";
import type { ClusterAccess } from "../kube/access.js";
import { parseRefusal, permissionError } from "../kube/api-errors.js";
import { type ChannelStream, Refused } from "../transport/channels.js";
import { openExec } from "../transport/exec.js";

/** One file of a live update: its tree path and its absolute path in the container. */
export interface FileCopy {
  rel: string;
  dest: string;
}

export interface ContainerRef {
  namespace: string;
  pod: string;
  container: string;
}

/** The container cannot take a live update (no shell or tar): rebuild instead. */
export class LiveUpdateUnsupported extends Error {}

export interface CommandResult {
  cmd: string;
  exitCode: number | null;
  output: string;
}

/** Puts `put` (read from `root`) and removes `remove` in the container. */
export async function putFiles(
  cluster: ClusterAccess,
  ref: ContainerRef,
  root: string,
  put: readonly FileCopy[],
  remove: readonly FileCopy[],
): Promise<{ bytes: number }> {
  for (const f of [...put, ...remove]) checkDest(f.dest);
  const archive = await tarOf(root, put);
  // "$@" are the paths to delete; tar stops at the archive's end-of-archive blocks, so the
  // session needs no half-close of stdin.
  const script = remove.length ? 'rm -rf -- "$@" && exec tar -x -o -f - -C /' : "exec tar -x -o -f - -C /";
  const r = await execIn(cluster, ref, ["sh", "-c", script, "sh", ...remove.map((f) => f.dest)], archive);
  if (r.exitCode !== 0) {
    throw new UserError("rollout", `live update of ${describe(ref)} failed (exit ${r.exitCode ?? "none"})`, {
      details: tail(r.output),
      hint: "the container's filesystem may be read-only where the rule's dest points; fix dev.sync or rebuild with r",
    });
  }
  return { bytes: archive.length };
}

/** Runs `cmd` with `sh -c` in the container and returns its exit code and output (stdout and stderr). */
export async function runIn(cluster: ClusterAccess, ref: ContainerRef, cmd: string): Promise<CommandResult> {
  const r = await execIn(cluster, ref, ["sh", "-c", cmd]);
  return { cmd, exitCode: r.exitCode, output: r.output };
}

async function execIn(
  cluster: ClusterAccess,
  ref: ContainerRef,
  command: string[],
  input?: Buffer,
): Promise<{ exitCode: number | null; output: string }> {
  let stream: ChannelStream;
  try {
    stream = await openExec(cluster, {
      namespace: ref.namespace,
      pod: ref.pod,
      container: ref.container,
      command,
    });
  } catch (e) {
    if (e instanceof Refused && e.code === 403)
      throw permissionError(
        `exec into pod ${ref.pod} in namespace ${ref.namespace} (live update)`,
        parseRefusal(e.message),
        e.message,
      );
    throw e;
  }
  let output = "";
  stream.on("data", (d: Buffer) => {
    output = (output + d.toString("utf8")).slice(-16_384);
  });
  if (input) stream.write(input);
  const status = await stream.status;
  stream.destroy();
  output += stream.errorText;
  const message = status.message ?? "";
  if (status.exitCode === null && /executable file not found|no such file or directory/i.test(message)) {
    throw new LiveUpdateUnsupported(
      `${describe(ref)} has no ${command[0] === "sh" ? "sh or tar" : command[0]}`,
    );
  }
  if (status.exitCode === 127 && /tar: (not found|command not found)|tar: No such file/.test(output)) {
    throw new LiveUpdateUnsupported(`${describe(ref)} has no tar`);
  }
  if (status.exitCode === null) {
    throw new UserError("cluster", `exec into ${describe(ref)} ended without an exit status: ${message}`);
  }
  return { exitCode: status.exitCode, output };
}

const TAR_RECORD = 10240;

/** A ustar archive of the regular files `put`, named by their container paths. */
async function tarOf(root: string, put: readonly FileCopy[]): Promise<Buffer> {
  const pack = (await cjs(import("tar-stream"))).pack();
  const chunks: Buffer[] = [];
  pack.on("data", (c) => chunks.push(c as Buffer));
  const ended = new Promise<void>((resolve, reject) => {
    pack.on("end", resolve);
    pack.on("error", reject);
  });
  for (const f of put) {
    const file = path.join(root, ...f.rel.split("/"));
    const st = await lstat(file);
    if (!st.isFile())
      throw new UserError("input", `${f.rel} is not a regular file; live update puts regular files only`);
    const content = await readFile(file);
    await new Promise<void>((resolve, reject) =>
      pack.entry(
        { name: f.dest.replace(/^\/+/, ""), size: content.length, mode: st.mode & 0o7777, mtime: st.mtime },
        content,
        (err) => (err ? reject(err) : resolve()),
      ),
    );
  }
  pack.finalize();
  await ended;
  // GNU tar reads stdin in whole 10 KiB records (--read-full-records is its default for
  // stdin): pad the archive to one, or it waits for bytes that never come. Zeros after the
  // end-of-archive blocks are ignored by every tar.
  const size = chunks.reduce((n, c) => n + c.length, 0);
  chunks.push(Buffer.alloc((TAR_RECORD - (size % TAR_RECORD)) % TAR_RECORD));
  return Buffer.concat(chunks);
}

/** A container path the archive may name: absolute, normalized, not the root. */
function checkDest(dest: string): void {
  if (
    !path.posix.isAbsolute(dest) ||
    path.posix.normalize(dest) !== dest ||
    dest === "/" ||
    dest.includes("\0")
  )
    throw new UserError(
      "input",
      `live update destination ${JSON.stringify(dest)} is not a normalized absolute path`,
    );
}

function describe(ref: ContainerRef): string {
  return `${ref.pod}/${ref.container}`;
}

function tail(text: string): string[] {
  return text.trimEnd().split("\n").slice(-10);
}

/** A CommonJS module's exports through import(): bundled, they sit under `default`. */
async function cjs<T extends object>(m: Promise<T>): Promise<T> {
  const mod = (await m) as T & { default?: T };
  return mod.default ?? mod;
}

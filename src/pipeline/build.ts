/**
 * scan → snapshot id → registry check → (miss) sync → remote build → push.
 * One session with the build server carries all of it. The result names the image
 * by tag and digest; on a hit, nothing is synced or built.
 */
import type { V1Secret } from "@kubernetes/client-node";
import { UserError } from "../errors.js";
import type { Snapshot } from "../context/scan.js";
import { type ClusterAccess, getJson } from "../kube/access.js";
import { withAgent } from "../server/connect.js";
import { warnLikelySecrets } from "./context-secrets.js";
import { type BuildSettings, snapshotId, snapshotTag } from "../snapshot/id.js";
import type { SyncResult } from "../sync/client.js";
import { RemoteError } from "../protocol/connection.js";
import { IMAGE_LABEL } from "../protocol/constants.js";
import type { Phase, Reporter } from "../ui/reporter.js";
import { ago } from "../ui/format.js";
import { BuildProgress } from "./build-progress.js";
import { inPhase, syncPhase } from "./phases.js";
import { scanPhase } from "./scan.js";

export interface BuildRequest {
  dir: string;
  user: string;
  project: string;
  serverNamespace: string;
  repository: string;
  tagPrefix: string;
  settings: BuildSettings;
  /** BuildKit secrets taken from Kubernetes Secrets (read with the user's credentials). */
  secrets: { id: string; secret: string; key?: string }[];
  secretsNamespace: string;
  /** Globs of files that look like secrets but may be sent without a warning (context.allowSecrets). */
  allowSecrets?: string[];
  /** A scan already started (or done) for `dir`; else the build starts one. */
  scan?: Promise<Snapshot>;
  /** Cancels the build (as Ctrl-C does): the build server stops it. */
  signal?: AbortSignal;
}

export interface BuildResult {
  ref: string;
  digest: string;
  snapshot: string;
  skipped: boolean;
  builtBy?: string;
  builtAt?: string;
  sync?: SyncResult;
  timings: Record<string, number>;
}

export async function buildSnapshot(
  cluster: ClusterAccess,
  req: BuildRequest,
  reporter: Reporter,
): Promise<BuildResult> {
  const timings: Record<string, number> = {};
  let t = performance.now();
  const lap = (name: string) => {
    const now = performance.now();
    timings[name] = (now - t) / 1000;
    t = now;
  };
  // The session with the build server is opened while the tree is scanned: the scan is
  // mostly local CPU work, opening the session mostly waiting for the network.
  let prepared!: Promise<[Snapshot, { id: string; data: string }[]]>;
  const building = withAgent(
    cluster,
    req.serverNamespace,
    async (s) => {
      const [scan, secrets] = await prepared;
      const manifest = scan.digest;
      const id = snapshotId(manifest, req.settings);
      const ref = `${req.repository}:${snapshotTag(id, req.tagPrefix)}`;
      lap("scan");
      const settings = { ...req.settings } as Record<string, unknown>;
      await s.conn.send({ t: "check", ref, user: req.user, project: req.project, manifest, settings });
      // The look for likely secrets (a warning, never a gate; CPU work over every path) runs
      // while the build server checks the registry.
      await warnLikelySecrets(scan, req.allowSecrets ?? [], reporter);
      const check = await inPhase(
        reporter.phase("check"),
        s.conn.expect("check").catch((e) => {
          throw registryError(e, ref);
        }),
        (c) => ({ exists: Boolean(c.exists) }),
      );
      lap("check");
      if (check.exists) {
        const labels = (check.labels ?? {}) as Record<string, string>;
        const by = labels[IMAGE_LABEL.user];
        const at = labels[IMAGE_LABEL.created];
        reporter.info(`already built${at ? ` ${ago(at)}` : ""}${by ? ` by ${by}` : ""}: ${ref}`);
        return {
          ref,
          digest: String(check.digest),
          snapshot: id,
          skipped: true,
          builtBy: by,
          builtAt: at,
          timings,
        };
      }
      const sync = await syncPhase(
        s.conn,
        scan,
        { ...req, inline: s.inlineSync, sameHost: s.sameHost, volume: s.volume },
        reporter,
      );
      lap("sync");
      const why =
        check.reason ??
        (sync.noop
          ? "no earlier build of these files"
          : `${sync.added} added, ${sync.changed} changed, ${sync.removed} removed since this workspace's last snapshot${
              sync.sample.length ? ` (${sync.sample.slice(0, 5).join(", ")})` : ""
            }`);
      reporter.info(`not built yet: ${why}`);

      await s.conn.send({
        t: "build",
        user: req.user,
        project: req.project,
        manifest,
        ref,
        dockerfile: req.settings.dockerfile,
        buildArgs: req.settings.buildArgs,
        target: req.settings.target,
        platform: req.settings.platform,
        settings,
        labels: {
          [IMAGE_LABEL.user]: req.user,
          [IMAGE_LABEL.created]: new Date().toISOString(),
          [IMAGE_LABEL.snapshot]: id,
        },
        secrets,
      });
      const phases = new BuildPhases(reporter, ref);
      try {
        for (;;) {
          const m = await s.conn.expect().catch((e) => {
            throw buildError(e, ref);
          });
          if (m.t === "log") phases.line(String(m.line));
          else if (m.t === "queued") reporter.info(`queued: ${m.position} build(s) ahead of yours`);
          else if (m.t === "waiting")
            reporter.info(`waiting: workspace ${req.user}/${req.project} is locked by ${m.holder}`);
          else if (m.t === "phase") phases.server(m.phase === "push" ? "push" : "build");
          else if (m.t === "built") {
            timings.build = Number(m.buildMs) / 1000;
            timings.push = Number(m.pushMs) / 1000;
            phases.built();
            return { ref, digest: String(m.digest), snapshot: id, skipped: false, sync, timings };
          }
        }
      } catch (e) {
        phases.failed();
        throw e;
      }
    },
    req.signal,
  );
  prepared = Promise.all([req.scan ?? scanPhase(req.dir, reporter), readSecrets(cluster, req)]);
  prepared.catch(() => {}); // a failure is reported through the session
  return await building;
}

/**
 * The build and push phases, from what the build server sends: its "phase" messages
 * (the Docker builders push after building) and its output, read by BuildProgress
 * (BuildKit pushes as it exports: the push starts at its "pushing layers").
 */
class BuildPhases {
  private readonly progress = new BuildProgress();
  private build: Phase | undefined;
  private push: Phase | undefined;

  constructor(
    private readonly reporter: Reporter,
    private readonly ref: string,
  ) {}

  server(phase: "build" | "push") {
    if (phase === "build" && !this.build) this.build = this.reporter.phase("build", `building ${this.ref}`);
    if (phase === "push") this.startPush(`pushing ${this.ref}`);
  }

  line(l: string) {
    this.reporter.remote(l);
    const p = this.progress;
    if (!p.line(l)) return;
    if (p.pushing && !this.push) this.startPush();
    if (this.push) this.push.update({ layers: this.layers() });
    else this.build?.update({ step: p.step, output: p.output, steps: p.steps, cached: p.cached });
  }

  built() {
    this.endBuild();
    this.startPush();
    this.push?.end({ layers: this.layers() });
  }

  /**
   * The layers the output named. `docker push` names every one; BuildKit only those whose
   * upload was still running when it printed (none, for a fast registry): unknown then.
   */
  private layers(): number | undefined {
    return this.progress.layers || undefined;
  }

  failed() {
    this.build?.fail();
    this.push?.fail();
  }

  private startPush(line?: string) {
    if (this.push) return;
    this.endBuild();
    this.push = this.reporter.phase("push", line);
  }

  private endBuild() {
    const p = this.progress;
    this.build?.end({ steps: p.steps, cached: p.cached });
  }
}

async function readSecrets(cluster: ClusterAccess, req: BuildRequest) {
  const out: { id: string; data: string }[] = [];
  for (const s of req.secrets) {
    const ns = encodeURIComponent(req.secretsNamespace);
    const secret = await getJson<V1Secret>(
      cluster,
      `/api/v1/namespaces/${ns}/secrets/${encodeURIComponent(s.secret)}`,
      `read Secret ${req.secretsNamespace}/${s.secret} for build secret "${s.id}"`,
    );
    const keys = Object.keys(secret.data ?? {});
    const key = s.key ?? (keys.length === 1 ? keys[0] : s.id);
    const data = key ? secret.data?.[key] : undefined;
    if (!data) {
      throw new UserError(
        "notFound",
        `Secret ${req.secretsNamespace}/${s.secret} has no key "${key}" for build secret "${s.id}"`,
        {
          hint: `its keys: ${keys.join(", ") || "(none)"}; name one with key=`,
        },
      );
    }
    out.push({ id: s.id, data });
  }
  return out;
}

const PUSH_HINTS: Record<string, string> = {
  auth: "give the build server credentials: kubectl -n <server namespace> create secret docker-registry NAME --docker-server=HOST --docker-username=U --docker-password=P, then snapdeploy server install --registry-secret NAME",
  notFound: "check the image repository name, or create the repository in the registry",
  unreachable:
    "check the registry host and port; a plain-HTTP registry must be listed with snapdeploy server install --insecure-registry HOST:PORT",
  noSpace: "the registry is out of space: free some or grow its storage",
};

function registryError(e: unknown, ref: string): unknown {
  if (!(e instanceof RemoteError) || e.code !== "registry") return e;
  const kind = String(e.detail.kind ?? "");
  return new UserError("push", `cannot check ${ref} in the registry: ${e.message}`, {
    hint: PUSH_HINTS[kind],
  });
}

function buildError(e: unknown, ref: string): unknown {
  if (!(e instanceof RemoteError)) return e;
  const tail = Array.isArray(e.detail.tail) ? (e.detail.tail as string[]) : [];
  if (e.code === "build") {
    return new UserError("build", `the build failed: ${e.message}`, {
      details: tail.map((l) => `| ${l}`),
      hint: "nothing was pushed or deployed; fix the error and run again",
    });
  }
  if (e.code === "push") {
    const kind = String(e.detail.kind ?? "");
    const what = {
      auth: "authentication was denied",
      notFound: "the repository was not found",
      unreachable: "the registry is unreachable",
      noSpace: "the registry has no space left",
    }[kind];
    return new UserError("push", `pushing ${ref} failed${what ? `: ${what}` : ""}`, {
      details: tail.map((l) => `| ${l}`),
      hint: PUSH_HINTS[kind],
    });
  }
  return registryError(e, ref);
}

/**
 * Deploy history, per target, kept in the cluster (a ConfigMap next to the target)
 * so the whole team sees the same record: revision, snapshot, image, user, git
 * commit (+dirty), time and outcome. A deploy writes "in progress" before it
 * touches the target and its outcome after, so even an interrupted deploy leaves a
 * record that explains the cluster's state.
 */
import { CoreV1Api, type KubeConfig, type V1ConfigMap } from "@kubernetes/client-node";
import { apiError } from "../kube/client.js";
import { labelValue } from "../kube/names.js";
import { type TargetKind, targetLabel } from "./targets.js";

export type Outcome = "in progress" | "succeeded" | "failed" | "rolled back" | "interrupted";

export interface HistoryEntry {
  revision: number;
  action: "deploy" | "rollback";
  snapshot?: string;
  /** The image the target's containers were pointed at (repo@sha256:...); the first of `images`. */
  image: string;
  /**
   * Each container this change pointed at an image, and that image: what `rollback --to`
   * restores. Absent in entries written before it was recorded (see recordedImages).
   */
  images?: Record<string, string>;
  /** Each updated container's image before this change: what a rollback restores. */
  previous: Record<string, string>;
  user: string;
  commit?: string;
  dirty?: boolean;
  time: string;
  outcome: Outcome;
  reason?: string;
}

const KEEP = 50;

export function historyName(kind: TargetKind, name: string): string {
  return `snapdeploy-history-${kind.toLowerCase()}-${name}`.slice(0, 253);
}

export class History {
  private readonly core: CoreV1Api;
  readonly name: string;

  constructor(
    kc: KubeConfig,
    readonly namespace: string,
    readonly target: { kind: TargetKind; name: string },
  ) {
    this.core = kc.makeApiClient(CoreV1Api);
    this.name = historyName(target.kind, target.name);
  }

  async list(): Promise<HistoryEntry[]> {
    const cm = await this.read();
    return cm ? parse(cm) : [];
  }

  private async read(): Promise<V1ConfigMap | undefined> {
    try {
      return await this.core.readNamespacedConfigMap({ name: this.name, namespace: this.namespace });
    } catch (e) {
      if ((e as { code?: number }).code === 404) return undefined;
      throw apiError(
        e,
        `read the deploy history of ${targetLabel(this.target)} (ConfigMap ${this.namespace}/${this.name})`,
      );
    }
  }

  /** Read-modify-write with optimistic concurrency; retried when someone else wrote first. */
  private async update(change: (entries: HistoryEntry[]) => HistoryEntry[]): Promise<HistoryEntry[]> {
    for (let attempt = 0; ; attempt++) {
      const cm = await this.read();
      const entries = change(cm ? parse(cm) : []).slice(-KEEP);
      const body: V1ConfigMap = {
        metadata: {
          name: this.name,
          namespace: this.namespace,
          labels: {
            "app.kubernetes.io/managed-by": "snapdeploy",
            // A label value has at most 63 characters: a long name is shortened (kube/names.ts).
            "snapdeploy.dev/target": labelValue(`${this.target.kind}.${this.target.name}`),
          },
          resourceVersion: cm?.metadata?.resourceVersion,
        },
        data: { entries: JSON.stringify(entries, null, 1) },
      };
      try {
        if (cm)
          await this.core.replaceNamespacedConfigMap({ name: this.name, namespace: this.namespace, body });
        else await this.core.createNamespacedConfigMap({ namespace: this.namespace, body });
        return entries;
      } catch (e) {
        const code = (e as { code?: number }).code;
        if ((code === 409 || code === 422) && attempt < 5) continue;
        throw apiError(
          e,
          `write the deploy history of ${targetLabel(this.target)} (ConfigMap ${this.namespace}/${this.name})`,
        );
      }
    }
  }

  /** Appends a new entry and returns it with its revision number. */
  async begin(entry: Omit<HistoryEntry, "revision" | "outcome">): Promise<HistoryEntry> {
    let added: HistoryEntry | undefined;
    await this.update((entries) => {
      added = { ...entry, revision: (entries.at(-1)?.revision ?? 0) + 1, outcome: "in progress" };
      return [...entries, added];
    });
    return added as HistoryEntry;
  }

  async finish(revision: number, outcome: Outcome, reason?: string): Promise<void> {
    await this.update((entries) =>
      entries.map((e) => (e.revision === revision ? { ...e, outcome, reason } : e)),
    );
  }
}

/**
 * The containers `e` changed and their images. For entries that predate `images`: its image
 * in every container it recorded a previous image of, else in `fallback` (a workload the
 * entry created, whose containers it did not record).
 */
export function recordedImages(e: HistoryEntry, fallback: string[]): Record<string, string> {
  if (e.images && Object.keys(e.images).length) return e.images;
  const containers = Object.keys(e.previous).length ? Object.keys(e.previous) : fallback;
  return Object.fromEntries(containers.map((c) => [c, e.image]));
}

function parse(cm: V1ConfigMap): HistoryEntry[] {
  try {
    const v = JSON.parse(cm.data?.entries ?? "[]");
    return Array.isArray(v) ? (v as HistoryEntry[]) : [];
  } catch {
    return [];
  }
}

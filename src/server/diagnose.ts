/**
 * Why the build-server pod is not starting, read from what the cluster says: its
 * containers' waiting reasons, its conditions, its events (FailedMount), and the
 * ReplicaSet's refusal to create it (Pod Security admission). Each cause comes with
 * the fix.
 */
import { AppsV1Api, CoreV1Api, type KubeConfig, type V1Pod } from "@kubernetes/client-node";
import { UserError } from "../errors.js";
import { type BuilderMode, POD_SECURITY_LEVEL, SELECTOR } from "./objects.js";

const WAITING = [
  "ImagePullBackOff",
  "ErrImagePull",
  "CrashLoopBackOff",
  "CreateContainerConfigError",
  "InvalidImageName",
  "CreateContainerError",
];

/** A container that cannot start, or a pod the scheduler cannot place (after 30 s). */
export function podProblem(p: V1Pod): string | undefined {
  for (const s of [...(p.status?.initContainerStatuses ?? []), ...(p.status?.containerStatuses ?? [])]) {
    const w = s.state?.waiting;
    if (w?.reason && WAITING.includes(w.reason)) {
      return `container ${s.name}: ${w.reason}${w.message ? `: ${w.message}` : ""}`;
    }
  }
  const unsched = p.status?.conditions?.find((c) => c.type === "PodScheduled" && c.status === "False");
  if (
    unsched?.message &&
    Date.now() - new Date(p.metadata?.creationTimestamp ?? Date.now()).getTime() > 30_000
  ) {
    return `not scheduled (Unschedulable): ${unsched.message}`;
  }
  return undefined;
}

const hintFor = (problem: string, namespace: string, pod: string) =>
  /ImagePull|ErrImagePull|InvalidImageName/.test(problem)
    ? `check --image / --builder-image: each must be pullable by the cluster's nodes; see: kubectl -n ${namespace} describe pod ${pod}`
    : `see: kubectl -n ${namespace} describe pod ${pod}`;

/** The last lines the crashed container's previous run wrote (empty if unreadable). */
async function lastLog(kc: KubeConfig, namespace: string, pod: string, container: string) {
  const text = await kc
    .makeApiClient(CoreV1Api)
    .readNamespacedPodLog({ name: pod, namespace, container, previous: true, tailLines: 5 })
    .catch(() => "");
  return String(text)
    .split("\n")
    .filter((l) => l.trim());
}

/**
 * The first reason the build server cannot start, as a UserError with its fix; undefined
 * while it may still be on its way.
 */
export async function diagnose(
  kc: KubeConfig,
  namespace: string,
  builder: BuilderMode | undefined,
  pods: V1Pod[],
): Promise<UserError | undefined> {
  for (const p of pods) {
    const name = p.metadata?.name as string;
    const problem = podProblem(p);
    if (problem) {
      const crashed = /^container (\S+): CrashLoopBackOff/.exec(problem)?.[1];
      const tail = crashed ? await lastLog(kc, namespace, name, crashed) : [];
      const noUserns =
        crashed === "buildkitd" &&
        builder === "buildkit" &&
        /rootlesskit|newuidmap|user namespace|userns/i.test(tail.join("\n"));
      return new UserError("server", `the build server pod ${name} cannot start: ${problem}`, {
        hint: noUserns
          ? "the rootless BuildKit daemon could not make its user namespace: this node allows no unprivileged user namespaces (sysctl user.max_user_namespaces, kernel.unprivileged_userns_clone, AppArmor's restrict_unprivileged_userns); enable them, or install with --builder buildkit-privileged (BuildKit as root in a privileged container)"
          : hintFor(problem, namespace, name),
        details: tail.length ? tail : undefined,
      });
    }
    const events = await kc
      .makeApiClient(CoreV1Api)
      .listNamespacedEvent({
        namespace,
        fieldSelector: `involvedObject.kind=Pod,involvedObject.name=${name}`,
      })
      .catch(() => undefined);
    // A missing host path does not come back; other mount failures (a ConfigMap cache not
    // synced yet) often pass on the kubelet's next try: those only once they keep failing.
    const mount = events?.items.find(
      (e) =>
        e.reason === "FailedMount" &&
        (/hostPath type check failed|docker\.sock/.test(e.message ?? "") || (e.count ?? 1) >= 4),
    );
    if (mount) {
      const docker = /docker\.sock/.test(mount.message ?? "");
      return new UserError(
        "server",
        `the build server pod ${name} cannot start: FailedMount: ${mount.message}`,
        {
          hint: docker
            ? "this node has no Docker daemon socket (containerd-only nodes are the rule since Kubernetes 1.24): install with --builder buildkit, which needs no Docker"
            : `see: kubectl -n ${namespace} describe pod ${name}`,
        },
      );
    }
  }
  if (pods.length === 0) {
    // No pod at all: the ReplicaSet may be refused creating one.
    const sets = await kc
      .makeApiClient(AppsV1Api)
      .listNamespacedReplicaSet({ namespace, labelSelector: SELECTOR })
      .catch(() => undefined);
    for (const rs of sets?.items ?? []) {
      const failure = rs.status?.conditions?.find((c) => c.type === "ReplicaFailure" && c.status === "True");
      if (!failure?.message) continue;
      const level = /violates PodSecurity "([a-z]+)/.exec(failure.message)?.[1];
      return new UserError("server", `the build server pod cannot be created: ${failure.message}`, {
        hint: level
          ? `namespace ${namespace} enforces the Pod Security level "${level}"; the ${builder ?? "chosen"} builder needs "${POD_SECURITY_LEVEL}": kubectl label namespace ${namespace} pod-security.kubernetes.io/enforce=${POD_SECURITY_LEVEL} --overwrite (or install into another namespace with -n)`
          : `see: kubectl -n ${namespace} describe replicaset ${rs.metadata?.name}`,
      });
    }
  }
  return undefined;
}

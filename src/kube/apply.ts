/**
 * Server-side apply (field manager snapdeploy) of any object, and the discovery that
 * tells whether the cluster serves a kind and whether it is namespaced.
 */
import {
  type KubeConfig,
  type KubernetesObject,
  KubernetesObjectApi,
  PatchStrategy,
} from "@kubernetes/client-node";
import { apiError } from "./client.js";

export const FIELD_MANAGER = "snapdeploy";

export interface AppliedObject {
  kind: string;
  name: string;
  outcome: "created" | "configured" | "unchanged";
}

/**
 * Server-side applies one object (field manager snapdeploy) and says whether it was
 * created, changed or left alone; `before` is the live object it replaced, if any.
 * With `dryRun` the server runs admission and validation but persists nothing.
 * `force` takes over fields another manager set (say, an earlier `kubectl apply`):
 * what snapdeploy applies is the desired state, and a conflict would otherwise refuse it.
 */
export async function applyObject(
  kc: KubeConfig,
  api: KubernetesObjectApi,
  obj: KubernetesObject,
  opts: { dryRun?: boolean } = {},
): Promise<AppliedObject & { before?: KubernetesObject; after: KubernetesObject }> {
  const what = `${obj.kind} ${obj.metadata?.namespace ? `${obj.metadata.namespace}/` : ""}${obj.metadata?.name}${opts.dryRun ? " (server-side dry run)" : ""}`;
  let before: KubernetesObject | undefined;
  try {
    before = await api.read({
      apiVersion: obj.apiVersion as string,
      kind: obj.kind as string,
      metadata: { name: obj.metadata?.name as string, namespace: obj.metadata?.namespace },
    });
  } catch (e) {
    if ((e as { code?: number }).code !== 404)
      throw apiError(e, `read ${what}`, kc.getCurrentCluster()?.server);
  }
  try {
    const after = await api.patch(
      obj,
      undefined,
      opts.dryRun ? "All" : undefined,
      FIELD_MANAGER,
      true,
      PatchStrategy.ServerSideApply,
    );
    const rv = before?.metadata?.resourceVersion;
    return {
      kind: obj.kind as string,
      name: obj.metadata?.name as string,
      outcome: !before ? "created" : rv === after.metadata?.resourceVersion ? "unchanged" : "configured",
      before,
      after,
    };
  } catch (e) {
    throw apiError(e, `apply ${what}`, kc.getCurrentCluster()?.server);
  }
}

/** Server-side applies each object and reports whether it was created, changed or left alone. */
export async function applyObjects(kc: KubeConfig, objects: KubernetesObject[]): Promise<AppliedObject[]> {
  const api = KubernetesObjectApi.makeApiClient(kc);
  const out: AppliedObject[] = [];
  for (const obj of objects) {
    const { kind, name, outcome } = await applyObject(kc, api, obj);
    out.push({ kind, name, outcome });
  }
  return out;
}

/** The generic object client, plus its (cached) discovery: is a kind served, is it namespaced. */
export class DiscoveringObjectApi extends KubernetesObjectApi {
  discover(apiVersion: string, kind: string) {
    return this.resource(apiVersion, kind);
  }
}

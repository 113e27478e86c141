/** Which pods a target's workload owns, as a label selector string the API takes. */
import type { V1LabelSelector } from "@kubernetes/client-node";
import { UserError } from "../errors.js";
import type { PodSet } from "./watch.js";

export interface WorkloadLike {
  kind: string;
  name: string;
  namespace: string;
  containers: string[];
  object: { spec?: { selector?: V1LabelSelector } };
}

export function podSetOf(t: WorkloadLike): PodSet {
  return { namespace: t.namespace, selector: selectorString(t), containers: t.containers };
}

/** `matchLabels` and `matchExpressions` as `a=b,c in (d,e),!f`. */
export function selectorString(t: WorkloadLike): string {
  const sel = t.object.spec?.selector;
  const parts: string[] = [];
  for (const [k, v] of Object.entries(sel?.matchLabels ?? {})) parts.push(`${k}=${v}`);
  for (const e of sel?.matchExpressions ?? []) {
    const values = (e.values ?? []).join(",");
    if (e.operator === "In") parts.push(`${e.key} in (${values})`);
    else if (e.operator === "NotIn") parts.push(`${e.key} notin (${values})`);
    else if (e.operator === "Exists") parts.push(e.key);
    else if (e.operator === "DoesNotExist") parts.push(`!${e.key}`);
  }
  if (!parts.length)
    throw new UserError("input", `${t.kind.toLowerCase()}/${t.name} has no pod selector`, {
      hint: "a Deployment or StatefulSet always has spec.selector; is this the object you meant?",
    });
  return parts.join(",");
}

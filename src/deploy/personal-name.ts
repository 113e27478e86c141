/**
 * The name of a user's personal copy of a workload: `<name>-<user>`, as long as that is
 * a valid name. Every place that creates, finds or deletes a copy uses this function,
 * so they always agree on the name.
 */
import { dnsLabel, labelValue } from "../kube/names.js";
import type { TargetKind } from "./targets.js";

/**
 * The longest name a copy of each kind may have. A StatefulSet's pods carry the label
 * controller-revision-hash=`<name>-<10-character hash>`, and a label value has at most
 * 63 characters: a longer StatefulSet name is accepted but its pods are never created.
 */
export const MAX_NAME: Record<TargetKind, number> = { Deployment: 63, StatefulSet: 52 };

/**
 * `<name>-<user>` when it is a DNS-1123 label within the kind's limit (so copies made
 * before keep their names); otherwise a label cut to fit and ended with a short hash of
 * the name and the user, so that two users (or two workloads) never share a copy.
 */
export function personalName(name: string, user: string, kind: TargetKind = "Deployment"): string {
  return dnsLabel(`${name}-${user}`, MAX_NAME[kind]);
}

/** A label value of a personal copy's pods, changed so no shared Service selects them. */
export function personalLabelValue(value: string, user: string): string {
  return labelValue(`${value}-${user}`);
}

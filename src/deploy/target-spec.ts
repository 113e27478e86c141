/** How a target is named: kind, name and containers, as typed after -t or listed in deploy.targets. */
import { UserError } from "../errors.js";

export type TargetKind = "Deployment" | "StatefulSet";

export interface TargetSpec {
  kind: TargetKind;
  name: string;
  containers?: string[];
}

/** Parses "web", "deployment/web", "statefulset/db:main,sidecar". */
export function parseTarget(text: string): TargetSpec {
  const m =
    /^(?:(deployment|deploy|statefulset|sts)\/)?([a-z0-9]([-a-z0-9.]*[a-z0-9])?)(?::([A-Za-z0-9_,.-]+))?$/i.exec(
      text,
    );
  if (!m)
    throw new UserError(
      "usage",
      `target "${text}" must look like [deployment/|statefulset/]NAME[:container,...]`,
    );
  const kind: TargetKind = /^(statefulset|sts)$/i.test(m[1] ?? "") ? "StatefulSet" : "Deployment";
  return { kind, name: m[2] as string, containers: m[4]?.split(",").filter(Boolean) };
}

export function targetLabel(t: { kind: TargetKind; name: string }): string {
  return `${t.kind.toLowerCase()}/${t.name}`;
}

/** What `server install` reads from its flags and from the package, checked before anything is applied. */
import { readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { UserError } from "../errors.js";

/** BuildKit's disk-space syntax: a share of the volume ("50%") or bytes with a unit ("20GB"). */
export function diskSpace(v: string): string {
  const pct = /^(\d{1,2}|100)%$/.exec(v);
  if (pct && Number(pct[1]) > 0) return v;
  if (/^\d+(\.\d+)?\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)$/i.test(v)) return v.replace(/\s+/g, "");
  throw new UserError(
    "usage",
    `--cache-size "${v}" must be a share of the volume (1%..100%) or a size like 20GB`,
  );
}

const QUANTITY = /^\d+(\.\d+)?(m|k|Ki|Mi|Gi|Ti|M|G|T)?$/;

function resourceList(spec: string, flag: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of spec.split(",").filter(Boolean)) {
    const [k, v] = part.split("=");
    if ((k !== "cpu" && k !== "memory") || !v || !QUANTITY.test(v)) {
      throw new UserError(
        "usage",
        `${flag}: "${part}" must be cpu=QUANTITY or memory=QUANTITY (e.g. cpu=500m, memory=1Gi)`,
      );
    }
    out[k] = v;
  }
  return out;
}

/** "REQUESTS[/LIMITS]", each "cpu=Q,memory=Q": a container's resources. */
export function resources(spec: string, flag: string): { requests?: object; limits?: object } {
  const [req, lim, extra] = spec.split("/");
  if (extra !== undefined) throw new UserError("usage", `${flag} "${spec}" must look like REQUESTS[/LIMITS]`);
  const requests = resourceList(req ?? "", flag);
  const limits = lim !== undefined ? resourceList(lim, flag) : {};
  return {
    ...(Object.keys(requests).length ? { requests } : {}),
    ...(Object.keys(limits).length ? { limits } : {}),
  };
}

/**
 * The agent bundle (dist/server/agent.cjs) of this snapdeploy: shipped to the cluster in
 * a ConfigMap when no build-server image is given. Found next to the bundled CLI
 * (dist/cli) or, run from source, in dist/ after `npm run build`.
 */
export function readAgentBundle(): string {
  const here = path.dirname(fileURLToPath(import.meta.url));
  const candidates = [
    process.env.SNAPDEPLOY_AGENT_BUNDLE,
    path.join(here, "../server/agent.cjs"),
    path.join(here, "../../server/agent.cjs"),
    path.join(here, "../../dist/server/agent.cjs"),
  ].filter((c): c is string => Boolean(c));
  for (const c of candidates) {
    try {
      return readFileSync(c, "utf8");
    } catch {}
  }
  throw new UserError("usage", `the agent bundle is missing (looked in ${candidates.join(", ")})`, {
    hint: "reinstall snapdeploy, or from a checkout run: npm run build",
  });
}

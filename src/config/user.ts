/**
 * Who is syncing: names the user's workspace on the build server. In order: the
 * --user flag, $SNAPDEPLOY_USER, snapdeploy.yaml, the Kubernetes identity in the
 * kubeconfig (client certificate CN, else the kubeconfig user's name), the OS user.
 */
import { X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";
import os from "node:os";
import { UserError } from "../errors.js";
import type { KubeUser } from "../kube/access.js";
import { toName } from "./config.js";

export function resolveUser(opts: { flag?: string; config?: string; kubeUser?: KubeUser }): string {
  const candidates: (string | undefined)[] = [
    opts.flag,
    process.env.SNAPDEPLOY_USER,
    opts.config,
    kubeIdentity(opts.kubeUser),
  ];
  try {
    candidates.push(os.userInfo().username);
  } catch {}
  for (const c of candidates) {
    if (!c) continue;
    const n = toName(c.replace(/^system:serviceaccount:[^:]+:/, "").replace(/^system:/, ""));
    if (n) return n;
  }
  throw new UserError("usage", "cannot tell who you are", {
    hint: "pass --user NAME or set SNAPDEPLOY_USER",
  });
}

function kubeIdentity(u?: KubeUser): string | undefined {
  if (!u) return undefined;
  try {
    const pem = u.certData
      ? Buffer.from(u.certData, "base64")
      : u.certFile
        ? readFileSync(u.certFile)
        : undefined;
    if (pem) {
      const cn = /(?:^|\n)CN=([^\n]+)/.exec(new X509Certificate(pem).subject)?.[1];
      if (cn) return cn;
    }
  } catch {}
  return u.name;
}

/**
 * Direct access to the API server for the commands that only reach the build server
 * (sync, build, server status): which kubeconfig, which context, and the TLS options and
 * credentials for one request.
 *
 * Why not always @kubernetes/client-node: loading it costs ~85 ms on every command (its
 * generated API is one 1.8 MB module), more than the rest of a no-op sync's own work. The
 * common kubeconfig shapes (client certificates, bearer tokens, token files, basic auth)
 * are read here with the `yaml` parser; anything else (exec credential plugins,
 * auth-provider, impersonation, proxy-url, in-cluster config) goes through client-node, so
 * no kubeconfig works less well than with it. Both paths share the file and context rules
 * below, so they fail with the same messages.
 */
import type { KubeConfig } from "@kubernetes/client-node";
import { readFileSync } from "node:fs";
import http from "node:http";
import https from "node:https";
import path from "node:path";
import { UserError } from "../errors.js";
import { networkError, statusError } from "./api-errors.js";
import {
  checkContext,
  type KubeOptions,
  kubeconfigFiles,
  mergeKubeconfigs,
  noCurrentCluster,
  unreadableKubeconfig,
} from "./kubeconfig.js";
import { ResumingAgent, SessionStore } from "./tls-resume.js";

export type { KubeOptions };

/** The kubeconfig user, as far as naming the workspace needs it (see config/user.ts). */
export interface KubeUser {
  name: string;
  certData?: string;
  certFile?: string;
}

/** TLS options and headers for one https or wss request to the API server. */
export type RequestAuth = Pick<
  https.RequestOptions,
  "ca" | "cert" | "key" | "pfx" | "passphrase" | "rejectUnauthorized" | "servername"
> & {
  headers?: Record<string, string>;
  /** user:password for basic auth. */
  auth?: string;
  /** A proxy agent (kubeconfig proxy-url). */
  agent?: http.Agent;
};

export interface ClusterAccess {
  /** The API server's URL, e.g. https://10.0.0.1:6443. */
  server: string;
  /** The context's namespace, if it names one. */
  namespace?: string;
  user: KubeUser;
  /** Resolved per request: tokens from files and plugins may rotate. */
  requestOptions(): Promise<RequestAuth>;
}

/** Access through client-node's KubeConfig (every kubeconfig form it supports). */
export function accessFromKubeConfig(kc: KubeConfig): ClusterAccess {
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw noCurrentCluster();
  const user = kc.getCurrentUser();
  return {
    server: cluster.server,
    namespace: kc.getContextObject(kc.getCurrentContext())?.namespace,
    user: { name: user?.name ?? "", certData: user?.certData, certFile: user?.certFile },
    async requestOptions() {
      const opts: https.RequestOptions = {};
      await kc.applyToHTTPSOptions(opts);
      const { ca, cert, key, pfx, passphrase, rejectUnauthorized, servername, agent, auth } = opts;
      const headers = opts.headers as Record<string, string> | undefined;
      return {
        ca,
        cert,
        key,
        pfx,
        passphrase,
        rejectUnauthorized,
        servername,
        headers,
        auth: auth ?? undefined,
        agent: agent instanceof http.Agent ? agent : undefined,
      };
    },
  };
}

/** Fields the direct path understands; a user or cluster with any other one goes through client-node. */
const DIRECT_USER_FIELDS = new Set([
  "client-certificate",
  "client-certificate-data",
  "client-key",
  "client-key-data",
  "token",
  "tokenFile",
  "username",
  "password",
  "extensions",
]);
const DIRECT_CLUSTER_FIELDS = new Set([
  "server",
  "certificate-authority",
  "certificate-authority-data",
  "insecure-skip-tls-verify",
  "tls-server-name",
  "disable-compression",
  "extensions",
]);

/** Loads access for the kubeconfig and context in `opts` (see the module comment). */
export async function loadClusterAccess(opts: KubeOptions): Promise<ClusterAccess> {
  const files = kubeconfigFiles(opts);
  const direct = files.length
    ? readDirect(mergeKubeconfigs(files), files.join(path.delimiter), opts.context)
    : undefined;
  if (direct) return direct;
  const { loadKubeConfig } = await import("./client.js");
  return accessFromKubeConfig(loadKubeConfig(opts));
}

/**
 * Access read straight from the (merged) kubeconfig `doc`, its paths absolute, read from
 * `file`; undefined when its user or cluster needs client-node.
 */
function readDirect(
  doc: Record<string, unknown>,
  file: string,
  wanted: string | undefined,
): ClusterAccess | undefined {
  const list = (key: string) =>
    (Array.isArray(doc[key]) ? doc[key] : []) as (Record<string, unknown> | null)[];
  const find = (key: string, name: unknown) => list(key).find((x) => x?.name === name);
  checkContext(
    list("contexts").map((c) => String(c?.name)),
    wanted,
  );
  const contextName = wanted ?? doc["current-context"];
  const context = find("contexts", contextName)?.context as Record<string, unknown> | undefined;
  const cluster = find("clusters", context?.cluster)?.cluster as Record<string, unknown> | undefined;
  if (!context || !cluster || typeof cluster.server !== "string") throw noCurrentCluster();
  const userEntry = find("users", context.user);
  const user = (userEntry?.user ?? {}) as Record<string, unknown>;
  if (
    Object.keys(user).some((k) => !DIRECT_USER_FIELDS.has(k)) ||
    Object.keys(cluster).some((k) => !DIRECT_CLUSTER_FIELDS.has(k))
  ) {
    return undefined;
  }
  // Relative paths were made absolute against their file's folder (mergeKubeconfigs).
  const str = (v: unknown) => (typeof v === "string" && v !== "" ? v : undefined);
  const fileOf = str;
  const material = (data: unknown, ref: unknown, what: string): Buffer | undefined => {
    try {
      if (str(data)) return Buffer.from(data as string, "base64");
      const f = fileOf(ref);
      return f ? readFileSync(f) : undefined;
    } catch (e) {
      throw unreadableKubeconfig(file, new Error(`${what}: ${(e as Error).message}`));
    }
  };
  const tls: RequestAuth = {
    ca: material(
      cluster["certificate-authority-data"],
      cluster["certificate-authority"],
      "certificate-authority",
    ),
    cert: material(user["client-certificate-data"], user["client-certificate"], "client-certificate"),
    key: material(user["client-key-data"], user["client-key"], "client-key"),
  };
  if (cluster["insecure-skip-tls-verify"] === true) tls.rejectUnauthorized = false;
  if (str(cluster["tls-server-name"])) tls.servername = cluster["tls-server-name"] as string;
  const tokenFile = fileOf(user.tokenFile);
  // One kept-alive connection for the session: the pod lookup's TLS connection is then
  // reused for the exec upgrade (one handshake, one round trip less). Idle sockets do not
  // keep the process alive (the agent unrefs them).
  // Over TLS with the kubeconfig's CA, the agent resumes the last command's session
  // (kube/tls-resume.ts), which spares every command Node.js's root store.
  const agent = cluster.server.startsWith("http:")
    ? new http.Agent({ keepAlive: true })
    : tls.ca && tls.rejectUnauthorized !== false
      ? new ResumingAgent(
          new SessionStore({
            server: cluster.server,
            servername: tls.servername,
            ca: tls.ca as Buffer,
            cert: tls.cert as Buffer | undefined,
            key: tls.key as Buffer | undefined,
          }),
        )
      : new https.Agent({ keepAlive: true });
  return {
    server: cluster.server,
    namespace: str(context.namespace),
    user: {
      name: String(userEntry?.name ?? ""),
      certData: str(user["client-certificate-data"]),
      certFile: fileOf(user["client-certificate"]),
    },
    async requestOptions() {
      const headers: Record<string, string> = {};
      let token = str(user.token);
      if (!token && tokenFile) {
        try {
          token = readFileSync(tokenFile, "utf8").trim();
        } catch (e) {
          throw unreadableKubeconfig(file, new Error(`tokenFile: ${(e as Error).message}`));
        }
      }
      if (token) headers.Authorization = `Bearer ${token}`;
      else if (str(user.username)) {
        const basic = Buffer.from(`${user.username}:${str(user.password) ?? ""}`).toString("base64");
        headers.Authorization = `Basic ${basic}`;
      }
      return { ...tls, headers, agent };
    },
  };
}

const REQUEST_TIMEOUT_MS = 30_000;

/** GETs `apiPath` (e.g. /api/v1/namespaces/x/pods) and parses the JSON answer. */
export async function getJson<T>(access: ClusterAccess, apiPath: string, action: string): Promise<T> {
  const auth = await access.requestOptions();
  // The server URL may carry a path (API proxies do): the API path goes below it.
  const url = new URL(access.server.replace(/\/$/, "") + apiPath);
  const request = url.protocol === "http:" ? http.request : https.request;
  return await new Promise<T>((resolve, reject) => {
    const req = request(
      url,
      { ...auth, method: "GET", headers: { ...auth.headers, Accept: "application/json" } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (d: Buffer) => chunks.push(d));
        res.on("error", reject);
        res.on("end", () => {
          const body = Buffer.concat(chunks).toString("utf8");
          const code = res.statusCode ?? 0;
          if (code < 200 || code > 299) return reject(statusError(code, body, action));
          try {
            resolve(JSON.parse(body) as T);
          } catch (e) {
            reject(
              new UserError("cluster", `failed to ${action}: the API server's answer is not JSON`, {
                cause: e,
              }),
            );
          }
        });
      },
    );
    req.setTimeout(REQUEST_TIMEOUT_MS, () =>
      req.destroy(new Error(`timed out after ${REQUEST_TIMEOUT_MS / 1000} s`)),
    );
    req.on("error", (e) =>
      reject(
        networkError(e, access.server) ??
          new UserError("cluster", `failed to ${action}: ${e.message}`, { cause: e }),
      ),
    );
    req.end();
  });
}

/**
 * Asks a registry (OCI distribution API) whether a tag exists, with the build
 * server's registry credentials (a mounted dockerconfigjson). Supports anonymous
 * access, Basic auth, and the Bearer token flow. Credentials never appear in
 * messages or logs.
 */
import { readFileSync } from "node:fs";

export interface RegistryAuth {
  username?: string;
  password?: string;
}

export interface ImageRef {
  host: string;
  repository: string;
  tag: string;
}

export interface TagInfo {
  digest: string;
  labels: Record<string, string>;
}

export class RegistryError extends Error {
  override name = "RegistryError";
  constructor(
    readonly kind: "auth" | "notFound" | "unreachable" | "other",
    message: string,
  ) {
    super(message);
  }
}

const MANIFEST_TYPES = [
  "application/vnd.oci.image.manifest.v1+json",
  "application/vnd.docker.distribution.manifest.v2+json",
  "application/vnd.oci.image.index.v1+json",
  "application/vnd.docker.distribution.manifest.list.v2+json",
].join(", ");

/** Splits "host[:port]/repo/path:tag" (the host part is required: it has a dot, a colon or is localhost). */
export function parseRef(ref: string): ImageRef {
  const slash = ref.indexOf("/");
  const first = slash > 0 ? ref.slice(0, slash) : "";
  if (!first || !(first.includes(".") || first.includes(":") || first === "localhost")) {
    throw new Error(
      `image reference ${ref} must start with a registry host (e.g. registry.example.com/team/app)`,
    );
  }
  const rest = ref.slice(slash + 1);
  const colon = rest.lastIndexOf(":");
  if (colon < 0) return { host: first, repository: rest, tag: "latest" };
  return { host: first, repository: rest.slice(0, colon), tag: rest.slice(colon + 1) };
}

/** Credentials for `host` from a docker config.json, if any. */
export function credentialsFor(dockerConfigFile: string | undefined, host: string): RegistryAuth | undefined {
  if (!dockerConfigFile) return undefined;
  let cfg: { auths?: Record<string, { auth?: string; username?: string; password?: string }> };
  try {
    cfg = JSON.parse(readFileSync(dockerConfigFile, "utf8"));
  } catch {
    return undefined;
  }
  const entry = cfg.auths?.[host] ?? cfg.auths?.[`https://${host}`] ?? cfg.auths?.[`http://${host}`];
  if (!entry) return undefined;
  if (entry.username) return { username: entry.username, password: entry.password };
  if (entry.auth) {
    const [username, ...pw] = Buffer.from(entry.auth, "base64").toString("utf8").split(":");
    return { username, password: pw.join(":") };
  }
  return undefined;
}

export class RegistryClient {
  constructor(private readonly opts: { insecure: string[]; dockerConfigFile?: string; timeoutMs?: number }) {}

  private base(host: string) {
    return `${this.opts.insecure.includes(host) ? "http" : "https"}://${host}`;
  }

  private async fetch(url: string, init: RequestInit, ref: ImageRef, scope: string): Promise<Response> {
    const auth = credentialsFor(this.opts.dockerConfigFile, ref.host);
    const timeout = AbortSignal.timeout(this.opts.timeoutMs ?? 15_000);
    const go = (headers: Record<string, string>) =>
      fetch(url, {
        ...init,
        headers: { ...(init.headers as Record<string, string>), ...headers },
        signal: timeout,
      }).catch((e: Error) => {
        const cause = (e.cause as Error | undefined)?.message ?? e.message;
        throw new RegistryError("unreachable", `registry ${ref.host} is unreachable: ${cause}`);
      });
    let res = await go({});
    if (res.status !== 401) return res;
    const challenge = res.headers.get("www-authenticate") ?? "";
    if (/^basic/i.test(challenge)) {
      if (!auth?.username) return res;
      res = await go({
        Authorization: `Basic ${Buffer.from(`${auth.username}:${auth.password ?? ""}`).toString("base64")}`,
      });
      return res;
    }
    const bearer = /^bearer\s+(.*)$/i.exec(challenge);
    if (bearer) {
      const params = Object.fromEntries(
        [...(bearer[1] ?? "").matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1], m[2]]),
      );
      const q = new URLSearchParams({ service: params.service ?? "", scope });
      const tokenRes = await fetch(`${params.realm}?${q}`, {
        headers: auth?.username
          ? {
              Authorization: `Basic ${Buffer.from(`${auth.username}:${auth.password ?? ""}`).toString("base64")}`,
            }
          : {},
        signal: timeout,
      }).catch(() => undefined);
      if (!tokenRes?.ok) return res;
      const body = (await tokenRes.json()) as { token?: string; access_token?: string };
      return go({ Authorization: `Bearer ${body.token ?? body.access_token}` });
    }
    return res;
  }

  /** The tag's manifest digest and image labels, or undefined when the tag does not exist. */
  async lookup(refText: string): Promise<TagInfo | undefined> {
    const ref = parseRef(refText);
    const scope = `repository:${ref.repository}:pull`;
    const url = `${this.base(ref.host)}/v2/${ref.repository}/manifests/${ref.tag}`;
    const res = await this.fetch(url, { headers: { Accept: MANIFEST_TYPES } }, ref, scope);
    if (res.status === 404) {
      await res.body?.cancel();
      return undefined;
    }
    if (res.status === 401 || res.status === 403) {
      await res.body?.cancel();
      throw new RegistryError(
        "auth",
        `registry ${ref.host} denied access to ${ref.repository} (HTTP ${res.status})`,
      );
    }
    if (!res.ok) {
      await res.body?.cancel();
      throw new RegistryError(
        "other",
        `registry ${ref.host} answered HTTP ${res.status} for ${ref.repository}:${ref.tag}`,
      );
    }
    const digest = res.headers.get("docker-content-digest") ?? "";
    const manifest = (await res.json()) as { config?: { digest?: string }; manifests?: { digest: string }[] };
    let labels: Record<string, string> = {};
    const configDigest = manifest.config?.digest;
    if (configDigest) {
      const cfg = await this.fetch(
        `${this.base(ref.host)}/v2/${ref.repository}/blobs/${configDigest}`,
        {},
        ref,
        scope,
      );
      if (cfg.ok)
        labels =
          ((await cfg.json()) as { config?: { Labels?: Record<string, string> } }).config?.Labels ?? {};
      else await cfg.body?.cancel();
    }
    return { digest, labels };
  }
}

/**
 * Files in a build context that look like secrets: by name (.env files, private keys,
 * certificates with keys, cloud and cluster credentials), and for `.npmrc` by a cheap look
 * at its content (an auth token in it). What the scan sends goes to the build server and
 * may be copied into an image: these are worth a warning, never a failure.
 */
import { open } from "node:fs/promises";
import { join } from "node:path";
import picomatch from "picomatch";

/** Template files of the dotenv kind hold placeholders, not secrets. */
const TEMPLATE = /\.(example|sample|template|dist|defaults?)$/i;

/** Exact file names (compared in lower case). */
const NAMES = new Set([
  ".env",
  "id_rsa",
  "id_dsa",
  "id_ecdsa",
  "id_ed25519",
  "id_ecdsa_sk",
  "id_ed25519_sk",
  "kubeconfig",
  ".netrc",
  ".pgpass",
  ".git-credentials",
  ".htpasswd",
  "application_default_credentials.json",
  "credentials.tfrc.json",
]);

/** File name endings (compared in lower case). */
const SUFFIX = /\.(?:pem|key|p12|pfx|jks|keystore|kubeconfig)$/;

/** Paths whose last segments say what they are (compared in lower case). */
const PATH_ENDINGS = [".aws/credentials", ".kube/config", ".docker/config.json", "gcloud/credentials.db"];
/** Their last segments: a path ending in none of these needs no look at the rest. */
const PATH_ENDING_NAMES = new Set(PATH_ENDINGS.map((p) => p.slice(p.lastIndexOf("/") + 1)));

/**
 * Why a path looks like a secret by its name; undefined when it does not. Runs on every
 * path of every scan, so a name that matches nothing costs a slice, a lower-casing, two set
 * lookups and one regular expression.
 */
export function secretByName(path: string): string | undefined {
  const base = path.slice(path.lastIndexOf("/") + 1).toLowerCase();
  if (base.startsWith(".env") && (base === ".env" || (base[4] === "." && !TEMPLATE.test(base))))
    return "environment file";
  const named = NAMES.has(base);
  const suffix = !named && SUFFIX.test(base);
  if (!named && !suffix && !PATH_ENDING_NAMES.has(base)) return undefined;
  if (TEMPLATE.test(base)) return undefined;
  if (named) return base.startsWith("id_") ? "private key" : "credentials";
  if (suffix) return "key or certificate";
  const lower = path.toLowerCase();
  if (PATH_ENDINGS.some((p) => lower === p || lower.endsWith(`/${p}`))) return "credentials";
  return undefined;
}

/** Whether an .npmrc (or .yarnrc.yml) text holds a registry credential. */
export function npmrcHoldsToken(text: string): boolean {
  return /^\s*(?:\/\/[^\s=]*:)?(?:_authToken|_auth|_password|npmAuthToken|npmAuthIdent)\s*[=:]\s*\S/im.test(
    text,
  );
}

const TOKEN_FILES = new Set([".npmrc", ".yarnrc.yml"]);

export interface SecretFinding {
  /** Every path that looks like a secret and is not allowed, in the order given. */
  paths: string[];
  /** Why each looks like one, by path. */
  reasons: Record<string, string>;
}

/**
 * The likely secrets among the context's file paths ('/'-separated, relative), except those
 * `allow` (globs over the same paths; one without '/' matches a name at any depth) lets
 * through. `read` gives a file's first bytes, for the content checks (.npmrc); without it,
 * those files are left out. Pure but for `read`.
 */
export async function findLikelySecrets(
  paths: Iterable<string>,
  allow: string[],
  read?: (path: string) => Promise<string | undefined>,
): Promise<SecretFinding> {
  const allowed = allow.map((g) => picomatch(g, { dot: true, basename: !g.includes("/") }));
  const out: SecretFinding = { paths: [], reasons: {} };
  for (const p of paths) {
    const base = p.slice(p.lastIndexOf("/") + 1).toLowerCase();
    let reason = secretByName(p);
    if (!reason && read && TOKEN_FILES.has(base)) {
      const text = await read(p).catch(() => undefined);
      if (text !== undefined && npmrcHoldsToken(text)) reason = "registry token";
    }
    if (!reason || allowed.some((m) => m(p))) continue;
    out.paths.push(p);
    out.reasons[p] = reason;
  }
  return out;
}

/** Reads the first 64 KiB of `root`/`rel` as text (the content checks need no more). */
export async function readHead(root: string, rel: string): Promise<string | undefined> {
  const f = await open(join(root, rel), "r");
  try {
    const buf = Buffer.alloc(64 * 1024);
    const { bytesRead } = await f.read(buf, 0, buf.length, 0);
    return buf.subarray(0, bytesRead).toString("utf8");
  } finally {
    await f.close();
  }
}

/** The warning for `found`: a few of the paths, the count, and how to exclude or allow them. */
export function secretsWarning(found: SecretFinding, shown = 5): string | undefined {
  const n = found.paths.length;
  if (!n) return undefined;
  const list = found.paths.slice(0, shown).map((p) => `${p} (${found.reasons[p]})`);
  const more = n > shown ? `, and ${n - shown} more` : "";
  return [
    `the build context holds ${n} file${n === 1 ? "" : "s"} that look${n === 1 ? "s" : ""} like secrets: ${list.join(", ")}${more}`,
    "  they are sent to the build server and a COPY can put them in the image; exclude them in .dockerignore,",
    "  or, if they hold no secret, allow them in snapdeploy.yaml: context: {allowSecrets: [PATH or GLOB, ...]}",
  ].join("\n");
}

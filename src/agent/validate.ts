/**
 * The agent trusts nothing the client sends: names, digests, image references, secrets
 * and labels are checked here; manifests in validate-manifest.ts.
 */
import { IMAGE_LABEL, NAME_PATTERN } from "../protocol/constants.js";
import { InvalidInput } from "./errors.js";
import { parseRef } from "./registry.js";

export const HASH = /^[0-9a-f]{64}$/;

export function validateName(kind: "user" | "project", value: unknown): string {
  if (typeof value !== "string" || !NAME_PATTERN.test(value)) {
    throw new InvalidInput(
      `invalid ${kind} name ${JSON.stringify(value)}: use 1-63 lowercase letters, digits, '.', '_' or '-', starting and ending with a letter or digit`,
    );
  }
  return value;
}

/** A manifest digest (SHA-256, lowercase hex) the client names. */
export function validateDigest(kind: string, value: unknown): string {
  if (typeof value !== "string" || !HASH.test(value))
    throw new InvalidInput(`invalid ${kind} ${JSON.stringify(value)}: expected a SHA-256 in lowercase hex`);
  return value;
}

/** Repository path components and tags as the distribution spec names them. */
const REPOSITORY = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$/;
const HOST = /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?)(?::[0-9]{1,5})?$/;
const TAG = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;

/** An image reference host/repository:tag (the only form the CLI sends). */
export function validateRef(value: unknown): string {
  const ref = String(value);
  let parsed: ReturnType<typeof parseRef>;
  try {
    parsed = parseRef(ref);
  } catch (e) {
    throw new InvalidInput((e as Error).message);
  }
  if (!HOST.test(parsed.host) || !REPOSITORY.test(parsed.repository) || !TAG.test(parsed.tag)) {
    throw new InvalidInput(
      `invalid image reference ${JSON.stringify(ref)}: expected host/repository:tag, the repository in lowercase`,
    );
  }
  return ref;
}

/** BuildKit secret ids name files in the build's secrets folder: one plain name each. */
const SECRET_ID = /^[A-Za-z0-9._-]{1,64}$/;

export function validateSecrets(value: unknown): { id: string; data: string }[] {
  if (value === undefined) return [];
  if (!Array.isArray(value)) throw new InvalidInput("secrets is not a list");
  return value.map((s: { id?: unknown; data?: unknown }) => {
    const id = s?.id;
    if (typeof id !== "string" || !SECRET_ID.test(id) || id === "." || id === "..")
      throw new InvalidInput(`invalid secret id ${JSON.stringify(id)}`);
    return { id, data: String(s.data) };
  });
}

/**
 * The labels of a build's image: the ones the CLI sends, checked against the build, and
 * what the agent itself knows. A caller (anyone who may reach the agent) can claim any user:
 * the user label must name the workspace's user, so an image says whose workspace it was
 * built from, which is as much as the agent can know; the snapshot label must be the one the
 * tag names; the time is the agent's clock; and the build server (its pod) is added.
 */
export function imageLabels(
  value: unknown,
  build: { user: string; ref: string; buildServer: string; now: Date },
): Record<string, string> {
  if (value !== undefined && (value === null || typeof value !== "object" || Array.isArray(value)))
    throw new InvalidInput("labels is not a map of strings");
  const sent = (value ?? {}) as Record<string, unknown>;
  const known: readonly string[] = [IMAGE_LABEL.user, IMAGE_LABEL.created, IMAGE_LABEL.snapshot];
  for (const [k, v] of Object.entries(sent)) {
    if (!known.includes(k))
      throw new InvalidInput(
        `label ${shorten(k)} is not one the build server sets (only ${known.join(", ")})`,
      );
    if (typeof v !== "string") throw new InvalidInput(`label ${k} is not a string`);
  }
  const user = sent[IMAGE_LABEL.user];
  if (user !== undefined && user !== build.user)
    throw new InvalidInput(
      `label ${IMAGE_LABEL.user} names ${shorten(String(user))}, but the build is of ${build.user}'s workspace`,
    );
  const created = sent[IMAGE_LABEL.created];
  if (created !== undefined && Number.isNaN(Date.parse(String(created))))
    throw new InvalidInput(`label ${IMAGE_LABEL.created} is not a time: ${shorten(String(created))}`);
  const labels: Record<string, string> = {
    [IMAGE_LABEL.user]: build.user,
    [IMAGE_LABEL.created]: build.now.toISOString(),
    [IMAGE_LABEL.buildServer]: build.buildServer,
  };
  const snapshot = sent[IMAGE_LABEL.snapshot];
  if (snapshot !== undefined) {
    const tag = parseRef(build.ref).tag;
    if (!HASH.test(String(snapshot)) || !tag.endsWith(String(snapshot).slice(0, 32)))
      throw new InvalidInput(
        `label ${IMAGE_LABEL.snapshot} ${shorten(String(snapshot))} is not the snapshot tag ${tag} names`,
      );
    labels[IMAGE_LABEL.snapshot] = String(snapshot);
  }
  return labels;
}

export function shorten(s: string): string {
  return s.length > 200 ? `${s.slice(0, 80)}…` : s;
}

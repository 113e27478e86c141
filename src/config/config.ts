/**
 * snapdeploy.yaml: one zod schema is the single source of truth. Every problem is
 * reported with its location, e.g. `server.namespace: expected string`.
 * Flags override the file; the file overrides defaults.
 */
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { parse } from "yaml";
import { en } from "zod/locales";
import * as z from "zod/mini";
import { UserError } from "../cli/errors.js";
import { NAME_PATTERN } from "../protocol/constants.js";

// zod's "mini" build: the same checks, a twentieth of the code to load (every command
// reads the config, so its import cost is paid on each run). English messages only.
z.config(en());

const name = z
  .string()
  .check(z.regex(NAME_PATTERN, "use lowercase letters, digits, '.', '_' or '-' (at most 63)"));
const nonEmpty = () => z.string().check(z.minLength(1));

export const ConfigSchema = z.strictObject({
  project: z.optional(name),
  user: z.optional(name),
  image: z._default(
    z.strictObject({
      /** Where snapshots are pushed, e.g. registry.example.com/team/app. */
      repository: z.optional(nonEmpty()),
      dockerfile: z._default(nonEmpty(), "Dockerfile"),
      target: z.optional(nonEmpty()),
      platform: z.optional(nonEmpty()),
      buildArgs: z._default(z.record(z.string(), z.string()), {}),
      tagPrefix: z._default(z.string().check(z.regex(/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,40}$/)), "snap-"),
      secrets: z._default(
        z.array(
          z.strictObject({
            id: z.string().check(z.regex(/^[A-Za-z0-9._-]{1,64}$/)),
            secret: nonEmpty(),
            key: z.optional(nonEmpty()),
          }),
        ),
        [],
      ),
    }),
    { dockerfile: "Dockerfile", buildArgs: {}, tagPrefix: "snap-", secrets: [] },
  ),
  deploy: z._default(
    z.strictObject({
      /** Namespace of the targets (default: the kubeconfig context's namespace, else "default"). */
      namespace: z.optional(nonEmpty()),
      targets: z._default(
        z.array(
          z.strictObject({
            kind: z._default(z.enum(["Deployment", "StatefulSet"]), "Deployment"),
            name: nonEmpty(),
            /** Containers to point at the snapshot (default: the first container). */
            containers: z.optional(z.array(nonEmpty())),
          }),
        ),
        [],
      ),
      /**
       * Apply these manifests (a folder of YAML files or a kustomization, relative to
       * the project folder) with the snapshot image instead of patching targets.
       */
      manifests: z.optional(nonEmpty()),
      /** Seconds to wait for each rollout. */
      timeout: z._default(z.number().check(z.int(), z.positive()), 300),
    }),
    { targets: [], timeout: 300 },
  ),
  server: z._default(
    z.strictObject({
      namespace: z._default(nonEmpty(), "snapdeploy"),
    }),
    { namespace: "snapdeploy" },
  ),
});

export type Config = z.infer<typeof ConfigSchema>;
export const CONFIG_FILE = "snapdeploy.yaml";

/** Reads <dir>/snapdeploy.yaml if present; an absent file means all defaults. */
export function loadConfig(dir: string): Config {
  const file = path.join(dir, CONFIG_FILE);
  let raw: unknown = {};
  if (existsSync(file)) {
    try {
      raw = parse(readFileSync(file, "utf8")) ?? {};
    } catch (e) {
      throw new UserError("usage", `${file} is not valid YAML: ${(e as Error).message}`);
    }
  }
  const r = ConfigSchema.safeParse(raw);
  if (!r.success) {
    throw new UserError("usage", `${file} has ${r.error.issues.length} problem(s)`, {
      details: r.error.issues.map((i) => `${i.path.join(".") || "(top level)"}: ${i.message}`),
    });
  }
  return r.data;
}

/** Lowercases and replaces what a workspace name cannot hold; "" if nothing is left. */
export function toName(s: string): string {
  return s
    .toLowerCase()
    .replace(/[^a-z0-9._-]+/g, "-")
    .replace(/^[^a-z0-9]+|[^a-z0-9]+$/g, "")
    .slice(0, 63)
    .replace(/[^a-z0-9]+$/, "");
}

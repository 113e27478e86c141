/**
 * The schema of snapdeploy.yaml: one zod schema is the single source of truth for what a
 * file may say. Every problem is reported with its location, e.g. `server.namespace:
 * expected string`. Loaded only when a project has the file (see config.ts).
 */
import { readFileSync } from "node:fs";
// js-yaml, as for kubeconfigs: every command reads this file on start, and js-yaml loads and
// parses several times faster than `yaml` (which init keeps, to edit the file in place).
import { load } from "js-yaml";
import { en } from "zod/locales";
import * as z from "zod/mini";
import { UserError } from "../errors.js";
import { NAME_PATTERN } from "../protocol/constants.js";
import { DURATION_SYNTAX, MAX_TIMEOUT_SECONDS, parseDuration } from "../util/duration.js";
import { DEFAULT_CONFIG } from "./defaults.js";

// zod's "mini" build: the same checks, a twentieth of the code to load (every command
// reads the config, so its import cost is paid on each run). English messages only.
z.config(en());

const name = z
  .string()
  .check(z.regex(NAME_PATTERN, "use lowercase letters, digits, '.', '_' or '-' (at most 63)"));
const nonEmpty = () => z.string().check(z.minLength(1));
/** A duration in seconds: a whole number, or a string as the flags take it (util/duration.ts). */
const timeout = z.pipe(
  z.union([z.number(), z.string()]),
  z.transform((v, ctx) => {
    const s = typeof v === "number" ? (Number.isInteger(v) ? v : undefined) : parseDuration(v);
    if (s === undefined || s < 1 || s > MAX_TIMEOUT_SECONDS) {
      ctx.issues.push({
        code: "custom",
        input: v,
        message: `expected ${DURATION_SYNTAX}, from 1s to ${MAX_TIMEOUT_SECONDS}s`,
      });
      return z.NEVER;
    }
    return s;
  }),
);

export const ConfigSchema = z.strictObject({
  project: z.optional(name),
  user: z.optional(name),
  image: z._default(
    z.strictObject({
      /** Where snapshots are pushed, e.g. registry.example.com/team/app. */
      repository: z.optional(nonEmpty()),
      dockerfile: z._default(nonEmpty(), DEFAULT_CONFIG.image.dockerfile),
      target: z.optional(nonEmpty()),
      platform: z.optional(nonEmpty()),
      buildArgs: z._default(z.record(z.string(), z.string()), {}),
      tagPrefix: z._default(
        z.string().check(z.regex(/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,40}$/)),
        DEFAULT_CONFIG.image.tagPrefix,
      ),
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
    () => structuredClone(DEFAULT_CONFIG.image),
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
      /** How long to wait for each rollout: seconds (300), or a duration like 90s, 5m, 1h30m. */
      timeout: z._default(timeout, DEFAULT_CONFIG.deploy.timeout),
    }),
    () => structuredClone(DEFAULT_CONFIG.deploy),
  ),
  /** The inner loop of `snapdeploy dev` (see src/dev/plan.ts for how paths map). */
  dev: z._default(
    z.strictObject({
      /** Changed files these cover go straight into the running containers (live update). */
      sync: z._default(
        z.array(
          z.strictObject({
            /** A glob over the tree's paths, or a directory or file. */
            src: nonEmpty(),
            /** An absolute path in the container. */
            dest: z
              .string()
              .check(
                z.refine(
                  (d) => d.startsWith("/") && d !== "/" && !d.split("/").includes("..") && !d.includes("\0"),
                  "must be an absolute path other than / without '..'",
                ),
              ),
          }),
        ),
        [],
      ),
      /** A changed path matching one of these globs rebuilds and rolls out instead. */
      rebuildOn: z._default(z.array(nonEmpty()), []),
      /** Commands run in each updated container after a live update (`sh -c`). */
      run: z._default(z.array(z.strictObject({ cmd: nonEmpty(), on: z.optional(z.array(nonEmpty())) })), []),
    }),
    () => structuredClone(DEFAULT_CONFIG.dev),
  ),
  /** What the build context (the scanned tree) may hold. */
  context: z._default(
    z.strictObject({
      /** Paths or globs of files that look like secrets but are not (no warning for them). */
      allowSecrets: z._default(z.array(nonEmpty()), []),
    }),
    () => structuredClone(DEFAULT_CONFIG.context),
  ),
  server: z._default(
    z.strictObject({
      namespace: z._default(nonEmpty(), DEFAULT_CONFIG.server.namespace),
    }),
    () => structuredClone(DEFAULT_CONFIG.server),
  ),
});

export type Config = z.infer<typeof ConfigSchema>;

/** The config in `file` (snapdeploy.yaml): UserError("usage") listing every problem. */
export function parseConfigFile(file: string): Config {
  let raw: unknown = {};
  try {
    raw = load(readFileSync(file, "utf8")) ?? {};
  } catch (e) {
    throw new UserError("usage", `${file} is not valid YAML: ${(e as Error).message}`);
  }
  return validateConfig(raw, file);
}

/** `raw` (snapdeploy.yaml's contents, from `file`) checked: UserError("usage") listing every problem. */
export function validateConfig(raw: unknown, file: string): Config {
  const r = ConfigSchema.safeParse(raw);
  if (!r.success) {
    throw new UserError("usage", `${file} has ${r.error.issues.length} problem(s)`, {
      details: r.error.issues.map((i) => `${i.path.join(".") || "(top level)"}: ${i.message}`),
    });
  }
  return r.data;
}

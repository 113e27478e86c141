/**
 * snapdeploy.yaml: one zod schema is the single source of truth. Every problem is
 * reported with its location, e.g. `server.namespace: expected string`.
 * Flags override the file; the file overrides defaults.
 */
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { parse } from "yaml";
import { z } from "zod";
import { UserError } from "../cli/errors.js";
import { NAME_PATTERN } from "../protocol/constants.js";

const name = z.string().regex(NAME_PATTERN, "use lowercase letters, digits, '.', '_' or '-' (at most 63)");

export const ConfigSchema = z
  .object({
    project: name.optional(),
    user: name.optional(),
    image: z
      .object({
        /** Where snapshots are pushed, e.g. registry.example.com/team/app. */
        repository: z.string().min(1).optional(),
        dockerfile: z.string().min(1).default("Dockerfile"),
        target: z.string().min(1).optional(),
        platform: z.string().min(1).optional(),
        buildArgs: z.record(z.string(), z.string()).default({}),
        tagPrefix: z
          .string()
          .regex(/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,40}$/)
          .default("snap-"),
        secrets: z
          .array(
            z
              .object({
                id: z.string().regex(/^[A-Za-z0-9._-]{1,64}$/),
                secret: z.string().min(1),
                key: z.string().min(1).optional(),
              })
              .strict(),
          )
          .default([]),
      })
      .strict()
      .default({ dockerfile: "Dockerfile", buildArgs: {}, tagPrefix: "snap-", secrets: [] }),
    deploy: z
      .object({
        /** Namespace of the targets (default: the kubeconfig context's namespace, else "default"). */
        namespace: z.string().min(1).optional(),
        targets: z
          .array(
            z
              .object({
                kind: z.enum(["Deployment", "StatefulSet"]).default("Deployment"),
                name: z.string().min(1),
                /** Containers to point at the snapshot (default: the first container). */
                containers: z.array(z.string().min(1)).optional(),
              })
              .strict(),
          )
          .default([]),
        /**
         * Apply these manifests (a folder of YAML files or a kustomization, relative to
         * the project folder) with the snapshot image instead of patching targets.
         */
        manifests: z.string().min(1).optional(),
        /** Seconds to wait for each rollout. */
        timeout: z.number().int().positive().default(300),
      })
      .strict()
      .default({ targets: [], timeout: 300 }),
    server: z
      .object({
        namespace: z.string().min(1).default("snapdeploy"),
      })
      .strict()
      .default({ namespace: "snapdeploy" }),
  })
  .strict();

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

/**
 * docs/config.md cannot drift from the schema: every key of ConfigSchema has a row in its
 * table, every row names a key of the schema, and its example (and the README's) validates.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { ConfigSchema, validateConfig } from "../../src/config/schema.js";
import { markdownTables, yamlBlocks } from "../helpers/markdown.js";

const ROOT = new URL("../../", import.meta.url).pathname;
const read = (f: string) => readFileSync(`${ROOT}${f}`, "utf8");

type Def = {
  type: string;
  shape?: Record<string, Schema>;
  element?: Schema;
  innerType?: Schema;
  in?: Schema;
};
type Schema = { _zod: { def: Def } };

/** Every key path of a zod schema: `a`, `a.b`, `a.list[].c`. Wrappers (default, optional, pipe) are looked through. */
function schemaKeys(s: Schema, prefix = ""): string[] {
  const d = s._zod.def;
  switch (d.type) {
    case "default":
    case "optional":
    case "nullable":
    case "prefault":
      return schemaKeys(d.innerType as Schema, prefix);
    case "pipe":
      return schemaKeys(d.in as Schema, prefix);
    case "array":
      return schemaKeys(d.element as Schema, `${prefix}[]`);
    case "object":
      return Object.entries(d.shape ?? {}).flatMap(([k, v]) => {
        const p = prefix ? `${prefix}.${k}` : k;
        return [p, ...schemaKeys(v, p)];
      });
    default:
      return [];
  }
}

function documentedKeys(): string[] {
  const tables = markdownTables(read("docs/config.md")).filter((t) => t.header[0] === "key");
  assert.equal(tables.length, 1, "docs/config.md has one table whose first column is `key`");
  return (tables[0]?.rows ?? []).map((r) => {
    const m = /^`([^`]+)`$/.exec(r[0] ?? "");
    assert.ok(m?.[1], `a key cell is one code span: ${r[0]}`);
    return m[1];
  });
}

test("the schema walk sees nested objects and lists", () => {
  const keys = schemaKeys(ConfigSchema as unknown as Schema);
  for (const k of [
    "project",
    "image.secrets[].id",
    "deploy.targets[].containers",
    "deploy.timeout",
    "server.namespace",
  ]) {
    assert.ok(keys.includes(k), k);
  }
});

test("docs/config.md documents every key of the schema, and no other", () => {
  const schema = schemaKeys(ConfigSchema as unknown as Schema);
  const documented = documentedKeys();
  const dupes = documented.filter((k, i) => documented.indexOf(k) !== i);
  assert.deepEqual(dupes, [], "keys documented twice");
  assert.deepEqual(
    schema.filter((k) => !documented.includes(k)),
    [],
    "keys in src/config/schema.ts without a row in docs/config.md",
  );
  assert.deepEqual(
    documented.filter((k) => !schema.includes(k)),
    [],
    "rows in docs/config.md naming no key of src/config/schema.ts",
  );
});

test("the documented defaults of plain values are the schema's", () => {
  const defaults = validateConfig({}, "snapdeploy.yaml") as unknown as Record<
    string,
    Record<string, unknown>
  >;
  const rows = markdownTables(read("docs/config.md")).find((t) => t.header[0] === "key")?.rows ?? [];
  for (const [keyCell = "", , defaultCell = ""] of rows) {
    const key = keyCell.slice(1, -1);
    const [section = "", field] = key.split(".");
    if (!field || key.includes("[]")) continue;
    const value = defaults[section]?.[field];
    if (typeof value === "string")
      assert.match(defaultCell, new RegExp(`\`${value}\``), `${key}: default ${value}`);
    if (typeof value === "number")
      assert.match(defaultCell, new RegExp(`\`${value}\``), `${key}: default ${value}`);
  }
});

test("the YAML examples in docs/config.md and README.md are valid snapdeploy.yaml files", async () => {
  const { parse } = await import("yaml");
  for (const file of ["docs/config.md", "README.md"]) {
    const blocks = yamlBlocks(read(file));
    assert.ok(blocks.length > 0, `${file} has a yaml example`);
    for (const b of blocks) validateConfig(parse(b), `${file} example`);
  }
});

/** The docs' relative links point at files that exist and, with a #fragment, at a heading there. */
import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { prose } from "../helpers/markdown.js";

const ROOT = new URL("../../", import.meta.url).pathname;
const FILES = [
  "README.md",
  ...readdirSync(`${ROOT}docs`)
    .filter((f) => f.endsWith(".md"))
    .map((f) => `docs/${f}`),
];

/** GitHub's anchor of a heading: lowercase, punctuation dropped, spaces to '-'. */
const anchor = (heading: string) =>
  heading
    .toLowerCase()
    .replace(/[^\p{L}\p{N} _-]/gu, "")
    .replace(/ /g, "-");

const anchors = (file: string) =>
  [...readFileSync(`${ROOT}${file}`, "utf8").matchAll(/^#{1,6} (.+)$/gm)].map((m) => anchor(m[1] ?? ""));

test("every relative link in the docs resolves", () => {
  const problems: string[] = [];
  for (const file of FILES) {
    const md = prose(readFileSync(`${ROOT}${file}`, "utf8"));
    for (const m of md.matchAll(/\]\(([^)\s]+)\)/g)) {
      const link = m[1] ?? "";
      if (/^[a-z]+:/.test(link)) continue;
      const [target = "", fragment] = link.split("#");
      const resolved = target ? path.normalize(path.join(path.dirname(file), target)) : file;
      if (!existsSync(`${ROOT}${resolved}`)) problems.push(`${file}: ${link}: no file ${resolved}`);
      else if (fragment && !anchors(resolved).includes(fragment))
        problems.push(`${file}: ${link}: no heading`);
    }
  }
  assert.deepEqual(problems, []);
});

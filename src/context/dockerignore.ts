/**
 * `.dockerignore` rules with Docker's semantics. Matching itself is done by
 * @balena/dockerignore (a port of Docker's own matcher); this module only feeds it
 * the file the way the Docker CLI reads it and works around two places where the
 * port differs from Docker (see `compile`).
 */
import { readFile } from "node:fs/promises";
import { posix } from "node:path";
import dockerignore from "@balena/dockerignore";
import { UserError } from "../errors.js";

/** What a `.dockerignore` decides, for paths relative to the context root, '/'-separated. */
export interface IgnoreRules {
  /** True when Docker leaves `rel` out of the build context. */
  ignores(rel: string): boolean;
  /**
   * True when no `!` exception can re-include anything below the ignored directory
   * `dirRel`, so a walk may skip it without listing it. False is always safe.
   */
  canPrune(dirRel: string): boolean;
}

/** Reads `<root>/.dockerignore`; a missing file means nothing is ignored. */
export async function readDockerignore(root: string): Promise<IgnoreRules> {
  let text: string;
  try {
    text = await readFile(posix.join(root, ".dockerignore"), "utf8");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return parseDockerignore("");
    throw new UserError("input", `cannot read ${JSON.stringify(posix.join(root, ".dockerignore"))}`, {
      hint: "make .dockerignore a readable regular file",
      cause: e,
    });
  }
  return parseDockerignore(text);
}

/** Rules from the text of a `.dockerignore` file. Throws UserError("input") on an invalid pattern. */
export function parseDockerignore(text: string): IgnoreRules {
  // Like the Docker CLI: drop a UTF-8 byte order mark, one pattern per line.
  const lines = text.replace(/^\uFEFF/, "").split(/\r?\n/);
  const matcher = compile(lines);
  const exceptions = literalExceptions(lines);
  return {
    ignores: directoryAwareMatcher(matcher),
    canPrune(dirRel) {
      if (exceptions === undefined) return false;
      const prefix = `${dirRel}/`;
      return !exceptions.some((e) => e.startsWith(prefix));
    },
  };
}

/** The port's own (slower) decision for the same text: the reference the unit tests compare with. */
export function portIgnores(text: string): (rel: string) => boolean {
  const matcher = compile(text.replace(/^\uFEFF/, "").split(/\r?\n/));
  return (rel) => matcher.ignores(rel);
}

/** Characters Go's filepath.Match takes literally but the port would pass into a RegExp as syntax. */
const REGEXP_ONLY = new Set(["+", "(", ")", "{", "}", "|", "^"]);

function compile(lines: string[]) {
  // Escape regexp-only characters so `c++` or `a(1)` match literally, as in Docker; a `^`
  // right after `[` is Go's class negation and stays. Backslash escapes are kept as written.
  const escaped = lines.map((line) => {
    let out = "";
    let classStart = false; // the previous character opened a [class]
    for (let i = 0; i < line.length; i++) {
      const ch = line.charAt(i);
      if (ch === "\\" && i + 1 < line.length) {
        out += ch + line.charAt(++i);
      } else if (REGEXP_ONLY.has(ch) && !(ch === "^" && classStart)) {
        out += `\\${ch}`;
      } else {
        out += ch;
      }
      classStart = ch === "[";
    }
    return out;
  });
  // Docker matches case-sensitively; the port defaults to case-insensitive.
  // A CommonJS module: its typings put the factory at `.default`, which it also sets at runtime.
  const ig = dockerignore.default({ ignorecase: false }).add(escaped);
  try {
    ig.ignores("-"); // compiles every pattern now, so a bad one fails here and not mid-scan
  } catch (e) {
    throw new UserError("input", `.dockerignore has an invalid pattern: ${(e as Error).message}`, {
      hint: "fix the pattern (syntax as in Go's filepath.Match: * ? [a-z] and **)",
      cause: e,
    });
  }
  // The port memoises results in a plain object and looks them up with `in`, so a root
  // entry named like an Object.prototype member (`constructor`, `toString`) would never
  // be ignored. A prototype-less memo fixes that; `add` (which resets it) is not called again.
  (ig as unknown as { _cache: Record<string, boolean> })._cache = Object.create(null);
  return ig;
}

/** The parts of the port's matcher that `directoryAwareMatcher` reuses (version pinned in package.json). */
interface PortMatcher {
  _rules: { dirs: string[]; negative: boolean }[];
  _compile(rule: unknown): { regexp: RegExp };
}

/**
 * The port's decision for a path (its `_test`, same rules, same compiled patterns, same
 * order), computed faster for a walk. For each rule the port tests the path, and if that
 * fails, a prefix of the path's parent directory; it redoes the parent's part (with a
 * dirname, a normalize, a split and joins) for every path and memoises every answer. A
 * walk visits a directory's entries one after another, so here the parent's part is
 * computed once per directory and each path costs one regexp test per rule: with ten
 * rules, 10k paths took 65 ms in the port and take a few here. Paths must be clean
 * ('/'-separated, no '.', '..' or empty segments), as the scanner's are. The unit tests
 * compare both on many patterns and paths.
 */
function directoryAwareMatcher(ig: ReturnType<typeof compile>): (rel: string) => boolean {
  const port = ig as unknown as PortMatcher;
  const rules = port._rules.map((r) => ({
    re: port._compile(r).regexp,
    negative: r.negative,
    depth: r.dirs.length,
    doubleStar: r.dirs.includes("**"),
    fixedDepth: r.dirs.filter((x) => x !== "**").length,
  }));
  if (rules.length === 0) return () => false;
  let lastParent: string | undefined;
  let parentMatches: boolean[] = [];
  const matchParent = (parent: string): boolean[] => {
    if (parent === ".") return rules.map(() => false);
    const dirs = parent.split("/");
    return rules.map((r) => {
      if (r.doubleStar) {
        // `**` may stand for any number of directories, so every prefix that is long enough.
        for (let i = r.fixedDepth; i <= dirs.length; i++)
          if (r.re.test(dirs.slice(0, i).join("/"))) return true;
        return false;
      }
      return r.depth <= dirs.length && r.re.test(dirs.slice(0, r.depth).join("/"));
    });
  };
  return (rel) => {
    const slash = rel.lastIndexOf("/");
    const parent = slash < 0 ? "." : rel.slice(0, slash);
    if (parent !== lastParent) {
      parentMatches = matchParent(parent);
      lastParent = parent;
    }
    let matched = false;
    for (let i = 0; i < rules.length; i++) {
      const r = rules[i] as (typeof rules)[number];
      if (parentMatches[i] || r.re.test(rel)) matched = !r.negative;
    }
    return matched;
  };
}

/**
 * The `!` exceptions as cleaned literal paths, or undefined when one of them has a
 * wildcard or other special character (it could then match below any directory).
 */
function literalExceptions(lines: string[]): string[] | undefined {
  const out: string[] = [];
  for (const line of lines) {
    if (line.startsWith("#")) continue;
    const trimmed = line.trim();
    if (trimmed === "") continue;
    // The port, like Docker, also reads `/!x` as an exception.
    const pattern = posix.normalize(trimmed).replace(/^\/+/, "");
    if (!pattern.startsWith("!")) continue;
    const body = pattern.slice(1).trim();
    if (body === "") continue;
    if (/[*?[\]\\!+(){}|^]/.test(body)) return undefined;
    out.push(posix.normalize(body).replace(/^\/+|\/+$/g, ""));
  }
  return out;
}

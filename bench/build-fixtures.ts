/**
 * The build benchmark's apps, generated under bench/.fixtures/build/APP/ once and reused while
 * their marker matches. Each app exists twice, one copy per tool (snapdeploy, baseline): the two
 * tools share the node's Docker daemon and the registry, and each round stamps its copies with
 * its own value, so neither tool can reuse the other's layers (see stampRound).
 *
 *   small       a shell app and static files on the minimal Debian base: a few files
 *   deps-heavy  a Node.js app on debian-tools with a vendored node_modules (this checkout's own
 *               JavaScript packages, topped up with generated ones) to exactly 10,000 files
 */
import { createHash } from "node:crypto";
import {
  closeSync,
  cpSync,
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
  writeSync,
} from "node:fs";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { fixturesDir } from "./fixtures.js";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
/** Where the pods pull base images from (the node's registry as pods reach it). */
const REGISTRY_NODE = "10.245.0.1:5000";
/** Bump when generation changes, so old apps are regenerated. */
const VERSION = 1;
export const TOOLS = ["snapdeploy", "baseline"] as const;
export type Tool = (typeof TOOLS)[number];
/** The deps-heavy tree's size in files: the tree of the skip-hit target. */
export const DEPS_FILES = 10_000;
/**
 * Packages of this checkout's node_modules left out of the vendored copy: native executables
 * for this machine's platform (Biome, esbuild; ~120 MB), not what an app's runtime vendors.
 */
const NATIVE = new Set(["@biomejs", "@esbuild", "esbuild", ".bin"]);
/** The round's stamp, copied into every folder a Dockerfile step copies (see stampRound). */
const STAMP = ".bench-stamp";

export interface BuildApp {
  name: string;
  /** The app's copy for each tool: identical but for the stamp files. */
  dirs: Record<Tool, string>;
  files: number;
  bytes: number;
  /** The app-source file the "one file changed" scenario edits (not in the dependencies). */
  oneFile: string;
  /** When a file was last written; snapdeploy's scan cache does not trust files younger than 2 s. */
  writtenAt: number;
}

/** Deterministic, source-like JavaScript of about `size` bytes: words drawn from a SHA-256 stream. */
function jsText(seed: string, size: number): string {
  const words = "value result items options config handler request response index length".split(" ");
  const lines: string[] = [];
  let n = 0;
  for (let k = 0; n < size; k++) {
    const h = createHash("sha256").update(`${seed}:${k}`).digest();
    const w = (j: number) => words[(h[j] as number) % words.length];
    const line = `export const ${w(0)}${k} = ${JSON.stringify(`${w(1)} ${w(2)} ${h.toString("hex", 8, 20)}`)};\n`;
    lines.push(line);
    n += line.length;
  }
  return lines.join("");
}

/** File sizes from 1 to 8 KB, a deterministic function of the seed. */
const sizeOf = (seed: string) => 1024 + (createHash("sha256").update(seed).digest().readUInt16LE(0) % 7168);

function write(root: string, rel: string, data: string | Buffer) {
  mkdirSync(dirname(join(root, rel)), { recursive: true });
  writeFileSync(join(root, rel), data);
}

function walk(dir: string, out: { rel: string; size: number }[] = [], base = dir) {
  for (const d of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, d.name);
    if (d.isDirectory()) walk(p, out, base);
    else if (d.isFile()) out.push({ rel: relative(base, p), size: statSync(p).size });
  }
  return out;
}

const SMALL_DOCKERFILE = `FROM ${REGISTRY_NODE}/snapdeploy/debian:bookworm
COPY ${STAMP} /etc/bench-stamp
COPY www/ /srv/www/
COPY app.sh build.sh /srv/
RUN sh /srv/build.sh
CMD ["sh", "/srv/app.sh"]
`;

const SMALL_FILES: Record<string, string> = {
  "app.sh":
    '#!/bin/sh\n# Serves nothing: prints what the image holds.\necho "small app"; cat /srv/www.sha256\n',
  "build.sh":
    "#!/bin/sh\n# The build step: a checksum list of the static files.\nset -e\ncd /srv/www\nfind . -type f | sort | xargs sha256sum > /srv/www.sha256\n",
  "www/index.html":
    '<!doctype html>\n<html><head><link rel="stylesheet" href="style.css"></head>\n<body><h1>small</h1><script src="app.js"></script></body></html>\n',
  "www/style.css": "body { font-family: sans-serif; margin: 2rem; }\nh1 { color: #246; }\n",
  "www/app.js": jsText("small/app.js", 6000),
};

const DEPS_DOCKERFILE = `FROM ${REGISTRY_NODE}/snapdeploy/debian-tools:bookworm-2
WORKDIR /app
COPY ${STAMP} /etc/bench-stamp
COPY package.json ./
COPY scripts/ ./scripts/
COPY node_modules/ ./node_modules/
RUN node scripts/index-deps.js > deps-index.json
COPY src/ ./src/
RUN node scripts/build.js
CMD ["node", "dist/main.js"]
`;

/** The dependency layer's build step: real work over every vendored file, as a postinstall would. */
const INDEX_DEPS = `// Indexes the vendored packages: per package, its files, bytes, SHA-256 and deflated size.
const fs = require("node:fs");
const path = require("node:path");
const crypto = require("node:crypto");
const zlib = require("node:zlib");
const index = {};
function walk(dir, pkg) {
  for (const d of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, d.name);
    if (d.isDirectory()) walk(p, pkg);
    else if (d.isFile()) {
      const data = fs.readFileSync(p);
      const e = (index[pkg] ??= { files: 0, bytes: 0, deflated: 0, sha256: crypto.createHash("sha256") });
      e.files++;
      e.bytes += data.length;
      e.deflated += zlib.deflateRawSync(data).length;
      e.sha256.update(p).update(data);
    }
  }
}
for (const name of fs.readdirSync("node_modules")) {
  const scoped = name.startsWith("@");
  for (const sub of scoped ? fs.readdirSync(path.join("node_modules", name)) : [""]) {
    const pkg = scoped ? name + "/" + sub : name;
    const dir = path.join("node_modules", pkg);
    if (fs.statSync(dir).isDirectory()) walk(dir, pkg);
    else index[pkg] = { files: 1, bytes: fs.statSync(dir).size, deflated: 0, sha256: crypto.createHash("sha256") };
  }
}
for (const e of Object.values(index)) e.sha256 = e.sha256.digest("hex");
process.stdout.write(JSON.stringify(index, null, 1));
`;

/** The app layer's build step: bundles src/ into dist/ with a manifest of what went in. */
const BUILD_JS = `// Bundles src/ into dist/main.js and lists each module's SHA-256 in dist/manifest.json.
const fs = require("node:fs");
const path = require("node:path");
const crypto = require("node:crypto");
const files = [];
(function walk(dir) {
  for (const d of fs.readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
    const p = path.join(dir, d.name);
    if (d.isDirectory()) walk(p);
    else if (d.name.endsWith(".js")) files.push(p);
  }
})("src");
fs.mkdirSync("dist", { recursive: true });
const manifest = {};
const out = files.map((f) => {
  const data = fs.readFileSync(f, "utf8");
  manifest[f] = crypto.createHash("sha256").update(data).digest("hex");
  return "// " + f + "\\n" + data;
});
fs.writeFileSync("dist/main.js", out.join("\\n") + "\\nconsole.log('deps-heavy: ' + " + files.length + " + ' modules');\\n");
fs.writeFileSync("dist/manifest.json", JSON.stringify(manifest, null, 1));
`;

/** The app's own sources: 40 modules of 1-8 KB. */
const DEPS_SRC = Array.from({ length: 40 }, (_, i) => `src/${i < 20 ? "lib" : "routes"}/m${i}.js`);

function generateSmall(dir: string) {
  for (const [rel, data] of Object.entries(SMALL_FILES)) write(dir, rel, data);
  write(dir, "Dockerfile", SMALL_DOCKERFILE);
}

/** Writes one deps-heavy copy; returns nothing, the caller counts. */
function generateDeps(dir: string) {
  write(dir, "Dockerfile", DEPS_DOCKERFILE);
  write(
    dir,
    "package.json",
    `${JSON.stringify({ name: "deps-heavy", version: "1.0.0", private: true, main: "dist/main.js" }, null, 2)}\n`,
  );
  write(dir, "scripts/index-deps.js", INDEX_DEPS);
  write(dir, "scripts/build.js", BUILD_JS);
  for (const rel of DEPS_SRC) write(dir, rel, jsText(rel, sizeOf(rel)));
  // Real packages: everything this checkout installed, but the native executables.
  const from = join(ROOT, "node_modules");
  for (const name of readdirSync(from).sort()) {
    if (NATIVE.has(name) || name.startsWith(".")) continue;
    cpSync(join(from, name), join(dir, "node_modules", name), { recursive: true, dereference: true });
  }
  // Generated packages until the tree (with the stamps each round writes) holds DEPS_FILES files.
  const stamps = 3; // .bench-stamp, node_modules/.bench-stamp, src/.bench-stamp
  let missing = DEPS_FILES - walk(dir).length - stamps;
  if (missing < 0) throw new Error(`deps-heavy: node_modules has too many files (${-missing} over)`);
  for (let p = 0; missing > 0; p++) {
    const pkg = `node_modules/@vendored/pkg-${String(p).padStart(3, "0")}`;
    write(
      dir,
      `${pkg}/package.json`,
      `{"name":"@vendored/pkg-${p}","version":"1.${p}.0","main":"index.js"}\n`,
    );
    missing--;
    for (let k = 0; k < 24 && missing > 0; k++, missing--) {
      const rel = `${pkg}/${k === 0 ? "index.js" : `lib/part-${k}.js`}`;
      write(dir, rel, jsText(rel, sizeOf(rel)));
    }
  }
}

/** Generates (or reuses, restoring the edited file) one app, both copies. */
export function buildApp(name: "small" | "deps-heavy", log: (line: string) => void): BuildApp {
  const base = join(fixturesDir(), "build", name);
  const marker = `${base}.json`;
  // The vendored copy follows this checkout's lockfile: a new lockfile regenerates the app.
  const lock = existsSync(join(ROOT, "package-lock.json"))
    ? createHash("sha256")
        .update(readFileSync(join(ROOT, "package-lock.json")))
        .digest("hex")
    : "";
  const expected = { version: VERSION, lock: name === "deps-heavy" ? lock : "" };
  const oneFile = name === "small" ? "www/app.js" : (DEPS_SRC[7] as string);
  const oneData = name === "small" ? (SMALL_FILES["www/app.js"] as string) : jsText(oneFile, sizeOf(oneFile));
  const dirs = Object.fromEntries(TOOLS.map((t) => [t, join(base, t)])) as Record<Tool, string>;
  let meta: { files: number; bytes: number } | undefined;
  try {
    const m = JSON.parse(readFileSync(marker, "utf8"));
    if (m.version === expected.version && m.lock === expected.lock && TOOLS.every((t) => existsSync(dirs[t])))
      meta = m;
  } catch {
    // missing or unreadable: generate
  }
  if (meta) {
    for (const t of TOOLS) write(dirs[t], oneFile, oneData);
    log(`app ${name}: reusing ${base} (restored ${oneFile})`);
  } else {
    log(`app ${name}: generating ${base}`);
    rmSync(base, { recursive: true, force: true });
    for (const t of TOOLS) {
      if (name === "small") generateSmall(dirs[t]);
      else generateDeps(dirs[t]);
    }
    stampRound({ name, dirs } as BuildApp, "generated");
    const files = walk(dirs.snapdeploy);
    meta = { files: files.length, bytes: files.reduce((n, f) => n + f.size, 0) };
    writeFileSync(marker, JSON.stringify({ ...expected, ...meta }));
  }
  return { name, dirs, ...meta, oneFile, writtenAt: Date.now() };
}

/**
 * Makes the next builds of each copy new to the Docker daemon's build cache and to the
 * registry: every copy gets a stamp unique to this round and tool, in a file the Dockerfile
 * copies first (so every later step's cache key changes) and in each folder a big layer copies
 * (so no layer's content, hence no blob, was pushed before).
 */
export function stampRound(app: Pick<BuildApp, "name" | "dirs">, round: string) {
  for (const t of TOOLS) {
    const folders = app.name === "small" ? ["", "www"] : ["", "node_modules", "src"];
    for (const f of folders) write(app.dirs[t], join(f, STAMP), `${round} ${t}\n`);
  }
}

/** Overwrites the first 32 bytes of the one file in both copies: same size, new content. */
export function editOneFile(app: BuildApp, nonce: string) {
  for (const t of TOOLS) {
    const fd = openSync(join(app.dirs[t], app.oneFile), "r+");
    try {
      const stamp = `// edit ${nonce}`.padEnd(31).slice(0, 31);
      writeSync(fd, Buffer.from(`${stamp}\n`), 0, 32, 0);
    } finally {
      closeSync(fd);
    }
  }
  app.writtenAt = Date.now();
}

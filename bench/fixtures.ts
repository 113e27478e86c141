/**
 * Working trees for the benchmarks. Generated trees come from a seeded PRNG, one seed per
 * file, so every run and every machine benchmarks the same bytes, and any single file can be
 * regenerated on its own. A tree is generated once under bench/.fixtures/ and reused while
 * its marker file matches; the files the scenarios edit are restored before each run.
 */
import { closeSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync, writeSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { journalEdits } from "./real-trees.js";

export const FIXTURES = fileURLToPath(new URL("./.fixtures", import.meta.url));

/**
 * Creates the fixtures folder. Its nested Biome configuration keeps the linter out of the
 * generated trees (the project's biome.json covers bench/**, and Biome does not read .gitignore).
 */
export function fixturesDir(): string {
  mkdirSync(FIXTURES, { recursive: true });
  writeFileSync(join(FIXTURES, "biome.json"), '{ "root": false, "files": { "includes": ["!**"] } }\n');
  return FIXTURES;
}

export interface Fixture {
  name: string;
  dir: string;
  /** Files that a sync sends (everything but .git and what .dockerignore leaves out), and their bytes. */
  files: number;
  bytes: number;
  /** Symlinks a sync sends (a cold sync counts them as added, beside the files). */
  symlinks?: number;
  /** What .dockerignore and the .git rule leave out, as rsync patterns anchored at the tree's root. */
  excludes: string[];
  /** The file the "one file changed" scenario edits (about 10 KB where the tree has such files). */
  oneFile: string;
  /** The files the "1% changed" scenario edits. */
  onePercent: string[];
  /** When the tree was last written; the scan cache does not trust files younger than 2 s. */
  writtenAt: number;
  /** Real trees: where editFiles keeps the original bytes of what it overwrites (bench/real-trees.ts). */
  journal?: string;
}

interface Spec {
  seed: number;
  files: number;
  /** Source-like text files: size drawn log-uniformly from [min, max] bytes. */
  text: [number, number];
  /** Every `every`-th file is incompressible binary of [min, max] bytes. */
  binary?: { every: number; size: [number, number] };
  perDir: number;
}

/** Bump when generation changes, so old trees are regenerated. */
const VERSION = 1;
const SPECS: Record<string, Spec> = {
  // 9,940 text files of 1-20 KB (~62 MB) and 60 binaries of 100 KB-2 MB (~38 MB).
  "10k": {
    seed: 10,
    files: 10_000,
    text: [1 << 10, 20 << 10],
    binary: { every: 166, size: [100 << 10, 2 << 20] },
    perDir: 20,
  },
  // 100,000 text files of 0.5-2 KB (~108 MB).
  "100k": { seed: 100, files: 100_000, text: [512, 2 << 10], perDir: 20 },
};
/** Never sent: .git, and what the generated .dockerignore names. */
const DOCKERIGNORE = "*.log\nbuild/\n";
const GENERATED_EXCLUDES = ["/.git", "/build", "/*.log"];
const TEXT_EXT = [".ts", ".ts", ".js", ".json", ".md", ".css", ".py", ".go"];
const BINARY_EXT = [".png", ".wasm", ".bin", ".woff2"];
const WORDS = (
  "const let return function import export from if else for while async await new this class " +
  "interface type string number boolean null undefined true false value result error options " +
  "config request response handler context items index length push map filter reduce => { } ( ) ; ="
).split(" ");

/** mulberry32: a small, fast 32-bit PRNG; plenty for test data. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Path and content of file `i` of a generated tree; a pure function of (spec, i). */
function generatedFile(spec: Spec, i: number): { path: string; data: Buffer } {
  const rnd = prng(Math.imul(spec.seed, 0x9e3779b1) ^ Math.imul(i + 1, 0x85ebca6b));
  const logUniform = ([min, max]: [number, number]) => Math.round(min * (max / min) ** rnd());
  const binary = spec.binary !== undefined && i % spec.binary.every === spec.binary.every >> 1;
  // Directories nest by the base-8 digits of the directory number: src/d1, src/d1/d5, ...
  const dir = [
    "src",
    ...Math.floor(i / spec.perDir)
      .toString(8)
      .split("")
      .map((d) => `d${d}`),
  ];
  const ext = binary ? BINARY_EXT[i % BINARY_EXT.length] : TEXT_EXT[i % TEXT_EXT.length];
  const path = `${dir.join("/")}/f${i}${ext}`;
  if (binary && spec.binary) {
    const data = Buffer.allocUnsafe(logUniform(spec.binary.size));
    for (let o = 0; o + 4 <= data.length; o += 4) data.writeUInt32LE((rnd() * 4294967296) >>> 0, o);
    data.fill(7, data.length & ~3);
    return { path, data };
  }
  const size = logUniform(spec.text);
  const lines: string[] = [];
  let n = 0;
  while (n < size) {
    const words = Array.from(
      { length: 3 + Math.floor(rnd() * 10) },
      () => WORDS[Math.floor(rnd() * WORDS.length)],
    );
    const line = `${" ".repeat(2 * Math.floor(rnd() * 4))}${words.join(" ")}\n`;
    lines.push(line);
    n += line.length;
  }
  return { path, data: Buffer.from(lines.join("").slice(0, size)) };
}

const madeDirs = new Set<string>();

function writeFile(root: string, rel: string, data: Buffer | string) {
  const dir = dirname(join(root, rel));
  if (!madeDirs.has(dir)) mkdirSync(dir, { recursive: true });
  madeDirs.add(dir);
  writeFileSync(join(root, rel), data);
}

/** Generates (or reuses, restoring its edited files) one of the SPECS trees. */
export function generatedFixture(name: string, log: (line: string) => void): Fixture {
  const spec = SPECS[name];
  if (!spec) throw new Error(`no fixture "${name}"; known: ${Object.keys(SPECS).join(", ")}`);
  const dir = join(fixturesDir(), name);
  const marker = `${dir}.json`;
  // One file of about 10 KB (or the largest near the start), and every 100th file.
  const near10k = Array.from({ length: Math.min(500, spec.files) }, (_, i) => ({
    i,
    off: Math.abs(generatedFile(spec, i).data.length - 10240),
  })).filter(({ i }) => !(spec.binary && i % spec.binary.every === spec.binary.every >> 1));
  const one = near10k.reduce((a, b) => (b.off < a.off ? b : a)).i;
  const pct = Array.from({ length: spec.files / 100 }, (_, k) => k * 100 + 50);
  const expected = { version: VERSION, spec };
  let meta: { files: number; bytes: number } | undefined;
  try {
    const m = JSON.parse(readFileSync(marker, "utf8"));
    if (JSON.stringify({ version: m.version, spec: m.spec }) === JSON.stringify(expected)) meta = m;
  } catch {
    // missing or unreadable: generate
  }
  if (meta) {
    for (const i of [one, ...pct]) writeFile(dir, generatedFile(spec, i).path, generatedFile(spec, i).data);
    // What the "dependency added" scenario added (generated trees have no node_modules of their own).
    rmSync(join(dir, "node_modules"), { recursive: true, force: true });
    log(`fixture ${name}: reusing ${dir} (restored ${pct.length + 1} edited files)`);
  } else {
    log(`fixture ${name}: generating ${spec.files} files in ${dir}`);
    rmSync(dir, { recursive: true, force: true });
    let bytes = 0;
    for (let i = 0; i < spec.files; i++) {
      const f = generatedFile(spec, i);
      writeFile(dir, f.path, f.data);
      bytes += f.data.length;
    }
    writeFile(dir, "Dockerfile", "FROM scratch\nCOPY . /app\n");
    writeFile(dir, ".dockerignore", DOCKERIGNORE);
    bytes += 25 + DOCKERIGNORE.length;
    // Never sent: the .git directory, build output and logs that .dockerignore names.
    writeFile(dir, ".git/HEAD", "ref: refs/heads/main\n");
    writeFile(dir, ".git/config", "[core]\n\trepositoryformatversion = 0\n");
    writeFile(dir, ".git/objects/pack/pack-0.pack", Buffer.alloc(1 << 20, 1));
    for (let k = 0; k < 5; k++) writeFile(dir, `build/out-${k}.bin`, Buffer.alloc(256 << 10, k));
    writeFile(dir, "debug.log", "noise\n".repeat(1000));
    meta = { files: spec.files + 2, bytes };
    writeFileSync(marker, JSON.stringify({ ...expected, ...meta }));
  }
  const path = (i: number) => generatedFile(spec, i).path;
  return {
    name,
    dir,
    ...meta,
    excludes: GENERATED_EXCLUDES,
    oneFile: path(one),
    onePercent: pct.map(path),
    writtenAt: Date.now(),
  };
}

/**
 * Edits files in place: their first bytes become a stamp unique to `nonce`, so the content
 * is new to every store while the size stays the same.
 */
export function editFiles(f: Fixture, paths: string[], nonce: string): void {
  if (f.journal) journalEdits(f.journal, f.dir, paths);
  paths.forEach((rel, k) => {
    const fd = openSync(join(f.dir, rel), "r+");
    try {
      writeSync(fd, Buffer.from(`/* edit ${nonce}.${k} */`.padEnd(32).slice(0, 32)), 0, 32, 0);
    } finally {
      closeSync(fd);
    }
  });
  f.writtenAt = Date.now();
}

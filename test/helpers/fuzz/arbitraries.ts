/** What the hostile client of the fuzz sessions sends (see agent.ts): fast-check arbitraries. */
import { createHash } from "node:crypto";
import fc from "fast-check";
import { encodeFrame, FRAME_JSON } from "../../../src/protocol/frames.js";

export const sha256 = (b: Buffer | string) => createHash("sha256").update(b).digest("hex");

// ── What the client sends ────────────────────────────────────────────────────────

/** Names of users and projects: mostly valid (so operations get further), some hostile. */
const name = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom("alice", "bob", "p", "web-1") },
  {
    weight: 2,
    arbitrary: fc.constantFrom(".", "..", "", "a/b", "../outside", "/etc", "a\0b", "A", "x".repeat(64), "-a"),
  },
  { weight: 1, arbitrary: fc.oneof(fc.string(), fc.integer(), fc.constant(null), fc.constant(undefined)) },
);

/** Path segments: ordinary names, and everything a path must not be made of. */
const segment = fc.oneof(
  { weight: 8, arbitrary: fc.constantFrom("a", "b", "src", "Dockerfile", "x.txt", "d", "lnk") },
  {
    weight: 2,
    arbitrary: fc.constantFrom(
      "..",
      ".",
      "",
      "\0",
      "a\nb",
      "a\rb",
      "n".repeat(256),
      "é".repeat(128),
      "%2e%2e",
      "~",
      "a\\..\\b",
    ),
  },
  { weight: 1, arbitrary: fc.string({ maxLength: 8 }) },
);

const relPath = fc.array(segment, { minLength: 1, maxLength: 4 }).map((s) => s.join("/"));
/** Absolute paths aim at the sentinel: a write there would be seen. */
const hostilePath = (outside: string) =>
  fc.oneof(
    { weight: 6, arbitrary: relPath },
    {
      weight: 1,
      arbitrary: fc.constantFrom(
        `${outside}/pwn`,
        "/tmp/pwn",
        "a/".repeat(1100),
        `${"../".repeat(6)}outside/pwn`,
      ),
    },
    { weight: 1, arbitrary: fc.oneof(fc.integer(), fc.constant(null), fc.string()) },
  );

/** Link targets: inside, above, absolute, through other links (chains), cycles. */
const linkTarget = (outside: string) =>
  fc.oneof(
    fc.constantFrom("a", "b", "d", "lnk", "d/lnk", ".", "x.txt", "Dockerfile"),
    fc.constantFrom("..", "../..", "d/..", "d/../..", "lnk/..", "lnk/../..", "d/lnk/../../.."),
    fc.constantFrom(outside, `${outside}/marker`, "/", "/etc/passwd", "a\0b", ""),
    fc.integer({ min: 1, max: 7 }).map((n) => `${"../".repeat(n)}outside`),
    fc.string({ maxLength: 12 }),
  );

export const CONTENTS = ["", "hello\n", "FROM scratch\n", "x".repeat(3000)];
/** Contents for files; `hash`/`size` may lie about them. */
const content = fc.constantFrom(...CONTENTS);

type RawEntry = Record<string, unknown>;

const mode = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom(0o644, 0o755, 0o600, 0o555, 0o777) },
  {
    weight: 1,
    arbitrary: fc.oneof(
      fc.constantFrom(0o4755, 0o7777, -1, 0o10000, 1.5, Number.NaN),
      fc.integer(),
      fc.string({ maxLength: 3 }),
    ),
  },
);

const entry = (outside: string): fc.Arbitrary<RawEntry> =>
  fc.oneof(
    { weight: 3, arbitrary: fc.record({ path: hostilePath(outside), type: fc.constant("dir"), mode }) },
    {
      weight: 4,
      arbitrary: fc.record({
        path: hostilePath(outside),
        type: fc.constant("file"),
        mode,
        content,
        lie: fc.constantFrom("none", "none", "none", "hash", "size", "hugeSize", "negSize", "noHash"),
      }),
    },
    {
      weight: 3,
      arbitrary: fc.record({
        path: hostilePath(outside),
        type: fc.constant("symlink"),
        mode: fc.constant(0o777),
        target: linkTarget(outside),
      }),
    },
    {
      weight: 1,
      arbitrary: fc.record({
        path: hostilePath(outside),
        type: fc.oneof(fc.constantFrom("fifo", "hardlink", "device", ""), fc.integer()),
        mode,
      }),
    },
  );

/** Entries an honest scan could produce, but for link targets that may climb out through chains. */
const cleanSegment = fc.constantFrom("a", "b", "src", "Dockerfile", "x.txt", "d", "lnk");
const cleanPath = fc.array(cleanSegment, { minLength: 1, maxLength: 3 }).map((s) => s.join("/"));
const cleanEntry = (outside: string): fc.Arbitrary<RawEntry> =>
  fc.oneof(
    {
      weight: 2,
      arbitrary: fc.record({
        path: cleanPath,
        type: fc.constant("dir"),
        mode: fc.constantFrom(0o755, 0o555, 0o700),
      }),
    },
    {
      weight: 4,
      arbitrary: fc.record({
        path: cleanPath,
        type: fc.constant("file"),
        mode: fc.constantFrom(0o644, 0o755, 0o600, 0o4755),
        content,
        lie: fc.constant("none"),
      }),
    },
    {
      weight: 2,
      arbitrary: fc.record({
        path: cleanPath,
        type: fc.constant("symlink"),
        mode: fc.constant(0o777),
        target: fc.oneof(
          {
            weight: 3,
            arbitrary: fc.constantFrom(
              "a",
              "b",
              "d",
              "lnk",
              "d/lnk",
              "x.txt",
              "Dockerfile",
              "../a",
              "d/../b",
            ),
          },
          { weight: 1, arbitrary: linkTarget(outside) },
        ),
      }),
    },
  );

/** The manifest as sent: entries with sizes/hashes filled in (or lied about), usually sorted. */
export function materialize(
  raw: RawEntry[],
  sorted: boolean,
  withParents: boolean,
): Record<string, unknown>[] {
  const out: Record<string, unknown>[] = [];
  const seen = new Set<string>();
  const add = (e: Record<string, unknown>) => {
    const key = String(e.path);
    if (seen.has(key)) return;
    seen.add(key);
    out.push(e);
  };
  for (const r of raw) {
    if (withParents && typeof r.path === "string") {
      const parts = r.path.split("/");
      for (let i = 1; i < parts.length; i++)
        add({ path: parts.slice(0, i).join("/"), type: "dir", mode: 0o755, size: 0 });
    }
    if (r.type === "file") {
      const c = String(r.content);
      const e: Record<string, unknown> = {
        path: r.path,
        type: "file",
        mode: r.mode,
        size: Buffer.byteLength(c),
        hash: sha256(c),
      };
      if (r.lie === "hash") e.hash = sha256(`${c}!`);
      if (r.lie === "size") e.size = Buffer.byteLength(c) + 1;
      if (r.lie === "hugeSize") e.size = 2 ** 53 - 1;
      if (r.lie === "negSize") e.size = -1;
      if (r.lie === "noHash") delete e.hash;
      add(e);
    } else if (r.type === "symlink") {
      add({ path: r.path, type: "symlink", mode: 0o777, size: String(r.target).length, target: r.target });
    } else add({ path: r.path, type: r.type, mode: r.mode, size: 0 });
  }
  if (sorted)
    out.sort((a, b) => (String(a.path) < String(b.path) ? -1 : String(a.path) > String(b.path) ? 1 : 0));
  return out;
}

/** How the manifest's bytes are sent. */
const manifestWire = fc.constantFrom(
  "ok",
  "ok",
  "ok",
  "ok",
  "truncated",
  "garbage",
  "notJson",
  "notList",
  "abort",
  "other",
);
/** How the blob stream is sent. */
const blobWire = fc.constantFrom(
  "ok",
  "ok",
  "ok",
  "ok",
  "deflated",
  "truncated",
  "unasked",
  "wrongContent",
  "badBatch",
  "abort",
  "missing",
  "split",
);

const ref = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.constantFrom(
      "127.0.0.1:1/team/app:snap-0123456789abcdef0123456789abcdef",
      "localhost:1/app:snap-abc",
    ),
  },
  {
    weight: 2,
    arbitrary: fc.constantFrom(
      "app:latest",
      "127.0.0.1:1/UPPER:tag",
      "127.0.0.1:1/a/../b:t",
      "127.0.0.1:1/app:../x",
      "127.0.0.1:1/app:t\0",
      "127.0.0.1:1/app:t,push=false",
      "127.0.0.1:1/app:t name=x",
      "127.0.0.1:1//app:t",
      "",
      `127.0.0.1:1/app:${"t".repeat(200)}`,
    ),
  },
  { weight: 1, arbitrary: fc.oneof(fc.string(), fc.integer(), fc.constant(null)) },
);

const dockerfile = (outside: string) =>
  fc.oneof(
    { weight: 3, arbitrary: fc.constantFrom("Dockerfile", undefined) },
    fc.constantFrom("d/Dockerfile", "lnk", "d", "x.txt", "a/../Dockerfile"),
    fc.constantFrom(
      "../Dockerfile",
      "../../../../outside/marker",
      `${outside}/marker`,
      "/etc/passwd",
      "d/../../Dockerfile",
      "./Dockerfile",
      "Dockerfile\0",
      "",
    ),
    fc.oneof(fc.string({ maxLength: 10 }), fc.integer()),
  );

const secrets = fc.oneof(
  { weight: 3, arbitrary: fc.constant(undefined) },
  fc.array(
    fc.record({
      id: fc.oneof(
        fc.constantFrom("npmrc", "token", ".", "..", "../x", "a/b", "", "x".repeat(65), "a\0", ".hidden"),
        fc.string({ maxLength: 6 }),
        fc.integer(),
      ),
      data: fc.oneof(fc.base64String({ maxLength: 16 }), fc.string({ maxLength: 8 }), fc.integer()),
    }),
    { maxLength: 3 },
  ),
  fc.oneof(fc.string(), fc.integer(), fc.constant({ id: "x" })),
);

const stringMap = fc.oneof(
  { weight: 3, arbitrary: fc.constant(undefined) },
  fc.dictionary(fc.string({ maxLength: 6 }), fc.string({ maxLength: 6 }), { maxKeys: 3 }),
  fc.constant({ fail: "1" }),
  fc.oneof(fc.string(), fc.integer(), fc.constant([1, 2]), fc.constant({ a: { b: 1 } })),
);

export type Op =
  | {
      op: "sync";
      user: unknown;
      project: unknown;
      entries: RawEntry[];
      sorted: boolean;
      parents: boolean;
      digest: "right" | "wrong" | "missing";
      manifest: string;
      blobs: string;
    }
  | { op: "check"; user: unknown; project: unknown; ref: unknown; settings: unknown }
  | {
      op: "build";
      user: unknown;
      project: unknown;
      ref: unknown;
      dockerfile: unknown;
      secrets: unknown;
      buildArgs: unknown;
      labels: unknown;
      target: unknown;
      manifest: "current" | "other";
      last: boolean;
    }
  | { op: "status" }
  | { op: "ping" }
  | { op: "message"; msg: unknown };

const opArb = (outside: string): fc.Arbitrary<Op> =>
  fc.oneof(
    {
      weight: 5,
      arbitrary: fc.record({
        op: fc.constant("sync" as const),
        user: name,
        project: name,
        entries: fc.array(entry(outside), { maxLength: 8 }),
        sorted: fc.boolean(),
        parents: fc.boolean(),
        digest: fc.constantFrom(
          "right" as const,
          "right" as const,
          "right" as const,
          "wrong" as const,
          "missing" as const,
        ),
        manifest: manifestWire,
        blobs: blobWire,
      }),
    },
    {
      // Mostly well-formed: gets past validation to the blob store and the workspace trees.
      weight: 6,
      arbitrary: fc.record({
        op: fc.constant("sync" as const),
        user: fc.constantFrom("alice", "bob"),
        project: fc.constantFrom("p", "q"),
        entries: fc
          .tuple(fc.boolean(), fc.array(cleanEntry(outside), { maxLength: 10 }))
          .map(([df, es]) =>
            df
              ? [
                  { path: "Dockerfile", type: "file", mode: 0o644, content: "FROM scratch\n", lie: "none" },
                  ...es,
                ]
              : es,
          ),
        sorted: fc.constant(true),
        parents: fc.constant(true),
        digest: fc.constant("right" as const),
        manifest: fc.constantFrom("ok", "ok", "ok", "ok", "ok", "ok", "truncated", "abort"),
        blobs: fc.constantFrom(
          "ok",
          "ok",
          "ok",
          "ok",
          "deflated",
          "split",
          "truncated",
          "wrongContent",
          "missing",
        ),
      }),
    },
    {
      weight: 2,
      arbitrary: fc.record({
        op: fc.constant("check" as const),
        user: name,
        project: name,
        ref,
        settings: stringMap,
      }),
    },
    {
      weight: 4,
      arbitrary: fc.record({
        op: fc.constant("build" as const),
        user: fc.oneof(
          { weight: 3, arbitrary: fc.constantFrom("alice", "bob") },
          { weight: 1, arbitrary: name },
        ),
        project: fc.oneof(
          { weight: 3, arbitrary: fc.constantFrom("p", "q") },
          { weight: 1, arbitrary: name },
        ),
        ref,
        dockerfile: dockerfile(outside),
        secrets,
        buildArgs: stringMap,
        labels: stringMap,
        target: fc.oneof(fc.constant(undefined), fc.string({ maxLength: 6 }), fc.integer()),
        manifest: fc.constantFrom("current" as const, "current" as const, "other" as const),
        /** The workspace the script synced last, rather than user/project. */
        last: fc.boolean(),
      }),
    },
    {
      // Well-formed but for one thing at most: reaches the builder (the stand-in).
      weight: 4,
      arbitrary: fc.record({
        op: fc.constant("build" as const),
        user: fc.constant("alice"),
        project: fc.constant("p"),
        ref: fc.oneof(
          { weight: 4, arbitrary: fc.constant("127.0.0.1:1/team/app:snap-0123456789abcdef0123456789abcdef") },
          { weight: 1, arbitrary: ref },
        ),
        dockerfile: fc.oneof(
          { weight: 4, arbitrary: fc.constantFrom("Dockerfile", undefined) },
          { weight: 1, arbitrary: dockerfile(outside) },
        ),
        secrets: fc.oneof(
          { weight: 2, arbitrary: fc.constant(undefined) },
          {
            weight: 2,
            arbitrary: fc.constant([
              { id: "npmrc", data: "dG9rZW4=" },
              { id: ".hidden", data: "" },
            ]),
          },
          { weight: 1, arbitrary: secrets },
        ),
        buildArgs: fc.oneof(
          { weight: 3, arbitrary: fc.constant(undefined) },
          { weight: 1, arbitrary: stringMap },
        ),
        labels: fc.oneof(
          { weight: 3, arbitrary: fc.constant(undefined) },
          { weight: 1, arbitrary: stringMap },
        ),
        target: fc.constant(undefined),
        manifest: fc.constant("current" as const),
        last: fc.constant(true),
      }),
    },
    { weight: 1, arbitrary: fc.constant({ op: "status" as const }) },
    { weight: 1, arbitrary: fc.constant({ op: "ping" as const }) },
    {
      weight: 2,
      arbitrary: fc.record({
        op: fc.constant("message" as const),
        msg: fc.oneof(
          fc.record({
            t: fc.constantFrom(
              "bogus",
              "manifest-end",
              "blobs-end",
              "abort",
              "hello",
              "need",
              "error",
              "__proto__",
              "constructor",
            ),
          }),
          fc.record({ t: fc.string({ maxLength: 8 }) }),
          fc.jsonValue({ maxDepth: 2 }),
        ),
      }),
    },
  );

export interface Script {
  hello: "ok" | "wrongVersion" | "none" | "garbage";
  ops: Op[];
  /** Bytes sent after the operations (random frames, partial headers), then the end. */
  tail: Uint8Array[];
  end: "bye" | "end" | "destroy";
  /** A keepalive before each operation (the agent answers it; no operation sees it). */
  keepalives: boolean;
}

export const scriptArb = (outside: string): fc.Arbitrary<Script> =>
  fc.record({
    hello: fc.constantFrom(
      "ok" as const,
      "ok" as const,
      "ok" as const,
      "ok" as const,
      "ok" as const,
      "wrongVersion" as const,
      "none" as const,
      "garbage" as const,
    ),
    ops: fc.array(opArb(outside), { minLength: 1, maxLength: 5 }),
    tail: fc.array(
      fc.oneof(
        fc.uint8Array({ maxLength: 40 }),
        fc.constant(new Uint8Array([1, 0xff, 0xff, 0xff, 0xff])),
        fc.constant(new Uint8Array([2, 0, 0, 0, 9, 1])),
        fc.constant(new Uint8Array([7, 0, 0, 0, 0])),
        fc.constant(new Uint8Array(encodeFrame(FRAME_JSON, Buffer.from('{"t":5}')))),
        fc.constant(new Uint8Array(encodeFrame(FRAME_JSON, Buffer.from("not json")))),
      ),
      { maxLength: 2 },
    ),
    end: fc.constantFrom("bye" as const, "end" as const, "destroy" as const),
    keepalives: fc.boolean(),
  });

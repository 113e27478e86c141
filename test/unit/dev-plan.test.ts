import assert from "node:assert/strict";
import { test } from "node:test";
import { compileRules, type DevRules, planBatch } from "../../src/dev/plan.js";

const rules: DevRules = {
  sync: [
    { src: "app/**", dest: "/app" },
    { src: "static", dest: "/srv/static" },
    { src: "main.py", dest: "/srv/main.py" },
  ],
  rebuildOn: ["requirements.txt", "deps/**"],
  run: [{ cmd: "touch /tmp/reload", on: ["*.py"] }, { cmd: "echo always" }],
};
const compiled = compileRules(rules, "Dockerfile");
const file = () => "file" as const;

test("sync rules map tree paths like COPY <base> <dest>", () => {
  assert.equal(compiled.destOf("app/x.py"), "/app/x.py");
  assert.equal(compiled.destOf("app/sub/y.txt"), "/app/sub/y.txt");
  assert.equal(compiled.destOf("static/css/a.css"), "/srv/static/css/a.css");
  assert.equal(compiled.destOf("main.py"), "/srv/main.py");
  assert.equal(compiled.destOf("other.py"), undefined);
  assert.equal(
    compiled.destOf("staticfoo"),
    undefined,
    "a literal directory is not a prefix of a longer name",
  );
  assert.equal(compiled.destOf("application/x"), undefined);
});

test("a whole-tree rule ('.' or '**') maps every path below dest", () => {
  for (const src of [".", "**", "./"]) {
    const c = compileRules({ sync: [{ src, dest: "/w" }], rebuildOn: [], run: [] }, "Dockerfile");
    assert.equal(c.destOf("a/b.py"), "/w/a/b.py", src);
    assert.equal(c.destOf(".env.example"), "/w/.env.example", src);
  }
});

test("covered changes are a live update with the matching run commands", () => {
  const plan = planBatch(
    compiled,
    true,
    { changed: ["app/x.py", "static/a.css"], deleted: ["app/old.py"] },
    file,
  );
  assert.deepEqual(plan, {
    kind: "live",
    put: [
      { rel: "app/x.py", dest: "/app/x.py" },
      { rel: "static/a.css", dest: "/srv/static/a.css" },
    ],
    remove: [{ rel: "app/old.py", dest: "/app/old.py" }],
    run: ["touch /tmp/reload", "echo always"],
  });
  const css = planBatch(compiled, true, { changed: ["static/a.css"], deleted: [] }, file);
  assert.equal(css.kind === "live" && css.run.join(","), "echo always", "*.py does not match a .css file");
});

test("a rebuild rule, the Dockerfile or an uncovered path forces a rebuild, naming why", () => {
  const why = (changed: string[], deleted: string[] = []) => {
    const p = planBatch(compiled, true, { changed, deleted }, file);
    return p.kind === "rebuild" ? p.reason : "live";
  };
  assert.match(
    why(["app/x.py", "requirements.txt"]),
    /^requirements\.txt changed \(dev\.rebuildOn: requirements\.txt\)/,
  );
  assert.match(
    why(["sub/requirements.txt"]),
    /dev\.rebuildOn/,
    "a glob without a slash matches at any depth",
  );
  assert.match(why(["deps/lock"]), /deps\/\*\*/);
  assert.match(why(["Dockerfile"]), /the Dockerfile/);
  assert.match(why([".dockerignore"]), /\.dockerignore changed/);
  assert.match(why(["README.md"]), /README\.md changed \(not covered by a dev\.sync rule\)/);
  assert.match(why([], ["README.md"]), /README\.md was deleted/);
  assert.match(planBatch(compiled, false, { changed: ["app/x.py"], deleted: [] }, file).kind, /rebuild/);
});

test("directories are skipped, symlinks and special files rebuild", () => {
  const kinds: Record<string, "file" | "dir" | "symlink" | "other"> = { "app/d": "dir", "app/l": "symlink" };
  const kindOf = (rel: string) => kinds[rel] ?? "file";
  const dirOnly = planBatch(compiled, true, { changed: ["app/d", "app/d/f.py"], deleted: [] }, kindOf);
  assert.deepEqual(dirOnly.kind === "live" && dirOnly.put, [{ rel: "app/d/f.py", dest: "/app/d/f.py" }]);
  const link = planBatch(compiled, true, { changed: ["app/l"], deleted: [] }, kindOf);
  assert.match(link.kind === "rebuild" ? link.reason : "", /symlink/);
});

test("a rule's dest cannot be left through the mapping", () => {
  // Tree paths never hold '..' segments (the watcher and scan give normalized relative
  // paths); even so, a crafted one maps to nothing rather than outside dest.
  assert.equal(compiled.destOf("app/../../etc/passwd"), undefined);
});

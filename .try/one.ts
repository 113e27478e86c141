import { startAgent, runScript } from "../test/helpers/fuzz/run.js";
const a = await startAgent();
try {
  const o = await runScript(a, { hello: "ok", tail: [], end: "bye", ops: [
    { op: "sync", user: "alice", project: "p", entries: [{ path: "Dockerfile", type: "file", mode: 0o644, content: "FROM scratch\n", lie: "none" }], sorted: true, parents: true, digest: "right", manifest: "ok", blobs: "ok" },
    { op: "build", user: "x", project: "y", last: true, manifest: "current", ref: "127.0.0.1:1/app:snap-1", dockerfile: undefined, secrets: undefined, buildArgs: undefined, labels: undefined, target: undefined },
  ]});
  console.log(o);
} finally { await a.stop(); }

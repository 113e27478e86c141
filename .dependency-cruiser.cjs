/**
 * The layers' rules, checked by `npm run check` (dependency-cruiser).
 * cli ─▶ pipeline ─▶ stages (context, sync, deploy, run, server, …) ─▶ kube, transport, protocol ─▶ errors, util
 * The agent (the build-server daemon) shares only the protocol with the CLI side; the protocol
 * (manifest, path rules, messages, frames) imports nothing but util and Node.js builtins.
 */
module.exports = {
  forbidden: [
    {
      name: "no-circular",
      severity: "error",
      comment: "A cycle makes both modules one: break it by moving the shared part down.",
      from: {},
      to: { circular: true },
    },
    {
      name: "cli-is-the-top",
      severity: "error",
      comment: "Only the CLI imports the CLI: commands parse flags and render; nothing below knows about them.",
      from: { path: "^src/", pathNot: "^src/cli/" },
      to: { path: "^src/cli/" },
    },
    {
      name: "pipeline-above-stages",
      severity: "error",
      comment: "The pipeline decides and calls the stages; a stage never calls back into the pipeline.",
      from: { path: "^src/", pathNot: "^src/(cli|pipeline)/" },
      to: { path: "^src/pipeline/" },
    },
    {
      name: "agent-shares-only-the-protocol",
      severity: "error",
      comment:
        "The agent (bundled on its own for the build-server image) shares only the protocol with the CLI side: it imports src/agent, src/protocol, src/util and Node.js builtins, nothing else (no npm packages either).",
      from: { path: "^src/agent/" },
      to: { dependencyTypesNot: ["core"], pathNot: "^src/(agent|protocol|util)/" },
    },
    {
      name: "protocol-stands-alone",
      severity: "error",
      comment:
        "The protocol is the contract both sides build on: it imports only itself, src/util and Node.js builtins.",
      from: { path: "^src/protocol/" },
      to: { dependencyTypesNot: ["core"], pathNot: "^src/(protocol|util)/" },
    },
    {
      name: "no-unresolvable",
      severity: "error",
      from: {},
      to: { couldNotResolve: true },
    },
  ],
  options: {
    doNotFollow: { path: "node_modules" },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: "tsconfig.json" },
    enhancedResolveOptions: {
      exportsFields: ["exports"],
      conditionNames: ["import", "require", "node", "default", "types"],
      extensions: [".ts", ".js", ".mjs", ".cjs", ".d.ts"],
    },
  },
};

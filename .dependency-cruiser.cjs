/**
 * The layers' rules, checked by `npm run check` (dependency-cruiser).
 * cli ─▶ pipeline ─▶ stages (context, sync, deploy, run, server, …) ─▶ kube, transport, protocol ─▶ errors, util
 * The agent (the build-server daemon) shares only the protocol with the CLI side.
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

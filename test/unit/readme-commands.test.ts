/**
 * Every snapdeploy command line the docs show names subcommands and flags the CLI has: the
 * lines are taken from README.md's and docs/*.md's code blocks, code spans and tables and
 * resolved against the real program (buildProgram, the commander tree bin/snapdeploy.cjs
 * runs), so a renamed flag or command breaks this test. Nothing is executed.
 */
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { test } from "node:test";
import type { Command } from "commander";
import { buildProgram } from "../../src/cli/main.js";
import { codeBlocks, codeSpans, markdownTables, prose } from "../helpers/markdown.js";

const ROOT = new URL("../../", import.meta.url).pathname;
const FILES = [
  "README.md",
  ...readdirSync(`${ROOT}docs`)
    .filter((f) => f.endsWith(".md"))
    .map((f) => `docs/${f}`),
];
const read = (f: string) => readFileSync(`${ROOT}${f}`, "utf8");

/** `snapdeploy ...` command lines in a document: from shell blocks (comments dropped) and code spans. */
export function commandLines(md: string): string[] {
  const lines: string[] = [];
  for (const b of codeBlocks(md)) {
    if (!["sh", "bash", "console", "shell", ""].includes(b.lang)) continue;
    for (const raw of b.text.split("\n")) {
      const line = raw
        .replace(/^\s*\$\s+/, "")
        .replace(/\s+#.*$/, "")
        .trim();
      if (/^snapdeploy(\s|$)/.test(line)) lines.push(line);
    }
  }
  for (const span of codeSpans(prose(md))) if (/^snapdeploy(\s|$)/.test(span)) lines.push(span);
  for (const t of markdownTables(md)) {
    if (t.header[0]?.toLowerCase() === "command")
      for (const row of t.rows) lines.push(...firstCellCommands(row[0] ?? ""));
  }
  return [...new Set(lines)];
}

/** Words of a documented command line: `[--to N]` and `[-f]` are optional flags, `/` separates alternatives. */
function words(line: string): string[] {
  return line
    .replace(/[[\]]/g, " ")
    .split(/\s+/)
    .filter((w) => w && w !== "…" && w !== "...");
}

const findSub = (c: Command, name: string) =>
  c.commands.find((s) => s.name() === name || s.aliases().includes(name));

function findOption(c: Command, flag: string) {
  for (let cur: Command | null = c; cur; cur = cur.parent) {
    const o = cur.options.find((x) => x.long === flag || x.short === flag);
    if (o) return o;
  }
  if (flag === "-h" || flag === "--help") return { required: false, optional: false };
  return undefined;
}

/** Resolves a command line against the program: the commands it names, or the problems found. */
export function resolve(program: Command, line: string): { commands: Command[]; problems: string[] } {
  const w = words(line).slice(1);
  const problems: string[] = [];
  let cmd = program;
  let i = 0;
  const at = (k: number) => w[k] ?? "";
  for (; i < w.length && !at(i).startsWith("-"); i++) {
    const sub = findSub(cmd, at(i));
    if (!sub) break;
    cmd = sub;
  }
  const commands = [cmd];
  // `server install / status / uninstall`: siblings of the last command.
  while (at(i) === "/" && cmd.parent) {
    const sib = findSub(cmd.parent, at(i + 1));
    if (!sib) {
      problems.push(`${cmd.parent.name()} has no subcommand "${w[i + 1]}"`);
      break;
    }
    commands.push(sib);
    i += 2;
  }
  if (i < w.length && !at(i).startsWith("-") && cmd.commands.length && !cmd.registeredArguments.length) {
    problems.push(`"${cmd.name()}" has no subcommand "${at(i)}"`);
  }
  for (; i < w.length; i++) {
    const word = at(i);
    if (word === "--") break; // what follows is the user's command (run -- CMD)
    if (!/^--?[A-Za-z]/.test(word)) continue; // an argument or a flag's value
    const flag = word.split("=")[0] ?? word;
    for (const c of commands) {
      const o = findOption(c, flag);
      if (!o) problems.push(`"${commandPath(c)}" has no option ${flag}`);
      else if (o.required && !word.includes("=")) i++; // its value
    }
  }
  return { commands, problems };
}

function commandPath(c: Command): string {
  const names: string[] = [];
  for (let cur: Command | null = c; cur; cur = cur.parent) names.unshift(cur.name());
  return names.join(" ");
}

/**
 * The commands a command table's first cell names: `snapdeploy history` / `rollback [--to N]`
 * (a span after the first one may leave out `snapdeploy`).
 */
function firstCellCommands(cell: string): string[] {
  const spans = codeSpans(cell);
  if (!spans.some((s) => /^snapdeploy(\s|$)/.test(s))) return [];
  return spans
    .filter((s) => !s.startsWith("-"))
    .map((s) => (/^snapdeploy(\s|$)/.test(s) ? s : `snapdeploy ${s}`));
}

/** Flags named in code spans of a table cell: `--x`, `-r/--repository`, `--port LOCAL:REMOTE`, `-n, --namespace`. */
function flagsIn(cell: string): string[] {
  return codeSpans(cell)
    .filter((s) => /^--?[A-Za-z]/.test(s))
    .flatMap((s) => s.split(/[\s/,]+/).filter((w) => /^--?[A-Za-z]/.test(w)))
    .map((w) => w.split("=")[0] ?? w);
}

test("the docs show commands at all (the extraction finds them)", () => {
  const lines = commandLines(read("README.md"));
  assert.ok(lines.length >= 15, `only ${lines.length} command lines found in README.md`);
  for (const want of ["snapdeploy deploy", "snapdeploy server install", "snapdeploy dev", "snapdeploy gc"]) {
    assert.ok(
      lines.some((l) => l.startsWith(want)),
      `README.md shows ${want}`,
    );
  }
});

test("a renamed flag or command is caught", () => {
  const program = buildProgram();
  assert.deepEqual(resolve(program, "snapdeploy deploy --rollback-on-failure -n web").problems, []);
  assert.deepEqual(resolve(program, "snapdeploy deploy --roll-back").problems, [
    '"snapdeploy deploy" has no option --roll-back',
  ]);
  assert.deepEqual(resolve(program, "snapdeploy server instal").problems, [
    '"server" has no subcommand "instal"',
  ]);
  assert.deepEqual(resolve(program, "snapdeploy server install / status / uninstall --purge").problems, [
    '"snapdeploy server install" has no option --purge',
    '"snapdeploy server status" has no option --purge',
  ]);
  assert.deepEqual(resolve(program, "snapdeploy run -- python --no-such-flag").problems, []);
  assert.deepEqual(resolve(program, "snapdeploy history -o json --kubeconfig FILE").problems, []);
  assert.deepEqual(resolve(program, "snapdeploy history --to 3").problems, [
    '"snapdeploy history" has no option --to',
  ]);
});

for (const file of FILES) {
  test(`every snapdeploy command line in ${file} names existing subcommands and flags`, () => {
    const program = buildProgram();
    const problems = commandLines(read(file)).flatMap((l) =>
      resolve(program, l).problems.map((p) => `${l}: ${p}`),
    );
    assert.deepEqual(problems, []);
  });

  test(`every flag in ${file}'s command tables belongs to the row's commands`, () => {
    const program = buildProgram();
    const problems: string[] = [];
    for (const t of markdownTables(read(file))) {
      const header = t.header.map((h) => h.toLowerCase());
      if (header[0] === "command") {
        // | `snapdeploy deploy` ... | what it does, with `--flags` |: the flags of the command(s) in the first cell.
        for (const row of t.rows) {
          const lines = firstCellCommands(row[0] ?? "");
          if (!lines.length) continue;
          const commands = lines.flatMap((l) => resolve(program, l).commands);
          for (const flag of flagsIn(row.slice(1).join(" | "))) {
            if (!commands.some((c) => findOption(c, flag))) {
              problems.push(`${row[0]}: no option ${flag} on ${commands.map(commandPath).join(", ")}`);
            }
          }
        }
      }
      const cmdCol = header.indexOf("commands");
      if (header[0] === "flag" && cmdCol > 0) {
        // | `-n, --namespace` | ... | `deploy`, `dev` |: each listed command has each flag.
        for (const row of t.rows) {
          for (const name of codeSpans(row[cmdCol] ?? "").filter((s) =>
            /^[a-z][a-z-]*( [a-z][a-z-]*)*$/.test(s),
          )) {
            const r = resolve(program, `snapdeploy ${name}`);
            const c = r.commands[0] ?? program;
            if (c === program) problems.push(`${name}: no such command`);
            for (const flag of flagsIn(row[0] ?? ""))
              if (!findOption(c, flag)) problems.push(`${name}: no option ${flag}`);
          }
        }
      }
    }
    assert.deepEqual(problems, []);
  });
}

test("the commands the demo suggests at its end exist too", () => {
  const program = buildProgram();
  // The "Try next" text: the here-document the demo ends with.
  const demo = /<<MSG\n([\s\S]*?)\nMSG$/m.exec(read("scripts/demo.sh"))?.[1] ?? "";
  const lines = demo
    .split("\n")
    .map((l) => l.replace(/\s+#.*$/, "").trim())
    .filter((l) => /^snapdeploy\s/.test(l));
  assert.ok(lines.length >= 4, `found ${lines.length} suggested commands in scripts/demo.sh`);
  const problems = lines.flatMap((l) => resolve(program, l).problems.map((p) => `${l}: ${p}`));
  assert.deepEqual(problems, []);
});

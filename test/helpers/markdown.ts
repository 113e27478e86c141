/** Just enough Markdown for the tests that hold the docs to the code: fenced blocks, tables, code spans. */

export interface Block {
  lang: string;
  text: string;
}

export interface Table {
  header: string[];
  rows: string[][];
}

/** Fenced code blocks (```lang ... ```), in order. */
export function codeBlocks(md: string): Block[] {
  const out: Block[] = [];
  const re = /^```([^\n`]*)\n([\s\S]*?)^```\s*$/gm;
  for (let m = re.exec(md); m; m = re.exec(md)) out.push({ lang: (m[1] ?? "").trim(), text: m[2] ?? "" });
  return out;
}

export const yamlBlocks = (md: string) =>
  codeBlocks(md)
    .filter((b) => b.lang === "yaml" || b.lang === "yml")
    .map((b) => b.text);

/** The text outside fenced code blocks. */
export function prose(md: string): string {
  return md.replace(/^```[^\n`]*\n[\s\S]*?^```\s*$/gm, "");
}

/** A table row's cells, split on `|` that are not escaped (`\|`), trimmed. */
export function cells(line: string): string[] {
  const parts: string[] = [];
  let cur = "";
  const s = line.trim().replace(/^\|/, "").replace(/\|$/, "");
  for (let i = 0; i < s.length; i++) {
    if (s[i] === "\\" && s[i + 1] === "|") {
      cur += "|";
      i++;
    } else if (s[i] === "|") {
      parts.push(cur.trim());
      cur = "";
    } else cur += s[i];
  }
  parts.push(cur.trim());
  return parts;
}

/** GitHub-style tables outside code blocks: a header row, a `|---|` row, then rows. */
export function markdownTables(md: string): Table[] {
  const lines = prose(md).split("\n");
  const at = (i: number) => lines[i] ?? "";
  const out: Table[] = [];
  for (let i = 0; i + 1 < lines.length; i++) {
    if (!at(i).trim().startsWith("|") || !/^\s*\|(\s*:?-+:?\s*\|)+\s*$/.test(at(i + 1))) continue;
    const table: Table = { header: cells(at(i)), rows: [] };
    let j = i + 2;
    for (; j < lines.length && at(j).trim().startsWith("|"); j++) table.rows.push(cells(at(j)));
    out.push(table);
    i = j - 1;
  }
  return out;
}

/** The contents of inline code spans (`...`) in some Markdown text outside code blocks. */
export function codeSpans(text: string): string[] {
  return [...text.matchAll(/`([^`\n]+)`/g)].map((m) => m[1] ?? "");
}

/**
 * What a terminal shows after some output: a small emulator of the escape sequences live
 * output uses (cursor up/down/to column 1, erase line, erase to end of line), enough to
 * read the screen a live face leaves behind rather than every frame it drew.
 */
export function screen(output: string): string {
  const rows: string[] = [""];
  let row = 0;
  let col = 0;
  const put = (ch: string) => {
    const line = rows[row] ?? "";
    rows[row] = line.padEnd(col).slice(0, col) + ch + line.slice(col + 1);
    col++;
  };
  for (let i = 0; i < output.length; i++) {
    const ch = output[i] as string;
    if (ch === "\u001B") {
      const m = /^.\[(\??)(\d*)([A-Za-z])/.exec(output.slice(i)); // "." is the ESC just seen
      if (!m) continue;
      i += m[0].length - 1;
      const [, priv, num, cmd] = m;
      if (priv) continue; // modes: synchronized output, cursor visibility
      const n = num ? Number(num) : 1;
      if (cmd === "A") row = Math.max(0, row - n);
      else if (cmd === "B") row += n;
      else if (cmd === "G") col = 0;
      else if (cmd === "K" && (num === "" || num === "0")) rows[row] = (rows[row] ?? "").slice(0, col);
      else if (cmd === "K" && num === "2") rows[row] = "";
      while (rows.length <= row) rows.push("");
    } else if (ch === "\n") {
      row++;
      col = 0;
      while (rows.length <= row) rows.push("");
    } else if (ch === "\r") col = 0;
    else put(ch);
  }
  return rows.map((r) => r.trimEnd()).join("\n");
}

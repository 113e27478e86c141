/**
 * The data volume's id: a random UUID kept in `<data>/volume-id`, made the first time the
 * agent starts on the volume. The CLI keys what it sent last to a workspace by it, so a
 * new volume (a reinstall with --purge, another cluster) is never taken for the old one.
 */
import { randomUUID } from "node:crypto";
import { promises as fs } from "node:fs";
import path from "node:path";

const ID = /^[0-9a-f-]{36}$/;

export async function volumeId(dataDir: string): Promise<string> {
  const file = path.join(dataDir, "volume-id");
  const held = (await fs.readFile(file, "utf8").catch(() => "")).trim();
  if (ID.test(held)) return held;
  const id = randomUUID();
  const tmp = `${file}.${process.pid}.tmp`;
  await fs.writeFile(tmp, `${id}\n`, { mode: 0o644 });
  await fs.rename(tmp, file);
  return id;
}

/** Filesystem errors of a scan, worded as the UserErrors a user can act on. */
import { UserError } from "../errors.js";

/** Maps a filesystem error about `name` to the UserError a user can act on; others pass through. */
export function fsError(e: unknown, name: string): unknown {
  if (e instanceof UserError) return e;
  switch ((e as NodeJS.ErrnoException).code) {
    case "EACCES":
    case "EPERM":
      return new UserError("input", `cannot read ${quote(name)}: permission denied`, {
        hint: "fix its permissions or add it to .dockerignore",
        cause: e,
      });
    case "ENAMETOOLONG":
      return new UserError("input", `path too long: ${quote(name)}`, {
        hint: "shorten it or add it to .dockerignore",
        cause: e,
      });
    case "ENOENT":
      // readdir decodes names that are not UTF-8 lossily; such a name cannot be opened again.
      if (name.includes("\uFFFD")) {
        return new UserError("input", `the name of ${quote(name)} is not valid UTF-8`, {
          hint: "rename it or add it to .dockerignore",
          cause: e,
        });
      }
      return changed(name, e);
    case "ELOOP":
    case "EISDIR":
    case "ENOTDIR":
      return changed(name, e);
    default:
      return e;
  }
}

export function changed(name: string, cause?: unknown): UserError {
  return new UserError("input", `${quote(name)} changed during the scan`, {
    hint: "retry when nothing is writing to the tree",
    cause,
  });
}

export function quote(path: string): string {
  return JSON.stringify(path);
}

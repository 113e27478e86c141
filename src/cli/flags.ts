/**
 * Parsers of flag values, given to commander (`.argParser`): a bad value is refused while
 * the command line is parsed, before anything is read or changed, with exit code 2 and
 * commander's line naming the flag and the value, followed by what is accepted. Each returns
 * the value in the form the commands use (seconds, numbers, parsed specs).
 */
import { existsSync, statSync } from "node:fs";
import { isIP } from "node:net";
import path from "node:path";
import { type Command, InvalidArgumentError } from "commander";
import { isUserError, UserError } from "../errors.js";
import { NAME_PATTERN } from "../protocol/constants.js";
import { activeReporter, startReporter } from "./context.js";
import { DURATION_SYNTAX, MAX_TIMEOUT_SECONDS, parseDuration } from "../util/duration.js";

type Parser<T> = (value: string) => T;

/** A duration (util/duration.ts) in seconds, at least `min`. */
export function duration(min = 1, max = MAX_TIMEOUT_SECONDS): Parser<number> {
  return (v) => {
    const s = parseDuration(v);
    if (s === undefined) throw new InvalidArgumentError(`Expected ${DURATION_SYNTAX}.`);
    if (s < min || s > max)
      throw new InvalidArgumentError(
        `Expected a duration from ${min}s to ${max}s (${DURATION_SYNTAX}); got ${s}s.`,
      );
    return s;
  };
}

/** A whole number from `min` to `max`, digits only. */
export function wholeNumber(min: number, max = Number.MAX_SAFE_INTEGER): Parser<number> {
  return (v) => {
    const n = Number(v);
    if (!/^\d+$/.test(v) || !Number.isSafeInteger(n) || n < min || n > max)
      throw new InvalidArgumentError(
        `Expected a whole number ${max === Number.MAX_SAFE_INTEGER ? `≥ ${min}` : `from ${min} to ${max}`}.`,
      );
    return n;
  };
}

const LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

/** A namespace name (a DNS label: lowercase letters, digits and '-', at most 63). */
export const namespaceName: Parser<string> = (v) => {
  if (!LABEL.test(v))
    throw new InvalidArgumentError(
      "Expected a namespace name: lowercase letters, digits and '-', starting and ending with a letter or digit, at most 63.",
    );
  return v;
};

/** A project or user name (the workspace's path on the build server). */
export const workspaceName: Parser<string> = (v) => {
  if (!NAME_PATTERN.test(v))
    throw new InvalidArgumentError(
      "Expected lowercase letters, digits, '.', '_' or '-', starting and ending with a letter or digit, at most 63.",
    );
  return v;
};

/** An object name (Secret, StorageClass: a DNS subdomain). */
export const objectName: Parser<string> = (v) => {
  if (v.length > 253 || !/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(v))
    throw new InvalidArgumentError(
      "Expected a Kubernetes object name: lowercase letters, digits, '-' and '.', at most 253.",
    );
  return v;
};

/** A snapshot tag prefix: what a Docker tag may start with (as image.tagPrefix). */
export const tagPrefix: Parser<string> = (v) => {
  if (!/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,40}$/.test(v))
    throw new InvalidArgumentError("Expected letters, digits, '_', '.' or '-' (not first), at most 41.");
  return v;
};

/** A repository prefix: a registry host (with a '.' or ':', or localhost) and optional path, lowercase. */
export const repositoryPrefix: Parser<string> = (v) => {
  const p = v.replace(/\/+$/, "");
  const [host = "", ...path] = p.split("/");
  const hostOk =
    /^[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?(?::[0-9]{1,5})?$/.test(host) &&
    (host.includes(".") || host.includes(":") || host === "localhost");
  if (!hostOk || !path.every((s) => /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/.test(s)))
    throw new InvalidArgumentError(
      "Expected a registry host and optional repository path, e.g. registry.example.com/team (lowercase path).",
    );
  return p;
};

/** An image platform: os/arch[/variant], e.g. linux/amd64, linux/arm64/v8. */
export const platform: Parser<string> = (v) => {
  if (!/^[a-z0-9_]+\/[a-z0-9_]+(\/[a-z0-9_]+)?$/.test(v))
    throw new InvalidArgumentError("Expected OS/ARCH[/VARIANT], e.g. linux/amd64 or linux/arm64/v8.");
  return v;
};

/** KEY=VALUE, KEY not empty. */
export const keyValue: Parser<string> = (v) => {
  if (v.indexOf("=") <= 0) throw new InvalidArgumentError("Expected KEY=VALUE.");
  return v;
};

/** A registry host with an optional port: registry.local:5000, 10.0.0.1:5000. */
export const hostPort: Parser<string> = (v) => {
  const m = /^([A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?|\[[0-9a-fA-F:]+\])(?::(\d{1,5}))?$/.exec(v);
  if (!m || Number(m[3] ?? 1) > 65535 || Number(m[3] ?? 1) < 1)
    throw new InvalidArgumentError("Expected HOST or HOST:PORT, e.g. registry.local:5000.");
  return v;
};

/** "8080:80" or "8080" (same port both sides); 0 as LOCAL picks a free port. */
export const portPair: Parser<{ localPort: number; remotePort: number }> = (v) => {
  const m = /^(\d{1,5})(?::(\d{1,5}))?$/.exec(v);
  const local = Number(m?.[1]);
  const remote = Number(m?.[2] ?? m?.[1]);
  if (!m || local > 65535 || remote < 1 || remote > 65535)
    throw new InvalidArgumentError("Expected LOCAL:REMOTE or PORT (1-65535; LOCAL may be 0).");
  return { localPort: local, remotePort: remote };
};

/** A local IP address to listen on. */
export const ipAddress: Parser<string> = (v) => {
  if (!isIP(v)) throw new InvalidArgumentError("Expected an IP address, e.g. 127.0.0.1 or 0.0.0.0.");
  return v;
};

/** A file or folder that exists (relative to the current folder). */
export function existing(kind: "file" | "folder" | "file or folder"): Parser<string> {
  return (v) => {
    const st = existsSync(v) ? statSync(v) : undefined;
    const ok = st && (kind === "file" ? st.isFile() : kind === "folder" ? st.isDirectory() : true);
    if (!ok)
      throw new InvalidArgumentError(
        st ? `Expected a ${kind}; it is not one.` : `Expected an existing ${kind}; there is none.`,
      );
    return v;
  };
}

/**
 * A parser written for the command's own use (it throws UserError), turned into one that
 * commander reports like the others.
 */
export function checked<T>(parse: Parser<T>): Parser<T> {
  return (v) => {
    try {
      return parse(v);
    } catch (e) {
      if (isUserError(e)) throw new InvalidArgumentError(`${e.message}${e.hint ? ` (${e.hint})` : ""}.`);
      throw e;
    }
  };
}

/** A repeatable flag: each value parsed, collected in order. */
export function repeatable<T>(parse: Parser<T>): (value: string, previous: T[] | undefined) => T[] {
  return (v, previous) => [...(previous ?? []), parse(v)];
}

/**
 * Flags naming a path relative to the project folder (-C), which is known only once the
 * whole command line is parsed: checked by checkProjectPaths before the command runs.
 */
const PROJECT_PATHS: Record<string, { flag: string; kind: "file" | "file or folder" }> = {
  dockerfile: { flag: "--dockerfile", kind: "file" },
  manifests: { flag: "--manifests", kind: "file or folder" },
};

/** UserError("usage") when a project-relative path flag of `cmd` names nothing there. */
export function checkProjectPaths(cmd: Command): void {
  const opts = cmd.opts();
  const dir = path.resolve((cmd.optsWithGlobals().dir as string | undefined) ?? ".");
  for (const [key, { flag, kind }] of Object.entries(PROJECT_PATHS)) {
    const value = opts[key];
    if (typeof value !== "string") continue;
    const full = path.resolve(dir, value);
    const st = existsSync(full) ? statSync(full) : undefined;
    if (!st || (kind === "file" && !st.isFile()))
      throw new UserError(
        "usage",
        `${flag} ${value}: ${st ? "not a file" : "no such file or folder"} (${full})`,
        {
          hint: `${flag} is relative to the project folder (${dir}, set with -C)`,
        },
      );
  }
}

/**
 * The value of a renamed flag, given under its new name or, for one release, its old one:
 * the old one warns (through `warn`), both with different values is a usage error.
 */
export function renamedFlag<T>(
  given: { now?: T; old?: T },
  names: { now: string; old: string; note?: string },
  warn: (message: string) => void,
): T | undefined {
  if (given.old === undefined) return given.now;
  if (given.now !== undefined && given.now !== given.old)
    throw new UserError("usage", `${names.now} ${given.now} and ${names.old} ${given.old} disagree`, {
      hint: `${names.old} is the old spelling of ${names.now}: give one of them${names.note ? `; ${names.note}` : ""}`,
    });
  warn(
    `${names.old} is deprecated and will be removed in the next release: use ${names.now}${names.note ? ` (${names.note})` : ""}`,
  );
  return given.old;
}

/**
 * Resolves a renamed flag of `cmd` once its command line is parsed, before it runs: the
 * value of the old one (`keys.old`) goes to the new one, with renamedFlag's warning (on
 * stderr) or error.
 */
export function resolveRenamed(
  cmd: Command,
  keys: { now: string; old: string },
  names: { now: string; old: string; note?: string },
): Command {
  return cmd.hook("preAction", (self) => {
    const o = self.opts();
    const value = renamedFlag({ now: o[keys.now], old: o[keys.old] }, names, (m) =>
      (activeReporter() ?? startReporter(self)).warn(m),
    );
    self.setOptionValue(keys.now, value);
    self.setOptionValue(keys.old, undefined);
  });
}

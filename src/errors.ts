/**
 * One error type for everything a user can act on. Each carries what went wrong,
 * where, and what to do, plus an exit code from the table below. The single
 * top-level catch in main.ts prints it (stack only with --debug) and sets
 * process.exitCode; nothing else calls process.exit().
 */
export const ExitCode = {
  ok: 0,
  internal: 1,
  usage: 2,
  cluster: 3,
  permission: 4,
  notFound: 5,
  input: 6,
  server: 7,
  build: 8,
  push: 9,
  rollout: 10,
  timeout: 11,
  noSpace: 12,
  interrupted: 130,
} as const;
export type ExitCodeName = keyof typeof ExitCode;

export class UserError extends Error {
  readonly code: ExitCodeName;
  /** What the user can do about it; printed on its own line. */
  readonly hint?: string;
  /** Supporting evidence (command output tail, event text); printed indented. */
  readonly details?: string[];

  constructor(
    code: ExitCodeName,
    message: string,
    opts: { hint?: string; details?: string[]; cause?: unknown } = {},
  ) {
    super(message, { cause: opts.cause });
    this.name = "UserError";
    this.code = code;
    this.hint = opts.hint;
    this.details = opts.details;
  }

  get exitCode(): number {
    return ExitCode[this.code];
  }
}

export function isUserError(e: unknown): e is UserError {
  return e instanceof UserError;
}

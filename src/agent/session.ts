/**
 * One client connection to the agent: a hello, then operations (ops/) until the client
 * says bye (see protocol/messages.ts). Each operation validates everything it receives;
 * errors go back to the client as { t: "error", code, message, hint } (report-error.ts) before
 * the connection closes.
 */
import { PeerClosed } from "../protocol/connection.js";
import { PROTOCOL_VERSION } from "../protocol/constants.js";
import { ProtocolError } from "../protocol/frames.js";
import type { AgentConnection, AgentContext } from "./context.js";
import { InvalidInput } from "./errors.js";
import { reportError } from "./report-error.js";
import { build } from "./ops/build.js";
import { check } from "./ops/check.js";
import { gc } from "./ops/gc.js";
import { status } from "./ops/status.js";
import { sync } from "./ops/sync.js";

export type { AgentContext } from "./context.js";

export async function serveSession(conn: AgentConnection, ctx: AgentContext): Promise<void> {
  try {
    const hello = await conn.expect("hello");
    if (hello.protocol !== PROTOCOL_VERSION) {
      throw new InvalidInput(
        `client speaks protocol ${String(hello.protocol)}, this build server speaks ${PROTOCOL_VERSION}; use matching versions of the CLI and the build server (snapdeploy server install)`,
      );
    }
    await conn.send({
      t: "hello",
      protocol: PROTOCOL_VERSION,
      agent: ctx.version,
      keepalive: true,
      inlineSync: true,
      ...(ctx.volume ? { volume: ctx.volume } : {}),
    });
    // Operations run one after another until the client says bye (or hangs up between two).
    for (;;) {
      const op = await conn.expect().catch((e: unknown) => {
        if (e instanceof PeerClosed) return { t: "bye" };
        throw e;
      });
      if (op.t === "bye") break;
      if (op.t === "sync") await sync(conn, ctx, op);
      else if (op.t === "check") await conn.send(await check(ctx, op));
      else if (op.t === "build") await build(conn, ctx, op);
      else if (op.t === "status") await conn.send(await status(ctx));
      else if (op.t === "gc") await conn.send(await gc(ctx, op));
      else if (op.t === "ping") await conn.send({ t: "pong" });
      else throw new ProtocolError(`unknown operation "${op.t}"`);
    }
  } catch (e) {
    await reportError(conn, ctx, e);
  } finally {
    conn.close();
  }
}

/**
 * The exec relay: copies an exec session's stdin to the agent's socket and the socket
 * to stdout, and exits as soon as the agent has closed its side (all it sent written
 * out). Exit status 1 when the socket cannot be reached. Node.js is in every
 * build-server image, so no other relay tool has to be.
 */
import net from "node:net";

export function relay(socketPath: string) {
  const sock = net.connect(socketPath);
  sock.once("error", (e) => {
    process.stderr.write(`relay: ${socketPath}: ${e.message}\n`);
    process.exit(1);
  });
  sock.once("connect", () => {
    process.stdin.pipe(sock);
    sock.pipe(process.stdout);
  });
  sock.once("end", () => {
    process.stdout.end(() => process.exit(0));
  });
}

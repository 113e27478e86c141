/**
 * Flag values: the duration syntax, each parser's accepted and refused values, and, through
 * the real bin, that a bad value is refused at parse time with exit 2 and a message naming
 * the flag, the value and what is accepted (no cluster is reached: none is configured).
 */
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { test } from "node:test";
import { InvalidArgumentError } from "commander";
import {
  duration,
  existing,
  hostPort,
  ipAddress,
  namespaceName,
  portPair,
  renamedFlag,
  wholeNumber,
} from "../../src/cli/flags.js";
import { isUserError } from "../../src/errors.js";
import { MAX_TIMEOUT_SECONDS, parseDuration } from "../../src/util/duration.js";
import { CLI, run } from "../helpers/cluster.js";

test("durations: seconds, or h/m/s in that order; nothing else", () => {
  const good: [string, number][] = [
    ["300", 300],
    ["0", 0],
    ["90s", 90],
    ["5m", 300],
    ["1h", 3600],
    ["1h30m", 5400],
    ["2h0m5s", 7205],
    ["1m30s", 90],
  ];
  for (const [text, s] of good) assert.equal(parseDuration(text), s, text);
  for (const bad of [
    "",
    "5x",
    "5 m",
    "1.5h",
    "-5m",
    "m",
    "5m1h",
    "1d",
    "5M",
    " 5",
    "5s5s",
    "1e3",
    "9".repeat(20),
  ])
    assert.equal(parseDuration(bad), undefined, bad);
});

const refuses = (parse: (v: string) => unknown, value: string, pattern: RegExp) =>
  assert.throws(
    () => parse(value),
    (e) => e instanceof InvalidArgumentError && pattern.test(e.message),
    value,
  );

test("duration flags: in seconds, within their bounds", () => {
  assert.equal(duration()("5m"), 300);
  assert.equal(duration(0)("0"), 0);
  refuses(duration(), "0", /from 1s/);
  refuses(duration(), "5x", /whole number of seconds \(300\).*90s, 5m, 1h30m/);
  refuses(duration(), `${MAX_TIMEOUT_SECONDS + 1}`, /got \d+s/);
});

test("numbers, namespaces, ports, hosts, addresses", () => {
  assert.equal(wholeNumber(0)("0"), 0);
  assert.equal(wholeNumber(1, 64)("64"), 64);
  for (const bad of ["", "-1", "1.5", "1e3", "x", "0x10", "65"])
    refuses(wholeNumber(1, 64), bad, /from 1 to 64/);
  assert.equal(namespaceName("team-a"), "team-a");
  for (const bad of ["Team", "a_b", "-a", "a-", "a".repeat(64), ""])
    refuses(namespaceName, bad, /namespace name/);
  assert.deepEqual(portPair("8080:80"), { localPort: 8080, remotePort: 80 });
  assert.deepEqual(portPair("3000"), { localPort: 3000, remotePort: 3000 });
  assert.deepEqual(portPair("0:80"), { localPort: 0, remotePort: 80 });
  for (const bad of ["", "80:", ":80", "a:b", "70000:80", "80:0", "80:70000", "1:2:3", "0"])
    refuses(portPair, bad, /LOCAL:REMOTE or PORT/);
  for (const ok of ["registry.local:5000", "10.0.0.1", "[::1]:5000"]) assert.equal(hostPort(ok), ok);
  for (const bad of ["http://r:5000", "r:0", "r:70000", "r/x", ""]) refuses(hostPort, bad, /HOST:PORT/);
  assert.equal(ipAddress("0.0.0.0"), "0.0.0.0");
  refuses(ipAddress, "localhost", /IP address/);
});

test("paths must exist, and be of the kind asked for", () => {
  const dir = mkdtempSync(path.join(tmpdir(), "snapdeploy-flags-"));
  const file = path.join(dir, "f");
  writeFileSync(file, "");
  assert.equal(existing("folder")(dir), dir);
  assert.equal(existing("file")(file), file);
  refuses(existing("folder"), file, /Expected a folder/);
  refuses(existing("file"), path.join(dir, "none"), /existing file; there is none/);
});

test("a renamed flag: the old name warns, both names disagreeing is a usage error", () => {
  const names = { now: "-n/--namespace", old: "--target-namespace" };
  const warnings: string[] = [];
  const warn = (m: string) => warnings.push(m);
  assert.equal(renamedFlag({ now: "a" }, names, warn), "a");
  assert.equal(renamedFlag({ old: "b" }, names, warn), "b");
  assert.equal(renamedFlag({ now: "b", old: "b" }, names, warn), "b");
  assert.deepEqual(warnings.length, 2);
  assert.match(warnings[0] as string, /--target-namespace is deprecated .*use -n\/--namespace/);
  assert.throws(
    () => renamedFlag({ now: "a", old: "b" }, names, warn),
    (e) =>
      isUserError(e) &&
      e.exitCode === 2 &&
      /-n\/--namespace a and --target-namespace b disagree/.test(e.message),
  );
});

/** The bin with no kubeconfig anywhere: a value that got past parsing would fail with exit 3. */
async function cli(args: string[]) {
  const home = mkdtempSync(path.join(tmpdir(), "snapdeploy-home-"));
  const env: NodeJS.ProcessEnv = { ...process.env, HOME: home };
  delete env.KUBECONFIG;
  delete env.KUBERNETES_SERVICE_HOST;
  return await run(process.execPath, [CLI, ...args], { env, cwd: home });
}

test("every command refuses a bad flag value at parse time: exit 2, the flag, the value, what is accepted", async () => {
  const cases: [string[], RegExp][] = [
    [["deploy", "-t", "web", "--timeout", "5x"], /'--timeout <duration>' argument '5x' is invalid.*90s, 5m/],
    [["deploy", "-t", "web/x:"], /'-t, --target .*' argument 'web\/x:' is invalid.*NAME\[:container/],
    [["deploy", "-t", "web", "-n", "Prod"], /'-n, --namespace <ns>' argument 'Prod' is invalid/],
    [["deploy", "-t", "web", "--manifests", "nope"], /--manifests nope: no such file or folder/],
    [
      ["deploy", "-t", "web", "--dockerfile", "Dockerfile.nope"],
      /--dockerfile Dockerfile.nope: no such file/,
    ],
    [["deploy", "-t", "web", "--platform", "amd64"], /'--platform <platform>' argument 'amd64'.*OS\/ARCH/],
    [["deploy", "-t", "web", "--build-arg", "NOVALUE"], /'--build-arg <KEY=VALUE>' argument 'NOVALUE'/],
    [["deploy", "-t", "web", "--secret", "id=a"], /argument 'id=a' is invalid.*needs id=ID and secret=NAME/],
    [["deploy", "-t", "web", "--user", "Bad User"], /'--user <name>' argument 'Bad User' is invalid/],
    [["rollback", "-t", "web", "--to", "two"], /'--to <revision>' argument 'two' is invalid.*whole number/],
    [["rollback", "-t", "web", "--timeout", "1.5m"], /'--timeout <duration>' argument '1.5m' is invalid/],
    [["history", "-t", "web", "--target-namespace", "a_b"], /'--target-namespace <ns>' argument 'a_b'/],
    [["personal", "delete", "--user", "-x-"], /'--user <name>' argument '-x-'/],
    [["run", "-t", "web", "--cpu", "lots", "--", "true"], /'--cpu <quantity>' argument 'lots'.*quantity/],
    [["run", "-t", "web", "--ttl", "1 h", "--", "true"], /'--ttl <duration>' argument '1 h'/],
    [["run", "-t", "web", "--start-timeout", "0", "--", "true"], /'--start-timeout <duration>' argument '0'/],
    [["run", "-t", "web", "--env", "=x", "--", "true"], /'--env <KEY=VALUE>' argument '=x'/],
    [["run", "-t", "web", "--parallel", "many", "--", "true"], /'--parallel <n>' argument 'many'.*1 to 1000/],
    [["run", "-t", "web", "--parallel", "1001", "--", "true"], /'--parallel <n>' argument '1001'/],
    [["run", "-t", "web", "--completions", "0", "--", "true"], /'--completions <m>' argument '0'/],
    [["run", "-t", "web", "--completions", "-2", "--", "true"], /'--completions <m>' argument '-2'/],
    [["dev", "-t", "web", "--port", "80:99999"], /'--port <LOCAL:REMOTE>' argument '80:99999'/],
    [["logs", "-t", "web", "--tail", "-3"], /'--tail <lines>' argument '-3' is invalid/],
    [["logs", "-t", "web", "--since", "yesterday"], /'--since <duration>' argument 'yesterday'/],
    [
      ["port-forward", "8080:http", "-t", "web"],
      /value '8080:http' is invalid for argument 'ports'.*LOCAL:REMOTE/,
    ],
    [["port-forward", "8080", "-t", "web", "--address", "local"], /'--address <ip>' argument 'local'/],
    [["server", "install", "--timeout", "5mins"], /'--timeout <duration>' argument '5mins' is invalid/],
    [["server", "install", "--max-builds", "0"], /'--max-builds <n>' argument '0'.*from 1 to 64/],
    [["server", "install", "--size", "50GB"], /'--size <quantity>' argument '50GB'/],
    [
      ["server", "install", "--builder", "kaniko"],
      /'--builder <mode>' argument 'kaniko' is invalid.*docker-socket, dind/,
    ],
    [["server", "install", "--insecure-registry", "http://r:5000"], /'--insecure-registry <host:port...>'/],
    [["server", "install", "--registry-ca", "r:5000=/nonexistent.pem"], /Cannot read the CA certificate/],
    [["server", "status", "-n", "Snap"], /'-n, --namespace <ns>' argument 'Snap'/],
    [["server", "uninstall", "-n", "x.y"], /'-n, --namespace <ns>' argument 'x.y'/],
    [["sync", "--server-namespace", "NS"], /'--server-namespace <ns>' argument 'NS'/],
    [["build", "--project", "My App"], /'--project <name>' argument 'My App'/],
    [["build", "--tag-prefix", "-x"], /'--tag-prefix <prefix>' argument '-x'/],
    [
      ["-C", "/no/such/folder", "sync"],
      /'-C, --dir <path>' argument '\/no\/such\/folder' is invalid.*existing folder/,
    ],
    [
      ["--kubeconfig", "/no/such/file", "sync"],
      /'--kubeconfig <path>' argument '\/no\/such\/file'.*existing file/,
    ],
    [["-o", "yaml", "sync"], /'-o, --output <mode>' argument 'yaml' is invalid.*plain, json/],
  ];
  for (const [args, pattern] of cases) {
    const r = await cli(args);
    assert.equal(r.code, 2, `${args.join(" ")}: exit ${r.code}\n${r.stderr}`);
    assert.match(r.stderr, pattern, args.join(" "));
    assert.doesNotMatch(r.stderr, /\n\s+at /, args.join(" "));
  }
});

test("-n and its old spelling --target-namespace disagreeing is refused before the cluster is asked", async () => {
  const r = await cli(["deploy", "-t", "web", "-n", "a", "--target-namespace", "b"]);
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /-n\/--namespace a and --target-namespace b disagree/);
  assert.match(r.stderr, /hint: .*--server-namespace/);
});

test("on sync and build, -n is the old spelling of --server-namespace: a warning, before anything is read", async () => {
  for (const command of ["sync", "build"]) {
    const r = await cli([command, "-n", "team-server"]);
    assert.match(
      r.stderr,
      /^warning: -n is deprecated .*: use --server-namespace \(on deploy, run and dev, -n names the workloads' namespace\)$/m,
    );
    assert.equal(r.code, 3, r.stderr); // then the missing kubeconfig, as without -n
    const both = await cli([command, "-n", "a", "--server-namespace", "b"]);
    assert.equal(both.code, 2, both.stderr);
    assert.match(both.stderr, /--server-namespace b and -n a disagree/);
  }
});

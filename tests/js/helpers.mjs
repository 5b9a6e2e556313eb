// Helpers for the npm package tests: the packed tarball installed into a scratch project the
// way users get it, the echo server's URL, and Node.js flags for a global WebSocket. The
// browsers are in browsers.mjs.
import { execFileSync, spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, extname, join, normalize } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const PACKAGE_JSON = JSON.parse(readFileSync(join(ROOT, "js", "npm", "package.json"), "utf8"));
export const TARBALL = join(ROOT, "target", "npm", `isosock-${PACKAGE_JSON.version}.tgz`);

/** The echo server (examples/echo_server.rs) that scripts/test-js.sh started. */
export function echoUrl() {
  const url = process.env.ISOSOCK_ECHO_URL;
  if (!url) {
    throw new Error("ISOSOCK_ECHO_URL is not set: run these tests through scripts/test-js.sh");
  }
  return url;
}

/** Node.js flags that give the process a global WebSocket (built in from Node.js 22). */
export function webSocketFlags() {
  const major = Number(process.versions.node.split(".")[0]);
  return major >= 22 ? [] : ["--experimental-websocket"];
}

/** Flags that take the global WebSocket away, to test the package's error for that case. */
export function noWebSocketFlags() {
  const major = Number(process.versions.node.split(".")[0]);
  return major >= 22 ? ["--no-experimental-websocket"] : [];
}

/**
 * Makes an empty project in a fresh temporary directory and installs the packed tarball into
 * it with npm, as a user would. Returns the project's directory.
 */
export function installTarball() {
  if (!existsSync(TARBALL)) {
    throw new Error(`${TARBALL} is missing: run scripts/build-js.sh first`);
  }
  const dir = mkdtempSync(join(tmpdir(), "isosock-npm-"));
  writeFileSync(
    join(dir, "package.json"),
    JSON.stringify({ name: "scratch", private: true, type: "module" }, null, 2),
  );
  execFileSync("npm", ["install", "--no-audit", "--no-fund", "--loglevel=error", TARBALL], {
    cwd: dir,
    stdio: ["ignore", "inherit", "inherit"],
    timeout: 60_000,
  });
  return dir;
}

/** Imports `isosock` as resolved from the project in `dir` (through its `exports` map). */
export async function importPackage(dir) {
  const resolved = createRequire(join(dir, "index.js")).resolve("isosock");
  return import(pathToFileURL(resolved).href);
}

/** About `size` bytes of JSON: records with the same keys, which DEFLATE shrinks well. */
export function jsonLike(size) {
  const parts = [];
  let length = 0;
  for (let i = 0; length < size; i++) {
    const part = JSON.stringify({ id: i, name: `user ${i}`, tags: ["alpha", "beta"], active: i % 3 === 0 });
    parts.push(part);
    length += part.length + 1;
  }
  return `[${parts.join(",")}]`;
}

/** `size` bytes of a repeating 251-byte record with a counter in it: compressible binary. */
export function records(size) {
  return Uint8Array.from({ length: size }, (_, k) => (k % 251 < 4 ? (k / 251) & 0xff : k % 251));
}

/** Awaits `promise`, failing if it is not settled within `ms`. */
export async function within(ms, promise, what = "operation") {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not settle within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Awaits a promise that must reject with an IsosockError of `kind`; returns the error. */
export async function rejectsWith(kind, promise) {
  let error;
  try {
    await within(10_000, promise, `a call expected to fail with ${kind}`);
  } catch (e) {
    error = e;
  }
  if (error === undefined) throw new Error(`expected an IsosockError of kind ${kind}, got success`);
  if (!(error instanceof Error) || error.name !== "IsosockError" || error.kind !== kind) {
    throw new Error(`expected an IsosockError of kind ${kind}, got ${error?.name} ${error?.kind}: ${error?.message}`);
  }
  return error;
}

/** The code blocks of a markdown file whose info string is `lang`. */
export function codeBlocks(markdownPath, lang) {
  const text = readFileSync(markdownPath, "utf8");
  const blocks = [];
  const re = new RegExp("^```" + lang + "\\n([\\s\\S]*?)^```$", "gm");
  for (const m of text.matchAll(re)) blocks.push(m[1]);
  return blocks;
}

const CONTENT_TYPES = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".wasm": "application/wasm",
  ".json": "application/json",
};

/** Serves the files under `root` on 127.0.0.1 (a free port); resolves to the http.Server. */
export function serveDirectory(root) {
  return new Promise((resolve) => {
    const srv = createServer((req, res) => {
      const path = normalize(decodeURIComponent(new URL(req.url, "http://x").pathname));
      const file = join(root, path);
      if (!file.startsWith(root) || !existsSync(file)) {
        res.writeHead(404).end("not found");
        return;
      }
      const type = CONTENT_TYPES[extname(file)] ?? "application/octet-stream";
      res.writeHead(200, { "content-type": type });
      res.end(readFileSync(file));
    });
    srv.listen(0, "127.0.0.1", () => resolve(srv));
  });
}

/**
 * Starts a private echo server (examples/echo_server.rs, built by scripts/test-js.sh) on
 * 127.0.0.1:`port` (0: a free one), for tests that kill and restart their server. Resolves
 * with `{ port, url, kill() }` once it listens; retries for up to 10 s while the port is still
 * taken (a restart on the same port). `kill()` sends SIGKILL: no close frames, like a crash.
 */
export async function startEchoServer(port = 0) {
  const deadline = Date.now() + 10_000;
  for (;;) {
    try {
      return await startEchoServerOnce(port, deadline);
    } catch (err) {
      if (!/in use/i.test(err.message) || Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

function startEchoServerOnce(port, deadline) {
  const bin = join(ROOT, "target", "debug", "examples", "echo_server");
  if (!existsSync(bin)) throw new Error(`${bin} is missing: run these tests through scripts/test-js.sh`);
  const proc = spawn(bin, [String(port)], { stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  const exited = new Promise((resolve) => proc.once("exit", (code, signal) => resolve(code ?? signal)));
  const server = {
    port: null,
    url: null,
    async kill() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill("SIGKILL");
      await within(5_000, exited, "echo server exit");
    },
  };
  return new Promise((resolve, reject) => {
    const fail = (err) => {
      clearTimeout(timer);
      server.kill().then(() => reject(err), () => reject(err));
    };
    const timer = setTimeout(
      () => fail(new Error(`the echo server printed no address in time:\n${output}`)),
      Math.max(0, deadline - Date.now()),
    );
    const onData = (chunk) => {
      output += chunk;
      const m = /^listening on (ws:\/\/127\.0\.0\.1:(\d+))$/m.exec(output);
      if (m && server.port === null) {
        clearTimeout(timer);
        server.url = m[1];
        server.port = Number(m[2]);
        resolve(server);
      }
    };
    proc.stdout.setEncoding("utf8").on("data", onData);
    proc.stderr.setEncoding("utf8").on("data", onData);
    proc.once("error", fail);
    exited.then((status) => {
      if (server.port === null) fail(new Error(`the echo server exited (${status}) before listening:\n${output}`));
    });
  });
}

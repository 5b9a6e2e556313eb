// The chat demo's framework frontends end to end: the Leptos page in headless Chromium and the
// native chat-cli chat with each other through examples/chat_server.rs; the Yew page loads,
// connects and hears its own message; both pages reconnect after the server restarts.
//
// Builds nothing: scripts/test-examples.sh builds target/examples-web/{leptos,yew},
// target/debug/examples/chat_server and target/debug/chat-cli first; missing builds fail it.
// Loopback only; every wait is bounded; servers, CLI clients and Chromium are killed at the end,
// pass or fail. Screenshots go to tests/artifacts/.

import { test, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
const targetDir = path.resolve(root, process.env.CARGO_TARGET_DIR ?? "target");
const serverBin = path.join(targetDir, "debug", "examples", "chat_server");
const cliBin = path.join(targetDir, "debug", "chat-cli");
const webDir = (name) => path.join(targetDir, "examples-web", name);
const wasmOf = (name) => path.join(webDir(name), "pkg", `${name}_chat_bg.wasm`);
const artifacts = path.join(root, "tests", "artifacts");
const chromiumPath = process.env.CHROMIUM ?? "/usr/bin/chromium";

/** Longest wait for any one thing (a process start, a page state, a message). */
const WAIT_MS = 20_000;
/** Each test as a whole. */
const TEST_TIMEOUT_MS = 120_000;

// Chromium as root on a machine without network: no sandbox, GPU, QUIC or background traffic.
const CHROMIUM_ARGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--no-proxy-server",
];

const needed = [serverBin, cliBin, wasmOf("leptos"), wasmOf("yew")];
const missing = needed.filter((file) => !existsSync(file));
if (missing.length > 0) {
  // Fail loudly rather than skip: a test that cannot run is a failure.
  throw new Error(
    `not built (${missing.map((f) => path.relative(root, f)).join(", ")}): run scripts/test-examples.sh`,
  );
}
const skip = false;

/** Everything to stop at the end, whatever happens. */
const resources = { procs: new Set(), contexts: new Set(), dirs: new Set() };

async function cleanup() {
  for (const context of resources.contexts) {
    await withTimeout(context.close(), 10_000, "closing Chromium").catch(() => {});
  }
  resources.contexts.clear();
  for (const proc of resources.procs) await proc.kill();
  for (const dir of resources.dirs) await rm(dir, { recursive: true, force: true }).catch(() => {});
  resources.dirs.clear();
}
after(cleanup);
// Last resort if the runner exits early: a synchronous kill of every child process.
process.on("exit", () => {
  for (const proc of resources.procs) proc.child.kill("SIGKILL");
});

function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no result within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/**
 * Starts `bin` with `args` and keeps its output; `waitFor(re)` resolves with the first match in
 * its stdout + stderr (or fails after WAIT_MS, or when it exits first); `exited` resolves with
 * `{ code, signal }`; `kill()` is SIGKILL and waits for the exit.
 */
function start(name, bin, args) {
  const child = spawn(bin, args, { stdio: ["pipe", "pipe", "pipe"] });
  const proc = {
    name,
    child,
    stdout: "",
    stderr: "",
    output: () => `--- ${name} stdout:\n${proc.stdout}--- ${name} stderr:\n${proc.stderr}`,
    // "close", not "exit": by then all of its output has been read.
    exited: new Promise((resolve) => child.once("close", (code, signal) => resolve({ code, signal }))),
    waitFor(re, what = String(re)) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const m = re.exec(proc.stdout + proc.stderr);
          if (!m) return false;
          done();
          resolve(m);
          return true;
        };
        const onExit = ({ code, signal }) => {
          if (check()) return;
          done();
          reject(new Error(`${name} exited (${code ?? signal}) before printing ${what}\n${proc.output()}`));
        };
        const timer = setTimeout(() => {
          done();
          reject(new Error(`${name} printed no ${what} within ${WAIT_MS} ms\n${proc.output()}`));
        }, WAIT_MS);
        const done = () => {
          clearTimeout(timer);
          child.stdout.off("data", check);
          child.stderr.off("data", check);
        };
        child.stdout.on("data", check);
        child.stderr.on("data", check);
        if (!check()) proc.exited.then(onExit);
      });
    },
    async kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
      await withTimeout(proc.exited, 5_000, `${name} exit`).catch(() => {});
      resources.procs.delete(proc);
    },
  };
  // Listeners that keep the output are added first, so `check` always sees the new chunk.
  child.stdout.setEncoding("utf8").prependListener("data", (chunk) => (proc.stdout += chunk));
  child.stderr.setEncoding("utf8").prependListener("data", (chunk) => (proc.stderr += chunk));
  child.stdin.on("error", () => {}); // EPIPE after a kill is not the test's concern
  child.once("error", (err) => (proc.stderr += `spawn error: ${err.message}\n`));
  resources.procs.add(proc);
  return proc;
}

/**
 * Starts the chat server on `port` (0: a free one), serving `dir`; resolves with it and its page
 * URL. Retries briefly while the port is still taken (a restart on the same port).
 */
async function startServer(dir, port = 0) {
  const deadline = Date.now() + WAIT_MS;
  for (;;) {
    const server = start("chat server", serverBin, [String(port), dir]);
    try {
      const [, bound] = await server.waitFor(/^chat server on http:\/\/127\.0\.0\.1:(\d+)\//m, "its address");
      return { server, port: Number(bound), url: `http://127.0.0.1:${bound}/` };
    } catch (err) {
      await server.kill();
      if (!/in use/i.test(server.stderr) || Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}

async function launchChromium() {
  const userDataDir = await mkdtemp(path.join(tmpdir(), "isosock-examples-chromium-"));
  resources.dirs.add(userDataDir);
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: chromiumPath,
    headless: true,
    args: CHROMIUM_ARGS,
    viewport: { width: 880, height: 620 },
    timeout: WAIT_MS,
  });
  resources.contexts.add(context);
  context.setDefaultTimeout(WAIT_MS);
  return context;
}

// The one console error a page may log, and only while the test has the server down:
// Chromium's own line for a reconnect attempt that found no server.
const DOWN_CONSOLE_ERROR = /^WebSocket connection to 'ws:\/\/127\.0\.0\.1:\d+\/ws' failed/;

/**
 * Fails the test on any console error, uncaught page error or crash; while `allow.serverDown`
 * is set, the failed-connection line of `DOWN_CONSOLE_ERROR` is allowed.
 */
function watchPage(page, name, problems, allow) {
  page.on("console", (msg) => {
    if (msg.type() !== "error") return;
    if (allow.serverDown && DOWN_CONSOLE_ERROR.test(msg.text())) return;
    problems.push(`${name}: console error: ${msg.text()}`);
  });
  page.on("pageerror", (err) => problems.push(`${name}: page error: ${err.message}`));
  page.on("crash", () => problems.push(`${name}: the page crashed`));
}

function statusIs(page, state) {
  return page.locator(`#status[data-state="${state}"]`).waitFor({ timeout: WAIT_MS });
}

function onlineIs(page, n) {
  return page.locator(`#online[data-count="${n}"]`).waitFor({ timeout: WAIT_MS });
}

/** The message list's entry for `text` said by `nick`. */
function chatLine(page, nick, text) {
  return page
    .locator("#messages li.msg")
    .filter({ has: page.locator(".nick", { hasText: nick }) })
    .filter({ has: page.locator(".text", { hasText: text }) });
}

async function join(page, url, nick) {
  await page.goto(url, { timeout: WAIT_MS });
  // `idle` is set by the wasm app once it runs: the page loaded and mounted.
  await statusIs(page, "idle");
  await page.fill("#nick", nick);
  await page.click("#join-button");
  await statusIs(page, "open");
}

/**
 * Kills the page's server without a close handshake and starts it again on the same port,
 * serving `dir`: the page notices the drop, retries, and comes back by itself.
 */
async function restartServer({ server, port }, dir, page, allow) {
  allow.serverDown = true;
  await server.kill();
  await page
    .locator("#messages li.notice", { hasText: "Disconnected (1006 connection lost)" })
    .waitFor({ timeout: WAIT_MS });
  assert.equal(await page.locator("#send").isDisabled(), true, "send is disabled while down");
  const restarted = await startServer(dir, port);
  assert.equal(restarted.port, port);
  await statusIs(page, "open");
  allow.serverDown = false;
  await page.locator("#messages li.notice", { hasText: "Reconnected." }).waitFor({ timeout: WAIT_MS });
  await onlineIs(page, 1);
  return restarted;
}

async function say(page, text) {
  await page.locator("#send:enabled").waitFor({ timeout: WAIT_MS });
  await page.fill("#text", text);
  await page.click("#send");
}

/** Runs `body` with a diagnostics helper; on failure keeps screenshots and process output. */
async function scenario(t, name, body) {
  assert.ok(
    existsSync(chromiumPath),
    `Chromium not found at ${chromiumPath}: install it (apt-get install chromium) or set CHROMIUM`,
  );
  for (const file of needed) {
    assert.ok(existsSync(file), `${path.relative(root, file)} missing: run scripts/test-examples.sh`);
  }
  await rm(path.join(artifacts, `${name}-failed.png`), { force: true });
  const started = Date.now();
  const mark = (what) => t.diagnostic(`${((Date.now() - started) / 1000).toFixed(2)} s: ${what}`);
  const problems = [];
  const allow = { serverDown: false };
  const pages = [];
  try {
    await body({ mark, problems, allow, pages });
    assert.deepEqual(problems, [], "the page logged errors");
  } catch (err) {
    await mkdir(artifacts, { recursive: true }).catch(() => {});
    for (const page of pages) {
      await page.screenshot({ path: path.join(artifacts, `${name}-failed.png`), timeout: 5_000 }).catch(() => {});
    }
    for (const line of problems) t.diagnostic(line);
    for (const proc of resources.procs) {
      for (const line of proc.output().split("\n").filter(Boolean)) t.diagnostic(line);
    }
    throw err;
  } finally {
    await cleanup();
  }
}

test(
  "the Leptos page and the native chat-cli chat through the server",
  { timeout: TEST_TIMEOUT_MS, skip },
  (t) =>
    scenario(t, "frameworks-leptos", async ({ mark, problems, allow, pages }) => {
      const started = await startServer(webDir("leptos"));
      const { url, port } = started;
      mark(`chat server on ${url}, serving the Leptos build`);
      const context = await launchChromium();
      const page = context.pages()[0] ?? (await context.newPage());
      pages.push(page);
      watchPage(page, "Leptos page", problems, allow);

      await join(page, url, "ann");
      await onlineIs(page, 1);
      mark("the Leptos page joined as ann");

      const cli = start("chat-cli", cliBin, [`ws://127.0.0.1:${port}/ws`, "cli"]);
      await cli.waitFor(/^\* cli joined \(2 online\)$/m, "its own join");
      await page.locator("#messages li.system", { hasText: "cli joined" }).waitFor();
      await onlineIs(page, 2);
      mark("chat-cli joined; the page saw it");

      // A line typed into the CLI appears on the page.
      cli.child.stdin.write("hello from the terminal\n");
      await chatLine(page, "cli", "hello from the terminal").waitFor();
      mark("CLI -> page delivered");

      // A message sent from the page is printed by the CLI (and shown on the page as its own).
      await say(page, "hello from leptos");
      await cli.waitFor(/^<ann> hello from leptos$/m, "the page's message");
      await chatLine(page, "ann", "hello from leptos").and(page.locator(".mine")).waitFor();
      mark("page -> CLI delivered");

      // A burst over the server's rate limit (10 at once, then 5 per second), piped in one
      // write: the CLI paces it, so every line arrives and the server keeps the connection.
      const burst = Array.from({ length: 15 }, (_, i) => `burst line ${i + 1}`);
      cli.child.stdin.write(burst.map((line) => `${line}\n`).join(""));
      await chatLine(page, "cli", "burst line 15").waitFor();
      const fromCli = await page
        .locator("#messages li.msg")
        .filter({ has: page.locator(".nick", { hasText: "cli" }) })
        .locator(".text")
        .allTextContents();
      assert.deepEqual(fromCli, ["hello from the terminal", ...burst], "every line once, in order");
      mark("a 15-line burst arrived in full, in order");

      // End of input: the CLI leaves with a 1000 close handshake and exits 0.
      cli.child.stdin.end();
      const { code, signal } = await withTimeout(cli.exited, WAIT_MS, "chat-cli exit");
      assert.equal(code, 0, `chat-cli exit status (signal ${signal})\n${cli.output()}`);
      assert.match(cli.stderr, /left the room \(closed with 1000\)/);
      await page.locator("#messages li.system", { hasText: "cli left" }).waitFor();
      await onlineIs(page, 1);
      mark("chat-cli left with 1000 at end of input; the page saw it");

      await restartServer(started, webDir("leptos"), page, allow);
      await say(page, "back again");
      await chatLine(page, "ann", "back again").waitFor();
      mark("the server restarted; the page reconnected by itself and chats again");

      await mkdir(artifacts, { recursive: true });
      await page.screenshot({ path: path.join(artifacts, "frameworks-leptos.png"), timeout: WAIT_MS });
    }),
);

test(
  "the Yew page loads, connects, hears its own message and reconnects",
  { timeout: TEST_TIMEOUT_MS, skip },
  (t) =>
    scenario(t, "frameworks-yew", async ({ mark, problems, allow, pages }) => {
      const started = await startServer(webDir("yew"));
      const { url } = started;
      mark(`chat server on ${url}, serving the Yew build`);
      const context = await launchChromium();
      const page = context.pages()[0] ?? (await context.newPage());
      pages.push(page);
      watchPage(page, "Yew page", problems, allow);

      await join(page, url, "yan");
      await onlineIs(page, 1);
      await page.locator("#messages li.system", { hasText: "yan joined" }).waitFor();
      mark("the Yew page joined as yan");

      await say(page, "hello from yew");
      await chatLine(page, "yan", "hello from yew").and(page.locator(".mine")).waitFor();
      assert.equal(await page.inputValue("#text"), "", "the input is cleared after sending");
      mark("its message came back from the server");

      await restartServer(started, webDir("yew"), page, allow);
      await say(page, "back again");
      await chatLine(page, "yan", "back again").waitFor();
      mark("the server restarted; the page reconnected by itself and chats again");

      await mkdir(artifacts, { recursive: true });
      await page.screenshot({ path: path.join(artifacts, "frameworks-yew.png"), timeout: WAIT_MS });
    }),
);

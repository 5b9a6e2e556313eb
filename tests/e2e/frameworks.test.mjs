// The chat demo's framework frontends end to end, in each browser engine of
// tests/js/browsers.mjs (headless Chromium through playwright-core; Firefox ESR and WebKitGTK
// through their WebDriver servers and selenium-webdriver; ISOSOCK_BROWSERS picks them): the
// Leptos page, rendered by its own axum server (examples/leptos-chat, feature `ssr`) and
// hydrated in the browser, and the native chat-cli chat with each other through that server;
// the Yew page, served by examples/chat_server.rs, loads, connects and hears its own message;
// both pages reconnect after their server restarts.
//
// Builds nothing: scripts/test-examples.sh builds target/examples-web/{leptos,yew},
// target/debug/isosock-leptos-chat, target/debug/examples/chat_server and target/debug/chat-cli
// first; missing builds fail it.
// Loopback only; every wait is bounded; servers, CLI clients and browsers are killed at the end,
// pass or fail. Screenshots go to tests/artifacts/ (frameworks-<page>-<engine>.png).

import { test, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, rm } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";

import { ENGINE_NAMES, engines, openPage } from "../js/browsers.mjs";
import { chatLine, entry, onlineIs, say, statusIs, withTimeout } from "./pages.mjs";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
const targetDir = path.resolve(root, process.env.CARGO_TARGET_DIR ?? "target");
const serverBin = path.join(targetDir, "debug", "examples", "chat_server");
const leptosBin = path.join(targetDir, "debug", "isosock-leptos-chat");
const cliBin = path.join(targetDir, "debug", "chat-cli");
const webDir = (name) => path.join(targetDir, "examples-web", name);
const wasmOf = (name) => path.join(webDir(name), "pkg", `${name}_chat_bg.wasm`);
const artifacts = path.join(root, "tests", "artifacts");

/** Longest wait for any one thing (a process start, a page state, a message). */
const WAIT_MS = 20_000;
/** Each test as a whole. */
const TEST_TIMEOUT_MS = 120_000;

const needed = [serverBin, leptosBin, cliBin, wasmOf("leptos"), wasmOf("yew")];
const missing = needed.filter((file) => !existsSync(file));
if (missing.length > 0) {
  // Fail loudly rather than skip: a test that cannot run is a failure.
  throw new Error(
    `not built (${missing.map((f) => path.relative(root, f)).join(", ")}): run scripts/test-examples.sh`,
  );
}
const skip = false;

/** Everything to stop at the end, whatever happens. */
const resources = { procs: new Set(), pages: new Set() };

async function cleanup() {
  for (const page of resources.pages) await page.close();
  resources.pages.clear();
  for (const proc of resources.procs) await proc.kill();
}
after(cleanup);
// Last resort if the runner exits early: a synchronous kill of every child process.
process.on("exit", () => {
  for (const proc of resources.procs) proc.child.kill("SIGKILL");
});

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

/** Each page's server: the chat server with the Yew build, the Leptos page's own SSR server. */
const SERVERS = {
  yew: { name: "chat server", bin: serverBin, dir: webDir("yew") },
  leptos: { name: "leptos chat server", bin: leptosBin, dir: webDir("leptos") },
};

/**
 * Starts the page's server (SERVERS[page]) on `port` (0: a free one); resolves with it and its
 * page URL. Retries briefly while the port is still taken (a restart on the same port).
 */
async function startServer(page, port = 0) {
  const { name, bin, dir } = SERVERS[page];
  const deadline = Date.now() + WAIT_MS;
  for (;;) {
    const server = start(name, bin, [String(port), dir]);
    try {
      const [, bound] = await server.waitFor(
        new RegExp(`^${name} on http://127\\.0\\.0\\.1:(\\d+)/`, "m"),
        "its address",
      );
      return { server, port: Number(bound), url: `http://127.0.0.1:${bound}/`, page };
    } catch (err) {
      await server.kill();
      if (!/in use/i.test(server.stderr) || Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}

async function newPage(engine) {
  const page = await openPage(engine, { viewport: { width: 880, height: 620 }, timeout: WAIT_MS });
  resources.pages.add(page);
  return page;
}

/**
 * What a browser itself may log, and only while the test has the server down: its own report
 * of a reconnect attempt that found no server (or of the connection the kill cut), per engine.
 * WebKitGTK's own log does not reach the page's error collector.
 */
const DOWN_ERRORS = {
  chromium: [/^console error: WebSocket connection to 'ws:\/\/127\.0\.0\.1:\d+\/ws' failed/],
  firefox: [
    /^page error: Firefox can.t establish a connection to the server at ws:\/\/127\.0\.0\.1:\d+\/ws\.$/,
    /^page error: The connection to ws:\/\/127\.0\.0\.1:\d+\/ws was interrupted while the page was loading\.$/,
  ],
  webkit: [],
};

/**
 * The page's errors that it may not log: any outside the server's down time (`downWindow`,
 * indices into its error list), and any inside it but DOWN_ERRORS.
 */
async function unexpectedErrors(page, name, downWindow) {
  const all = await page.errors();
  const [from, to] = downWindow ?? [all.length, all.length];
  return all
    .filter((e, i) => !(i >= from && i < to && DOWN_ERRORS[page.engine].some((re) => re.test(e))))
    .map((e) => `${name}: ${e}`);
}

async function join(page, url, nick) {
  await page.goto(url);
  // `idle` is set by the wasm app once it runs: the page loaded and mounted (Yew) or hydrated
  // (Leptos, whose server renders `loading`).
  await statusIs(page, "idle");
  await page.fill("#nick", nick);
  await page.click("#join-button");
  await statusIs(page, "open");
}

/**
 * Kills the page's server without a close handshake and starts it again on the same port: the
 * page notices the drop, retries, and comes back by itself. Returns the restarted server and the
 * window of the page's error list that the down time covers.
 */
async function restartServer({ server, port, page: kind }, page) {
  const from = (await page.errors()).length;
  await server.kill();
  await entry(page, "notice", "Disconnected (1006 connection lost)");
  assert.equal(
    await page.evaluate(() => document.getElementById("send").disabled),
    true,
    "send is disabled while down",
  );
  const restarted = await startServer(kind, port);
  assert.equal(restarted.port, port);
  await statusIs(page, "open");
  const to = (await page.errors()).length;
  await entry(page, "notice", "Reconnected.");
  await onlineIs(page, 1);
  return { restarted, downWindow: [from, to] };
}

/** Runs `body` with a diagnostics helper; on failure keeps screenshots and process output. */
async function scenario(t, name, engine, body) {
  for (const file of needed) {
    assert.ok(existsSync(file), `${path.relative(root, file)} missing: run scripts/test-examples.sh`);
  }
  const shot = (suffix = "") => path.join(artifacts, `${name}-${engine}${suffix}.png`);
  await rm(shot("-failed"), { force: true });
  const started = Date.now();
  const mark = (what) => t.diagnostic(`${((Date.now() - started) / 1000).toFixed(2)} s: ${what}`);
  const pages = [];
  try {
    await body({ mark, pages, shot });
  } catch (err) {
    await mkdir(artifacts, { recursive: true }).catch(() => {});
    for (const page of pages) {
      await page.screenshot(shot("-failed")).catch(() => {});
      for (const line of await page.errors().catch(() => [])) t.diagnostic(`page: ${line}`);
    }
    for (const proc of resources.procs) {
      for (const line of proc.output().split("\n").filter(Boolean)) t.diagnostic(line);
    }
    throw err;
  } finally {
    await cleanup();
  }
}

for (const engine of engines()) {
  const NAME = ENGINE_NAMES[engine];

  test(
    `the Leptos page, rendered on its server and hydrated, chats with the native chat-cli (${NAME})`,
    { timeout: TEST_TIMEOUT_MS, skip },
    (t) =>
      scenario(t, "frameworks-leptos", engine, async ({ mark, pages, shot }) => {
        const started = await startServer("leptos");
        const { url, port } = started;
        mark(`the Leptos page's server on ${url}`);

        // The server renders the page from the components the wasm hydrates: the whole
        // markup is in the HTML, waiting for the wasm (`loading`, join disabled), and the
        // hydration script loads the page's wasm.
        const response = await withTimeout(fetch(url), WAIT_MS, "GET /");
        assert.equal(response.status, 200);
        assert.match(response.headers.get("content-type") ?? "", /^text\/html/);
        const html = await response.text();
        for (const part of [
          /^<!DOCTYPE html><html lang="en">/,
          /<h1>isosock chat · Leptos<\/h1>/,
          /<div id="status" role="status" data-state="loading" class="status">/,
          /<span id="status-text">loading…<\/span>/,
          /<form id="join" class="join card">/,
          /<button id="join-button" type="submit" disabled>Join<\/button>/,
          /<ol id="messages" aria-label="Messages" class="messages">/,
          /import\(`\$\{root\}\/\$\{pkg_path\}\/\$\{output_name\}\.js`\)/,
          /\("", "pkg", "leptos_chat", "leptos_chat_bg", false\)/,
        ]) {
          assert.match(html, part, "the server-rendered page");
        }
        mark(`GET / rendered the page on the server (${html.length} bytes)`);

        const page = await newPage(engine);
        pages.push(page);
        await join(page, url, "ann");
        await onlineIs(page, 1);
        // Hydration took over the server's nodes: one app, not a second one mounted beside it.
        assert.equal(await page.evaluate(() => document.querySelectorAll(".app, h1, #status").length), 3);
        mark(`the hydrated Leptos page joined as ann (${page.version})`);

        const cli = start("chat-cli", cliBin, [`ws://127.0.0.1:${port}/ws`, "cli"]);
        await cli.waitFor(/^\* cli joined \(2 online\)$/m, "its own join");
        await entry(page, "system", "cli joined");
        await onlineIs(page, 2);
        mark("chat-cli joined; the page saw it");

        // A line typed into the CLI appears on the page.
        cli.child.stdin.write("hello from the terminal\n");
        await chatLine(page, "cli", "hello from the terminal");
        mark("CLI -> page delivered");

        // A message sent from the page is printed by the CLI (and shown on the page as its own).
        await say(page, "hello from leptos");
        await cli.waitFor(/^<ann> hello from leptos$/m, "the page's message");
        await chatLine(page, "ann", "hello from leptos", { mine: true });
        mark("page -> CLI delivered");

        // A burst over the server's rate limit (10 at once, then 5 per second), piped in one
        // write: the CLI paces it, so every line arrives and the server keeps the connection.
        const burst = Array.from({ length: 15 }, (_, i) => `burst line ${i + 1}`);
        cli.child.stdin.write(burst.map((line) => `${line}\n`).join(""));
        await chatLine(page, "cli", "burst line 15");
        const fromCli = await page.evaluate(() =>
          [...document.querySelectorAll("#messages li.msg")]
            .filter((li) => li.querySelector(".nick")?.textContent.includes("cli"))
            .map((li) => li.querySelector(".text")?.textContent ?? ""),
        );
        assert.deepEqual(fromCli, ["hello from the terminal", ...burst], "every line once, in order");
        mark("a 15-line burst arrived in full, in order");

        // End of input: the CLI leaves with a 1000 close handshake and exits 0.
        cli.child.stdin.end();
        const { code, signal } = await withTimeout(cli.exited, WAIT_MS, "chat-cli exit");
        assert.equal(code, 0, `chat-cli exit status (signal ${signal})\n${cli.output()}`);
        assert.match(cli.stderr, /left the room \(closed with 1000\)/);
        await entry(page, "system", "cli left");
        await onlineIs(page, 1);
        mark("chat-cli left with 1000 at end of input; the page saw it");

        const { downWindow } = await restartServer(started, page);
        await say(page, "back again");
        await chatLine(page, "ann", "back again");
        mark("the server restarted; the page reconnected by itself and chats again");

        await mkdir(artifacts, { recursive: true });
        await page.screenshot(shot());
        assert.deepEqual(await unexpectedErrors(page, "Leptos page", downWindow), [], "the page logged errors");
      }),
  );

  test(
    `the Yew page loads, connects, hears its own message and reconnects (${NAME})`,
    { timeout: TEST_TIMEOUT_MS, skip },
    (t) =>
      scenario(t, "frameworks-yew", engine, async ({ mark, pages, shot }) => {
        const started = await startServer("yew");
        const { url } = started;
        mark(`chat server on ${url}, serving the Yew build`);
        const page = await newPage(engine);
        pages.push(page);

        await join(page, url, "yan");
        await onlineIs(page, 1);
        await entry(page, "system", "yan joined");
        mark(`the Yew page joined as yan (${page.version})`);

        await say(page, "hello from yew");
        await chatLine(page, "yan", "hello from yew", { mine: true });
        assert.equal(
          await page.evaluate(() => document.getElementById("text").value),
          "",
          "the input is cleared after sending",
        );
        mark("its message came back from the server");

        const { downWindow } = await restartServer(started, page);
        await say(page, "back again");
        await chatLine(page, "yan", "back again");
        mark("the server restarted; the page reconnected by itself and chats again");

        await mkdir(artifacts, { recursive: true });
        await page.screenshot(shot());
        assert.deepEqual(await unexpectedErrors(page, "Yew page", downWindow), [], "the page logged errors");
      }),
  );
}

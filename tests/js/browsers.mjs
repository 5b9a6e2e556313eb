// One page in a real browser, the same way for every engine the browser tests run in:
//
// - `chromium`: Debian's /usr/bin/chromium, headless, through playwright-core;
// - `firefox`: Debian's Firefox ESR, headless, through geckodriver (WebDriver, with BiDi for
//   the page's errors) and selenium-webdriver;
// - `webkit`: WebKitGTK's MiniBrowser through WebKitWebDriver and selenium-webdriver, on an Xvfb
//   display of its own (MiniBrowser's `--headless` makes session creation hang).
//
// Nothing here downloads a browser or a driver: each driver is started by this module on a free
// loopback port and selenium-webdriver only talks to it (`usingServer`), so Selenium Manager
// never runs (SE_MANAGER_PATH points nowhere, so it would fail loudly if it ever tried). A
// missing browser or driver is an error with the driver's own message, never a skipped test.
//
// `openPage(engine)` resolves to a page with goto, evaluate(fn, arg), evaluateInBackground,
// waitForFunction, textContent, click, fill, screenshot, errors() and close(). Page errors
// (uncaught exceptions, unhandled rejections, console.error) are collected per engine:
// Playwright's pageerror/console events in Chromium, BiDi `log.entryAdded` in Firefox, and in
// WebKit (whose driver has no BiDi and no log endpoint) an in-page collector: pages that embed
// PAGE_ERROR_COLLECTOR first catch everything, other pages get it installed by goto() once
// loaded (errors before the load event are then only seen through their effect on the page).
//
// ISOSOCK_BROWSERS (comma-separated, default "chromium,firefox,webkit") picks the engines
// that `engines()` returns; the test files run their suites once per engine.
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { chromium } from "playwright-core";

// Before selenium-webdriver loads: Selenium Manager (the downloader) must never run.
process.env.SE_MANAGER_PATH = "/nonexistent/selenium-manager-must-not-run";
process.env.SE_OFFLINE = "true";
const require = createRequire(import.meta.url);
const { Builder, By } = require("selenium-webdriver");
const LogInspector = require("selenium-webdriver/bidi/logInspector");

export const ALL_ENGINES = ["chromium", "firefox", "webkit"];

/** How the test names call each engine. */
export const ENGINE_NAMES = { chromium: "Chromium", firefox: "Firefox ESR", webkit: "WebKitGTK" };

/** The engines to test: ISOSOCK_BROWSERS (comma-separated) or all of them. */
export function engines() {
  const list = (process.env.ISOSOCK_BROWSERS ?? ALL_ENGINES.join(","))
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
  for (const e of list) {
    if (!ALL_ENGINES.includes(e)) {
      throw new Error(`ISOSOCK_BROWSERS: unknown engine '${e}' (known: ${ALL_ENGINES.join(", ")})`);
    }
  }
  if (list.length === 0) throw new Error("ISOSOCK_BROWSERS names no engine");
  return list;
}

const PATHS = {
  chromium: process.env.CHROMIUM ?? "/usr/bin/chromium",
  firefox: process.env.FIREFOX ?? "/usr/bin/firefox-esr",
  geckodriver: process.env.GECKODRIVER ?? onPath("geckodriver") ?? join(process.env.HOME ?? "/root", ".cargo", "bin", "geckodriver"),
  webkitDriver: process.env.WEBKIT_WEBDRIVER ?? "/usr/bin/WebKitWebDriver",
  miniBrowser: process.env.MINIBROWSER ?? "/usr/lib/x86_64-linux-gnu/webkit2gtk-4.1/MiniBrowser",
  xvfb: process.env.XVFB ?? "/usr/bin/Xvfb",
};

function onPath(name) {
  for (const dir of (process.env.PATH ?? "").split(":")) {
    if (dir && existsSync(join(dir, name))) return join(dir, name);
  }
  return null;
}

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

// Firefox without the traffic a closed network can only fail (geckodriver's profile already
// turns most of it off).
const FIREFOX_PREFS = {
  "app.normandy.enabled": false,
  "app.update.disabledForTesting": true,
  "browser.region.network.url": "",
  "browser.safebrowsing.downloads.remote.enabled": false,
  "datareporting.policy.dataSubmissionEnabled": false,
  "messaging-system.rsexperimentloader.enabled": false,
  "network.captive-portal-service.enabled": false,
  "network.connectivity-service.enabled": false,
  "network.proxy.type": 0,
  "services.settings.server": "http://127.0.0.1:9/",
};

/**
 * An inline script for test pages, to run before any other script: it keeps uncaught errors,
 * unhandled rejections, failed resource loads and console.error calls in
 * `window.__isosockErrors`, where `errors()` reads them in WebKit.
 */
export const PAGE_ERROR_COLLECTOR = `(() => {
  if (window.__isosockErrors) return;
  const errors = (window.__isosockErrors = []);
  const text = (x) => (x instanceof Error ? \`\${x.name}: \${x.message}\` : String(x));
  addEventListener("error", (e) => {
    if (e.target && e.target !== window) {
      errors.push(\`resource failed to load: \${e.target.src ?? e.target.href ?? e.target.tagName}\`);
    } else {
      errors.push(\`page error: \${e.error !== undefined ? text(e.error) : e.message}\`);
    }
  }, true);
  addEventListener("unhandledrejection", (e) => errors.push(\`page error: unhandled rejection: \${text(e.reason)}\`));
  const consoleError = console.error;
  console.error = function (...args) {
    errors.push(\`console error: \${args.map(text).join(" ")}\`);
    return consoleError.apply(this, args);
  };
})();`;

/** Longest wait for any one browser operation unless told otherwise. */
const DEFAULT_TIMEOUT_MS = 20_000;

function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no result within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/** Drivers and displays still running, killed if the process exits without closing them. */
const live = new Set();
process.on("exit", () => {
  for (const child of live) {
    try {
      process.kill(-child.pid, "SIGKILL");
    } catch {
      // already gone
    }
  }
});

/**
 * Starts `bin` in a process group of its own (so that close() also ends the browser it starts)
 * and keeps the tail of its output for error messages.
 */
function startProcess(name, bin, args, env = process.env) {
  if (!existsSync(bin)) throw new Error(`${name} not found at ${bin}: run scripts/setup.sh`);
  const child = spawn(bin, args, { env, detached: true, stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  const keep = (chunk) => {
    output = (output + chunk).slice(-8000);
  };
  child.stdout.setEncoding("utf8").on("data", keep);
  child.stderr.setEncoding("utf8").on("data", keep);
  if (child.pid !== undefined) live.add(child);
  const exited = new Promise((resolve) => {
    child.once("exit", (code, signal) => {
      live.delete(child);
      resolve({ code, signal });
    });
    child.once("error", (err) => {
      keep(`spawn error: ${err.message}\n`);
      resolve({ code: null, signal: null, error: err });
    });
  });
  return {
    name,
    child,
    exited,
    output: () => output,
    running: () => child.exitCode === null && child.signalCode === null && child.pid !== undefined,
    async kill() {
      if (child.pid === undefined) return;
      for (const sig of ["SIGTERM", "SIGKILL"]) {
        try {
          process.kill(-child.pid, sig); // the group: the driver and the browser it started
        } catch {
          // already gone
        }
        const done = await withTimeout(exited, 3_000, `${name} exit`).then(() => true, () => false);
        if (done) break;
      }
    },
  };
}

/** A process that must still be running: its output so far if not. */
function assertRunning(proc, what) {
  if (!proc.running()) {
    throw new Error(`${proc.name} exited before ${what}:\n${proc.output()}`);
  }
}

/** Starts an Xvfb display of its own (WebKitGTK's MiniBrowser needs one); resolves to ":N". */
async function startXvfb() {
  const proc = startProcess("Xvfb", PATHS.xvfb, ["-displayfd", "1", "-screen", "0", "1280x1024x24", "-nolisten", "tcp"]);
  const deadline = Date.now() + 10_000;
  for (;;) {
    const m = /^(\d+)\s*$/m.exec(proc.output());
    if (m) return { proc, display: `:${m[1]}` };
    assertRunning(proc, "choosing a display");
    if (Date.now() > deadline) {
      await proc.kill();
      throw new Error(`Xvfb printed no display within 10 s:\n${proc.output()}`);
    }
    await sleep(20);
  }
}

/** Starts a WebDriver server and waits until its /status answers. */
async function startDriver(name, bin, argsFor, env) {
  let lastError;
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort();
    const proc = startProcess(name, bin, argsFor(port), env);
    const url = `http://127.0.0.1:${port}`;
    const deadline = Date.now() + 15_000;
    while (Date.now() < deadline && proc.running()) {
      try {
        const res = await fetch(`${url}/status`, { signal: AbortSignal.timeout(2_000) });
        if (res.ok) return { proc, url };
      } catch (err) {
        lastError = err;
      }
      await sleep(50);
    }
    await proc.kill();
    lastError = new Error(`${name} did not answer on ${url} (${lastError?.message ?? "exited"}):\n${proc.output()}`);
    // The port may have been taken between freePort() and the driver's bind: try another.
    if (!/in use/i.test(proc.output())) break;
  }
  throw lastError;
}

/**
 * Opens a page in `engine` ("chromium", "firefox" or "webkit"). Options: `viewport`
 * ({ width, height }), `timeout` (ms, default 20 s: the longest wait for one operation),
 * `scriptTimeout` (ms, default 120 s: the longest evaluate).
 */
export async function openPage(engine, options = {}) {
  if (!ALL_ENGINES.includes(engine)) throw new Error(`unknown engine '${engine}'`);
  return engine === "chromium" ? openChromium(options) : openWebDriver(engine, options);
}

async function openChromium({ viewport = { width: 1024, height: 768 }, timeout = DEFAULT_TIMEOUT_MS } = {}) {
  if (!existsSync(PATHS.chromium)) throw new Error(`Chromium not found at ${PATHS.chromium}: run scripts/setup.sh`);
  const browser = await chromium.launch({ executablePath: PATHS.chromium, headless: true, timeout: 30_000, args: CHROMIUM_ARGS });
  let page;
  try {
    page = await browser.newPage({ viewport });
  } catch (err) {
    await browser.close().catch(() => {});
    throw err;
  }
  page.setDefaultTimeout(timeout);
  const problems = [];
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  page.on("console", (m) => {
    if (m.type() === "error") problems.push(`console error: ${m.text()}`);
  });
  page.on("crash", () => problems.push("the page crashed"));
  return {
    engine: "chromium",
    name: ENGINE_NAMES.chromium,
    version: `Chromium ${browser.version()}`,
    /** The Playwright page, for what only Chromium offers (CDP sessions, init scripts). */
    playwright: page,
    goto: (url) => page.goto(url, { timeout }),
    evaluate: (fn, arg) => page.evaluate(fn, arg),
    evaluateInBackground: (fn, arg) => background(evaluator, fn, arg),
    waitForFunction: async (fn, arg, opts = {}) =>
      (await page.waitForFunction(fn, arg, { timeout: opts.timeout ?? timeout, polling: 50 })).jsonValue(),
    textContent: (selector) => page.textContent(selector, { timeout }),
    async click(selector) {
      // Playwright's click waits for animation frames, which a background page gets rarely.
      await page.bringToFront();
      await page.click(selector, { timeout });
    },
    fill: (selector, text) => page.fill(selector, text, { timeout }),
    screenshot: (path) => page.screenshot({ path, timeout }),
    errors: async () => [...problems],
    close: () => withTimeout(browser.close(), 10_000, "closing Chromium").catch(() => {}),
  };
  function evaluator(f, a) {
    return page.evaluate(f, a);
  }
}

async function openWebDriver(engine, { viewport = { width: 1024, height: 768 }, timeout = DEFAULT_TIMEOUT_MS, scriptTimeout = 120_000 } = {}) {
  const cleanups = [];
  const cleanup = async () => {
    for (const f of cleanups.reverse()) await f().catch(() => {});
    cleanups.length = 0;
  };
  try {
    let driverProc;
    let driverUrl;
    let caps;
    if (engine === "firefox") {
      if (!existsSync(PATHS.firefox)) throw new Error(`Firefox not found at ${PATHS.firefox}: run scripts/setup.sh`);
      const profileRoot = mkdtempSync(join(tmpdir(), "isosock-firefox-"));
      cleanups.push(async () => rmSync(profileRoot, { recursive: true, force: true }));
      ({ proc: driverProc, url: driverUrl } = await startDriver(
        "geckodriver",
        PATHS.geckodriver,
        (port) => ["--host", "127.0.0.1", "--port", String(port), "--websocket-port", "0", "--profile-root", profileRoot],
        process.env,
      ));
      caps = {
        browserName: "firefox",
        webSocketUrl: true, // BiDi, for the page's errors
        "moz:firefoxOptions": {
          binary: PATHS.firefox,
          args: ["-headless", `--width=${viewport.width}`, `--height=${viewport.height}`],
          prefs: FIREFOX_PREFS,
        },
      };
    } else {
      if (!existsSync(PATHS.miniBrowser)) throw new Error(`MiniBrowser not found at ${PATHS.miniBrowser}: run scripts/setup.sh`);
      const xvfb = await startXvfb();
      cleanups.push(() => xvfb.proc.kill());
      ({ proc: driverProc, url: driverUrl } = await startDriver(
        "WebKitWebDriver",
        PATHS.webkitDriver,
        (port) => [`--port=${port}`, "--host=local"],
        { ...process.env, DISPLAY: xvfb.display },
      ));
      caps = {
        browserName: "MiniBrowser",
        "webkitgtk:browserOptions": { binary: PATHS.miniBrowser, args: ["--automation"] },
      };
    }
    cleanups.push(() => driverProc.kill());

    const driver = await withTimeout(
      new Builder().usingServer(driverUrl).withCapabilities(caps).build(),
      60_000,
      `${engine}: creating a WebDriver session at ${driverUrl}`,
    ).catch((err) => {
      throw new Error(`${ENGINE_NAMES[engine]}: no WebDriver session: ${err.message}\n${driverProc.output()}`);
    });
    cleanups.push(() => withTimeout(driver.quit(), 10_000, "ending the WebDriver session"));
    await driver.manage().setTimeouts({ script: scriptTimeout, pageLoad: timeout, implicit: 0 });
    if (engine === "webkit") {
      await driver.manage().window().setRect({ width: viewport.width, height: viewport.height }).catch(() => {});
    }
    const capabilities = await driver.getCapabilities();
    const version = `${ENGINE_NAMES[engine]} ${capabilities.get("browserVersion")}`;

    const problems = [];
    if (engine === "firefox") {
      const inspector = await LogInspector(driver);
      await inspector.onJavascriptException((e) => problems.push(`page error: ${e.text}`));
      await inspector.onConsoleEntry((e) => {
        if (e.level === "error") problems.push(`console error: ${e.text}`);
      });
      cleanups.push(() => withTimeout(inspector.close(), 5_000, "closing BiDi"));
    }

    // WebKit: read (and empty) the in-page collector.
    const harvest = async () => {
      if (engine !== "webkit") return;
      try {
        const got = await driver.executeScript("return window.__isosockErrors ? window.__isosockErrors.splice(0) : [];");
        problems.push(...got);
      } catch (err) {
        problems.push(`could not read the page's errors: ${err.message}`);
      }
    };

    // The function is compiled by the page's own eval, so that it runs in the page's realm:
    // geckodriver runs scripts in a sandbox whose Uint8Array and Error are not the page's
    // (`instanceof` would fail for what the page made).
    const evaluate = (fn, arg) =>
      driver.executeScript(
        "return window.eval(arguments[0])(arguments[1]);",
        `(${fn.toString()})`,
        arg === undefined ? null : arg,
      );

    return {
      engine,
      name: ENGINE_NAMES[engine],
      version,
      driver,
      async goto(url) {
        await harvest();
        await driver.get(url);
        if (engine === "webkit") await driver.executeScript(PAGE_ERROR_COLLECTOR);
      },
      evaluate,
      evaluateInBackground: (fn, arg) => background(evaluate, fn, arg),
      async waitForFunction(fn, arg, opts = {}) {
        const ms = opts.timeout ?? timeout;
        const deadline = Date.now() + ms;
        for (;;) {
          const value = await evaluate(fn, arg);
          if (value) return value;
          if (Date.now() > deadline) throw new Error(`waitForFunction: not true within ${ms} ms: ${fn.toString()}`);
          await sleep(50);
        }
      },
      textContent: (selector) =>
        evaluate((s) => {
          const el = document.querySelector(s);
          if (!el) throw new Error(`no element matches ${s}`);
          return el.textContent;
        }, selector),
      async click(selector) {
        await (await driver.findElement(By.css(selector))).click();
      },
      async fill(selector, text) {
        const el = await driver.findElement(By.css(selector));
        await el.clear();
        await el.sendKeys(text);
      },
      async screenshot(path) {
        writeFileSync(path, Buffer.from(await driver.takeScreenshot(), "base64"));
      },
      async errors() {
        await harvest();
        return [...problems];
      },
      close: cleanup,
    };
  } catch (err) {
    await cleanup();
    throw err;
  }
}

let backgroundCount = 0;

/**
 * Starts `fn(arg)` in the page without waiting for it (a WebDriver session runs one command at
 * a time, so a long evaluate would block every other call); `result(ms)` polls for its value.
 */
async function background(evaluate, fn, arg) {
  const id = `bg${++backgroundCount}`;
  await evaluate(
    ({ id, src, arg }) => {
      const jobs = (window.__isosockJobs ??= {});
      jobs[id] = { done: false };
      // eslint-disable-next-line no-eval
      Promise.resolve()
        .then(() => (0, eval)(`(${src})`)(arg))
        .then(
          (value) => (jobs[id] = { done: true, value }),
          (e) => (jobs[id] = { done: true, error: e instanceof Error ? `${e.name}: ${e.message}\n${e.stack}` : String(e) }),
        );
    },
    { id, src: fn.toString(), arg: arg === undefined ? null : arg },
  );
  return {
    async result(ms, what = "the page's background evaluation") {
      const deadline = Date.now() + ms;
      for (;;) {
        const job = await evaluate((id) => {
          const j = window.__isosockJobs?.[id];
          if (j?.done) delete window.__isosockJobs[id];
          return j ?? { done: true, error: `no job ${id} in the page (did it navigate?)` };
        }, id);
        if (job.done) {
          if (job.error !== undefined) throw new Error(`${what} failed in the page: ${job.error}`);
          return job.value;
        }
        if (Date.now() > deadline) throw new Error(`${what} did not settle within ${ms} ms`);
        await sleep(50);
      }
    },
  };
}

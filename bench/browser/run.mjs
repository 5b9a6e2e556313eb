// Drives the browser benchmark: serves the built page (index.html, bench.js and the
// wasm-bindgen output in pkg/) from 127.0.0.1, opens it in one browser engine through
// tests/js/browsers.mjs (headless Chromium through playwright-core by default; Firefox ESR or
// WebKitGTK through their WebDriver servers and selenium-webdriver), runs window.runBenchmark
// against the echo server and prints the markdown table. scripts/bench-browser.sh builds
// everything and starts the echo server; run it instead of this file.
//
// Usage: node bench/browser/run.mjs --url ws://127.0.0.1:PORT [--dir DIR] [--rounds N]
//        [--scale X] [--window W] [--mode network|loopback|both] [--browser ENGINE]
//        [--json FILE] [--profile FILE]
//
// --mode: `network` runs the loops against the echo server; `loopback` against an in-page echo
// (LoopbackWebSocket in bench.js): no network, so what remains is each client's own
// main-thread cost, where isosock's overhead is easier to see; `both` (the default) prints
// both tables.
//
// --browser: chromium (the default), firefox or webkit. The page runs the benchmark on its own;
// this script only polls it about once a second for its progress lines and its result.
//
// --profile FILE (Chromium only) writes a report on where isosock's time goes: per case, the
// calls from wasm into JS (each wasm-bindgen import, counted by wrapping the imports in a second
// page) and the heap allocations (the `count-allocs` feature) per message, and the hottest
// functions (self time) of a V8 CPU profile (Chrome DevTools Protocol) of one more isosock and
// one raw-JS run.
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = join(HERE, "..", "..");
// The browsers and the static server of the npm tests.
const { ALL_ENGINES, PAGE_ERROR_COLLECTOR, openPage } = await import(join(ROOT, "tests", "js", "browsers.mjs"));
const { serveDirectory } = await import(join(ROOT, "tests", "js", "helpers.mjs"));

const { values: opts } = parseArgs({
  options: {
    url: { type: "string", default: process.env.ISOSOCK_ECHO_URL },
    dir: { type: "string", default: join(ROOT, "target", "bench-browser") },
    rounds: { type: "string", default: "7" },
    scale: { type: "string", default: "1" },
    window: { type: "string", default: "16" },
    json: { type: "string" },
    profile: { type: "string" },
    mode: { type: "string", default: "both" },
    browser: { type: "string", default: "chromium" },
  },
});
if (!["network", "loopback", "both"].includes(opts.mode)) {
  console.error(`run.mjs: --mode is network, loopback or both, not ${opts.mode}`);
  process.exit(2);
}
if (!ALL_ENGINES.includes(opts.browser)) {
  console.error(`run.mjs: --browser is ${ALL_ENGINES.join(", ")}, not ${opts.browser}`);
  process.exit(2);
}
if (opts.profile && opts.browser !== "chromium") {
  console.error("run.mjs: --profile needs --browser chromium (it uses the Chrome DevTools Protocol)");
  process.exit(2);
}
if (!opts.url) {
  console.error("run.mjs: pass --url ws://127.0.0.1:PORT (or run scripts/bench-browser.sh)");
  process.exit(2);
}

// The page and its script sit next to the wasm-bindgen output (DIR/pkg/); the page's copy
// collects its own errors first (WebKitGTK's driver reports none).
mkdirSync(opts.dir, { recursive: true });
copyFileSync(join(HERE, "bench.js"), join(opts.dir, "bench.js"));
writeFileSync(
  join(opts.dir, "index.html"),
  readFileSync(join(HERE, "index.html"), "utf8").replace("<head>", `<head>\n<script>${PAGE_ERROR_COLLECTOR}</script>`),
);

/** The longest a whole benchmark run in the page may take. */
const RUN_TIMEOUT_MS = 60 * 60_000;

const server = await serveDirectory(opts.dir);
const page = await openPage(opts.browser, { scriptTimeout: 600_000 });
try {
  await page.goto(`http://127.0.0.1:${server.address().port}/index.html`);
  await page.waitForFunction(() => document.body?.dataset.ready === "yes");

  const config = {
    url: opts.url,
    rounds: Number(opts.rounds),
    scale: Number(opts.scale),
    window: Number(opts.window),
  };
  const run = (loopback) => runInPage(page, { ...config, loopback, tag: loopback ? "loopback " : "" });
  const net = opts.mode === "loopback" ? null : await run(false);
  const loop = opts.mode === "network" ? null : await run(true);
  if (opts.profile) {
    const cases = (net ?? loop).cases;
    const counts = await countCalls(server, config, cases);
    writeFileSync(opts.profile, counts + "\n" + (await profile(page.playwright, config, cases)));
  }
  const problems = await page.errors();
  if (problems.length) throw new Error(problems.join("\n"));

  const how = opts.browser === "webkit" ? "on Xvfb" : "headless";
  console.log(`${page.version} (${how}), ${opts.url}\n`);
  console.log([net?.markdown, loop?.markdown].filter(Boolean).join("\n\n"));
  if (opts.json) {
    const all = { engine: opts.browser, browser: page.version, config, network: net, loopback: loop };
    if (opts.browser === "chromium") all.chromium = page.version.replace(/^Chromium /, "");
    writeFileSync(opts.json, JSON.stringify(all, null, 2));
  }
} finally {
  await page.close();
  await new Promise((resolve) => server.close(resolve));
}

/**
 * Runs window.runBenchmark(config) in the page without holding the driver (a WebDriver session
 * runs one command at a time): starts it, then about once a second prints its new progress
 * lines ("bench: ...") to stderr, until it settles.
 */
async function runInPage(page, config) {
  await page.evaluate((c) => {
    const state = (window.__bench = { logs: [], done: false });
    window
      .runBenchmark({ ...c, log: (s) => state.logs.push(`bench: ${c.tag}${s}`) })
      .then(
        (result) => Object.assign(state, { done: true, result }),
        (e) => Object.assign(state, { done: true, error: String(e?.stack ?? e) }),
      );
  }, config);
  const deadline = Date.now() + RUN_TIMEOUT_MS;
  for (;;) {
    await new Promise((r) => setTimeout(r, 1000));
    const state = await page.evaluate(() => {
      const b = window.__bench;
      return { logs: b.logs.splice(0), done: b.done, result: b.done ? b.result : null, error: b.error ?? null };
    });
    for (const line of state.logs) console.error(line);
    if (state.error) throw new Error(`the benchmark failed in the page: ${state.error}`);
    if (state.done) return state.result;
    if (Date.now() > deadline) throw new Error(`the benchmark did not finish within ${RUN_TIMEOUT_MS / 60_000} min`);
  }
}

/** Wraps every wasm import in a call counter (`window.__importCalls`); runs before the page. */
function countImports() {
  const calls = (window.__importCalls = new Map());
  const wrap = (imports) => {
    for (const mod of Object.values(imports ?? {})) {
      for (const [name, f] of Object.entries(mod)) {
        if (typeof f !== "function") continue;
        const short = name.replace(/_[0-9a-f]{16}$/, "");
        mod[name] = function (...args) {
          calls.set(short, (calls.get(short) ?? 0) + 1);
          return f.apply(this, args);
        };
      }
    }
  };
  for (const k of ["instantiate", "instantiateStreaming"]) {
    const orig = WebAssembly[k];
    WebAssembly[k] = function (source, imports) {
      wrap(imports);
      return orig.call(this, source, imports);
    };
  }
}

/**
 * Per case, the wasm-to-JS calls and heap allocations one more message costs: runs of n and 2n
 * messages in a page whose imports are wrapped, their difference divided by n (so the dial
 * and close drop out). Returns a markdown report.
 */
async function countCalls(server, config, cases) {
  const counting = await openPage("chromium");
  const page = counting.playwright;
  await page.addInitScript(countImports);
  await page.goto(`http://127.0.0.1:${server.address().port}/index.html`);
  await page.waitForSelector("body[data-ready=yes]");
  const out = [
    "# Per message: wasm-to-JS calls and heap allocations (isosock)",
    "",
    "| size | mode | JS calls | allocations | bytes allocated | calls by import |",
    "| ---: | --- | ---: | ---: | ---: | --- |",
  ];
  for (const c of cases) {
    const n = Math.max(50, Math.min(c.count, 500));
    const r = await page.evaluate(
      async ({ url, size, win, n }) => {
        const m = await import("./bench.js");
        const wasm = await import("./pkg/isosock_bench_browser.js");
        const measure = async (count) => {
          window.__importCalls.clear();
          const a0 = wasm.allocations?.() ?? [NaN, NaN];
          await m.isosockRun(url, size, count, win);
          const a1 = wasm.allocations?.() ?? [NaN, NaN];
          return { calls: new Map(window.__importCalls), allocs: a1[0] - a0[0], bytes: a1[1] - a0[1] };
        };
        const one = await measure(n);
        const two = await measure(2 * n);
        const names = new Set([...one.calls.keys(), ...two.calls.keys()]);
        const calls = {};
        for (const k of names) {
          const d = ((two.calls.get(k) ?? 0) - (one.calls.get(k) ?? 0)) / n;
          if (Math.abs(d) >= 0.05) calls[k] = d;
        }
        return { calls, allocs: (two.allocs - one.allocs) / n, bytes: (two.bytes - one.bytes) / n };
      },
      { url: config.url, size: c.size, win: c.window, n },
    );
    const total = Object.values(r.calls).reduce((a, b) => a + b, 0);
    const by = Object.entries(r.calls)
      .sort((a, b) => b[1] - a[1])
      .map(([k, v]) => `${k.replace(/^__wbg_/, "")} ${v.toFixed(1)}`)
      .join(", ");
    const f = (x) => (Number.isNaN(x) ? "n/a" : x.toFixed(1));
    out.push(`| ${c.size} | ${c.mode} | ${total.toFixed(1)} | ${f(r.allocs)} | ${f(r.bytes)} | ${by} |`);
  }
  await counting.close();
  return out.join("\n") + "\n";
}

/**
 * One more isosock run and one raw-JS run per case under V8's sampling profiler; returns a
 * text report of each profile's top functions by self time.
 */
async function profile(page, config, cases) {
  const cdp = await page.context().newCDPSession(page);
  await cdp.send("Profiler.enable");
  await cdp.send("Profiler.setSamplingInterval", { interval: 50 });
  const busy = [
    "# Main-thread CPU per message (V8 CPU profile: samples not idle, GC included)",
    "",
    "| size | mode | raw JS µs/msg | isosock µs/msg | isosock extra µs/msg |",
    "| ---: | --- | ---: | ---: | ---: |",
  ];
  const detail = ["# CPU profiles: self time by function (50 µs sampling)", ""];
  for (const c of cases) {
    const perMsg = {};
    for (const side of ["isosock", "raw"]) {
      await cdp.send("Profiler.start");
      const ms = await page.evaluate(
        async ({ side, url, size, count, win }) => {
          const m = await import("./bench.js");
          return side === "raw"
            ? m.rawEcho(url, size, count, win)
            : m.isosockRun(url, size, count, win);
        },
        { side, url: config.url, size: c.size, count: c.count, win: c.window },
      );
      const { profile } = await cdp.send("Profiler.stop");
      const self = selfTimes(profile);
      perMsg[side] = (self.total - (self.byName.get("(idle)") ?? 0)) / c.count;
      detail.push(`## ${side}, ${c.size} B, ${c.mode}, ${c.count} messages: ${ms.toFixed(1)} ms\n`);
      detail.push("```", topFunctions(self, 25), "```", "");
    }
    const f = (x) => x.toFixed(1);
    busy.push(
      `| ${c.size} | ${c.mode} | ${f(perMsg.raw)} | ${f(perMsg.isosock)} | ${f(perMsg.isosock - perMsg.raw)} |`,
    );
  }
  return [...busy, "", ...detail].join("\n");
}

/** Self time in µs per function (name and script) of a CPU profile, and the total. */
function selfTimes(profile) {
  const dt = new Map();
  for (let i = 0; i < profile.samples.length; i++) {
    const id = profile.samples[i];
    dt.set(id, (dt.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0));
  }
  const byName = new Map();
  let total = 0;
  for (const node of profile.nodes) {
    const us = dt.get(node.id) ?? 0;
    total += us;
    const f = node.callFrame;
    const file = f.url ? f.url.split("/").pop() : "";
    const key = `${f.functionName || "(anonymous)"} ${file}`.trim();
    byName.set(key, (byName.get(key) ?? 0) + us);
  }
  return { byName, total };
}

/** The `n` functions with the most self time, as text lines. */
function topFunctions({ byName, total }, n) {
  const rows = [...byName].sort((a, b) => b[1] - a[1]).slice(0, n);
  return rows
    .map(([k, us]) => `${(us / 1000).toFixed(1).padStart(8)} ms ${((100 * us) / total).toFixed(1).padStart(5)}%  ${k}`)
    .join("\n");
}

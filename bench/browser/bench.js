// The browser benchmark's page logic: the raw-JS echo loop (the baseline), the alternation of
// isosock and raw-JS runs, and the summary (medians, ratios, a markdown table).
//
// Both loops do the same thing: open a WebSocket to the echo server, then send `count` binary
// messages of `size` bytes with at most `window` in flight (1 is ping-pong), check each echo's
// type and length, and time from the first send to the last echo with performance.now(). The
// dial and the close are outside the timing.
//
// With `loopback`, both loops run against LoopbackWebSocket instead: an in-page stand-in that
// echoes each message back as its own task, with no network, browser process or server in the
// way. What is left is each client's own main-thread cost per message.
import init, { isosockEcho } from "./pkg/isosock_bench_browser.js";

const ready = init();

/** The sizes, with the messages per run at scale 1 (about a second each on a fast machine). */
export const SIZES = [
  { size: 16, count: 4000 },
  { size: 1024, count: 4000 },
  { size: 64 * 1024, count: 1000 },
];

/** The fill pattern isosock's side sends too (`pattern` in src/lib.rs). */
function pattern(size) {
  const a = new Uint8Array(size);
  for (let i = 0; i < size; i++) a[i] = i % 251;
  return a;
}

/** One raw-JS echo run; resolves to the elapsed milliseconds. */
export function rawEcho(url, size, count, window) {
  return new Promise((resolve, reject) => {
    const payload = pattern(size);
    const ws = new WebSocket(url);
    ws.binaryType = "arraybuffer";
    let sent = 0;
    let received = 0;
    let start = 0;
    let elapsed = -1;
    const pump = () => {
      while (sent < count && sent - received < window) {
        ws.send(payload);
        sent++;
      }
    };
    const fail = (why) => {
      ws.onmessage = ws.onclose = ws.onerror = null;
      ws.close();
      reject(new Error(why));
    };
    ws.onopen = () => {
      start = performance.now();
      pump();
    };
    ws.onmessage = (e) => {
      if (!(e.data instanceof ArrayBuffer) || e.data.byteLength !== size) {
        return fail(`echo ${received}: expected ${size} binary bytes`);
      }
      received++;
      if (received < count) return pump();
      elapsed = performance.now() - start;
      ws.close(1000);
    };
    ws.onerror = () => {};
    ws.onclose = (e) => {
      if (elapsed >= 0) resolve(elapsed);
      else reject(new Error(`closed with ${e.code} after ${received} echoes`));
    };
  });
}

/**
 * An in-page echo peer with the WebSocket interface both loops use: `send` copies the data (as
 * the browser does) and posts it back as a `message` event in a task of its own (a
 * MessageChannel message, like the browser's network events); open and close events too.
 */
export class LoopbackWebSocket extends EventTarget {
  static CONNECTING = 0;
  static OPEN = 1;
  static CLOSING = 2;
  static CLOSED = 3;

  constructor(url) {
    super();
    this.url = String(url);
    this.readyState = 0;
    this.bufferedAmount = 0;
    this.protocol = "";
    this.extensions = "";
    this.binaryType = "blob";
    this.onopen = this.onmessage = this.onerror = this.onclose = null;
    this._channel = new MessageChannel();
    this._tasks = [];
    this._channel.port1.onmessage = () => this._tasks.shift()();
    this._task(() => {
      this.readyState = 1;
      this._emit("open", new Event("open"));
    });
  }

  _task(f) {
    this._tasks.push(f);
    this._channel.port2.postMessage(null);
  }

  _emit(type, event) {
    this.dispatchEvent(event);
    this["on" + type]?.(event);
  }

  send(data) {
    if (this.readyState !== 1) return;
    let copy;
    if (typeof data === "string") copy = data;
    else if (data instanceof ArrayBuffer) copy = data.slice(0);
    else copy = new Uint8Array(data.buffer, data.byteOffset, data.byteLength).slice().buffer;
    this._task(() => {
      if (this.readyState === 1) this._emit("message", new MessageEvent("message", { data: copy }));
    });
  }

  close(code = 1005, reason = "") {
    if (this.readyState >= 2) return;
    this.readyState = 2;
    this._task(() => {
      this.readyState = 3;
      this._emit("close", new CloseEvent("close", { code, reason, wasClean: true }));
      this._channel.port1.close();
    });
  }
}

/** Runs `f` with LoopbackWebSocket as the global WebSocket (isosock looks it up per dial). */
async function withLoopback(f) {
  const real = globalThis.WebSocket;
  globalThis.WebSocket = LoopbackWebSocket;
  try {
    return await f();
  } finally {
    globalThis.WebSocket = real;
  }
}

/** One isosock echo run; resolves to the elapsed milliseconds. */
export async function isosockRun(url, size, count, window) {
  await ready;
  return isosockEcho(url, size, count, window);
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

/**
 * Runs every size in ping-pong and pipelined mode, alternating isosock and raw JS (A B A B)
 * for `rounds` rounds after one warm-up pair, and returns the samples, a summary per case and
 * a markdown table. `scale` multiplies the message counts (e.g. 0.1 for a smoke run).
 */
export async function runBenchmark({
  url,
  rounds = 7,
  scale = 1,
  window = 16,
  loopback = false,
  log = () => {},
}) {
  await ready;
  if (loopback) {
    // Five times the messages: without the network a run is much shorter.
    const result = await withLoopback(() =>
      runBenchmark({ url: "ws://loopback.invalid/", rounds, scale: scale * 5, window, log }),
    );
    result.markdown = result.markdown.replace(
      "Medians of",
      "In-page loopback (no network: each client's own cost). Medians of",
    );
    return result;
  }
  const modes = [
    { mode: "ping-pong", window: 1 },
    { mode: `pipelined (window ${window})`, window },
  ];
  const cases = [];
  for (const { size, count: full } of SIZES) {
    const count = Math.max(10, Math.round(full * scale));
    for (const { mode, window: w } of modes) {
      const c = { size, mode, window: w, count, isosock: [], raw: [] };
      for (let r = -1; r < rounds; r++) {
        const a = await isosockRun(url, size, count, w);
        const b = await rawEcho(url, size, count, w);
        if (r < 0) continue; // warm-up: JIT, tiering, connection set-up paths
        c.isosock.push(a);
        c.raw.push(b);
        log(`${size} B ${mode} round ${r + 1}/${rounds}: isosock ${a.toFixed(1)} ms, raw ${b.toFixed(1)} ms`);
      }
      cases.push(summarize(c));
    }
  }
  return { cases, markdown: markdown(cases, rounds), userAgent: navigator.userAgent };
}

/** Medians of messages/s and MB/s (payload bytes echoed, 10^6 B) and isosock's ratio. */
function summarize(c) {
  const rate = (ms) => c.count / (ms / 1000);
  const mbps = (ms) => (c.count * c.size) / (ms / 1000) / 1e6;
  const pairs = c.isosock.map((ms, i) => c.raw[i] / ms); // isosock speed / raw speed
  const isoMs = median(c.isosock);
  const rawMs = median(c.raw);
  return {
    ...c,
    isosockMsgs: rate(isoMs),
    rawMsgs: rate(rawMs),
    isosockMBps: mbps(isoMs),
    rawMBps: mbps(rawMs),
    ratio: rawMs / isoMs,
    pairMin: Math.min(...pairs),
    pairMax: Math.max(...pairs),
  };
}

function markdown(cases, rounds) {
  const f0 = (x) => Math.round(x).toLocaleString("en-US");
  const f1 = (x) => x.toFixed(x < 10 ? 2 : 1);
  const lines = [
    `Medians of ${rounds} alternating rounds (isosock, raw JS) after one warm-up pair; MB/s is payload echoed (10^6 B/s).`,
    "",
    "| size | mode | msgs/run | raw JS msg/s | isosock msg/s | raw JS MB/s | isosock MB/s | isosock / raw | per-round range |",
    "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
  ];
  for (const c of cases) {
    const size = c.size >= 1024 ? `${c.size / 1024} KiB` : `${c.size} B`;
    lines.push(
      `| ${size} | ${c.mode} | ${c.count} | ${f0(c.rawMsgs)} | ${f0(c.isosockMsgs)} | ${f1(c.rawMBps)} | ${f1(c.isosockMBps)} | ${c.ratio.toFixed(2)}× | ${c.pairMin.toFixed(2)}–${c.pairMax.toFixed(2)} |`,
    );
  }
  return lines.join("\n");
}

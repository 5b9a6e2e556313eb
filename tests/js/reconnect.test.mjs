// ReconnectingConn in Node.js, from the packed tarball: state events, the onOpen hello on
// every connection, reconnecting after the server is killed and restarted on the same port,
// the bounded offline queue, final close codes, and option errors. Each test runs its own echo
// server (examples/echo_server.rs) so it can kill it.
import assert from "node:assert/strict";
import { rmSync } from "node:fs";
import { after, before, describe, it } from "node:test";

import { importPackage, installTarball, rejectsWith, startEchoServer, within } from "./helpers.mjs";

const T = { timeout: 60_000 };
let dir;
let ReconnectingConn;
const servers = new Set();

before(async () => {
  dir = installTarball();
  ({ ReconnectingConn } = await importPackage(dir));
});

after(async () => {
  for (const s of servers) await s.kill();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

async function server(port = 0) {
  const s = await startEchoServer(port);
  servers.add(s);
  return s;
}

/** Resolves once `states` (an array the onState callback fills) has an entry `pred` accepts. */
async function sawState(states, pred, what) {
  const deadline = Date.now() + 10_000;
  while (!states.some(pred)) {
    if (Date.now() > deadline) throw new Error(`no ${what} state within 10 s: ${JSON.stringify(states)}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

function text(msg) {
  assert.equal(msg.type, "text");
  return msg.data;
}

describe("ReconnectingConn in Node.js", () => {
  it("says hello on every connection and comes back after the server restarts", T, async () => {
    const s = await server();
    const states = [];
    let hellos = 0;
    const rc = ReconnectingConn.start(s.url, {
      initialDelayMs: 50,
      maxDelayMs: 200,
      onOpen: async (conn) => {
        hellos += 1;
        await conn.write(`hello ${hellos}`);
      },
      onState: (state) => states.push(state),
    });
    assert.equal(text(await within(10_000, rc.read(), "first hello")), "hello 1");
    assert.deepEqual(states.slice(0, 2), [{ type: "connecting", attempt: 1 }, { type: "open" }]);
    assert.equal(rc.state.type, "open");
    assert.equal(typeof rc.conn?.extensions, "string");

    await s.kill();
    await sawState(states, (st) => st.type === "disconnected" && st.error.kind === "ConnectionLost", "ConnectionLost");
    await sawState(states, (st) => st.type === "disconnected" && st.error.kind === "Connect", "failed attempt");
    const drop = states.find((st) => st.type === "disconnected");
    assert.ok(drop.retryInMs >= 25 && drop.retryInMs <= 200, `jittered delay ${drop.retryInMs}`);
    assert.equal(drop.error.name, "IsosockError");
    await rejectsWith("ConnectionLost", rc.write("while down"));

    const again = await server(s.port);
    assert.equal(text(await within(10_000, rc.read(), "second hello")), "hello 2");
    assert.equal(states.filter((st) => st.type === "open").length, 2);
    await rc.write("after");
    assert.equal(text(await within(10_000, rc.read(), "echo")), "after");
    await rc.close(1000, "bye");
    await sawState(states, (st) => st.type === "closed", "closed");
    assert.deepEqual(states.at(-1), { type: "closed" });
    await rejectsWith("AlreadyClosed", rc.read());
    await again.kill();
  });

  it("queues writes while offline, bounded, and sends them first", T, async () => {
    const s = await server();
    const states = [];
    const rc = ReconnectingConn.start(s.url, {
      initialDelayMs: 50,
      maxDelayMs: 200,
      queueWhileOffline: 2,
      onState: (state) => states.push(state),
    });
    await sawState(states, (st) => st.type === "open", "open");
    await s.kill();
    await sawState(states, (st) => st.type === "disconnected", "disconnected");
    await rc.write("queued 1");
    await rc.write("queued 2");
    await rejectsWith("ConnectionLost", rc.write("queued 3"));
    await server(s.port);
    await sawState(states, (st, i) => st.type === "open" && i > 0 && states.slice(0, i).some((p) => p.type === "open"), "second open");
    await rc.write("live");
    const got = [];
    for (let i = 0; i < 3; i++) got.push(text(await within(10_000, rc.read(), "echo")));
    assert.deepEqual(got, ["queued 1", "queued 2", "live"]);
    await rc.close();
  });

  it("stops on a final close code and reports it", T, async () => {
    const s = await server();
    const states = [];
    const rc = ReconnectingConn.start(s.url, {
      initialDelayMs: 50,
      finalCodes: [4001],
      onState: (state) => states.push(state),
    });
    await sawState(states, (st) => st.type === "open", "open");
    await rc.write("!close 4001 go away");
    const err = await rejectsWith("Closed", rc.read());
    assert.equal(err.code, 4001);
    assert.equal(err.reason, "go away");
    await sawState(states, (st) => st.type === "closed", "closed");
    const last = states.at(-1);
    assert.equal(last.type, "closed");
    assert.equal(last.error.code, 4001);
    assert.equal(states.filter((st) => st.type === "connecting").length, 1, "no retry after a final code");
    let ended = 0;
    try {
      for await (const m of rc) void m;
    } catch (e) {
      ended = e.code;
    }
    assert.equal(ended, 4001, "iteration throws the final error");
  });

  it("counts a failing onOpen as a failed attempt and gives up after maxAttempts", T, async () => {
    const s = await server();
    const states = [];
    let calls = 0;
    ReconnectingConn.start(s.url, {
      initialDelayMs: 20,
      maxDelayMs: 50,
      maxAttempts: 2,
      onOpen: () => {
        calls += 1;
        throw new Error("not today");
      },
      onState: (state) => states.push(state),
    });
    await sawState(states, (st) => st.type === "closed", "closed");
    assert.equal(calls, 2);
    const last = states.at(-1);
    assert.equal(last.error.kind, "Connect");
    assert.match(last.error.message, /onOpen threw: not today/);
    assert.equal(states.some((st) => st.type === "open"), false, "never open: the hook failed");
  });

  it("refuses bad options with InvalidArgument", () => {
    const bad = [
      [{ timeoutMs: 10 }, /connectTimeoutMs/],
      [{ nope: 1 }, /unknown option "nope"/],
      [{ finalCodes: 4001 }, /finalCodes must be an array/],
      [{ onState: "yes" }, /onState must be a function/],
      [{ connectTimeoutMs: 0 }, /connect timeout/],
      [{ maxAttempts: -1 }, /maxAttempts must be an integer/],
    ];
    for (const [options, message] of bad) {
      assert.throws(
        () => ReconnectingConn.start("ws://127.0.0.1:1/", options),
        (e) => e.name === "IsosockError" && e.kind === "InvalidArgument" && message.test(e.message),
        JSON.stringify(options),
      );
    }
  });
});

// Type-checks a consumer of the isosock package's declarations (tsc --noEmit, strict). Each
// `@ts-expect-error` line is misuse the declarations must reject: if they were loose (`any`),
// tsc would report the directive as unused and fail.
import init, {
  Conn,
  ReconnectingConn,
  type DialOptions,
  type ErrorKind,
  type IsosockError,
  type Message,
  type ReconnectOptions,
  type ReconnectState,
} from "isosock";

async function main(url: string): Promise<void> {
  await init();
  const options: DialOptions = { subprotocols: ["chat.v1"], readLimit: 1 << 20, timeoutMs: 5000 };
  const conn: Conn = await Conn.dial(url, options);
  await Conn.dial(new URL(url));
  const sub: string | undefined = conn.subprotocol;
  const ext: string = conn.extensions;

  await conn.write("text");
  await conn.write(new Uint8Array([1, 2, 3]));
  await conn.write(new ArrayBuffer(8));
  await conn.write(new DataView(new ArrayBuffer(8)));

  const msg: Message = await conn.read();
  if (msg.type === "text") {
    const upper: string = msg.data.toUpperCase();
    void upper;
  } else {
    const first: number | undefined = msg.data[0];
    void first;
  }

  for await (const m of conn) {
    const t: "text" | "binary" = m.type;
    void t;
  }

  try {
    await conn.close(4000, "bye");
  } catch (e) {
    const err = e as IsosockError;
    const kind: ErrorKind = err.kind;
    const code: number | undefined = err.code;
    const reason: string | undefined = err.reason;
    const isError: Error = err;
    void kind, code, reason, isError;
  }
  conn.closeNow();
  conn.setReadLimit(1024);
  const frame = conn.peerCloseFrame;
  if (frame) {
    const c: number = frame.code;
    const r: string = frame.reason;
    void c, r;
  }
  void sub, ext;

  // @ts-expect-error write takes strings and bytes only
  await conn.write(42);
  // @ts-expect-error unknown options are refused
  await Conn.dial(url, { readlimit: 5 });
  // @ts-expect-error subprotocols is a list
  await Conn.dial(url, { subprotocols: "chat.v1" });
  // @ts-expect-error data may be bytes until the type is checked
  msg.data.toUpperCase();
  // @ts-expect-error not an error kind
  const bad: ErrorKind = "Nope";
  void bad;
  // @ts-expect-error connections come from Conn.dial
  new Conn();
  // @ts-expect-error subprotocol is read-only
  conn.subprotocol = "x";
  // @ts-expect-error extensions is read-only
  conn.extensions = "x";
}

void main;

async function reconnecting(url: string): Promise<void> {
  const options: ReconnectOptions = {
    subprotocols: ["chat.v1"],
    connectTimeoutMs: 5000,
    initialDelayMs: 250,
    maxDelayMs: 5000,
    finalCodes: [4001],
    queueWhileOffline: 10,
    onOpen: async (conn: Conn) => {
      await conn.write("hello");
    },
    onState: (state: ReconnectState) => {
      if (state.type === "disconnected") {
        const ms: number = state.retryInMs;
        const kind: ErrorKind = state.error.kind;
        void ms, kind;
      }
    },
  };
  // @ts-expect-error: Conn.dial's timeoutMs is connectTimeoutMs here
  const wrong: ReconnectOptions = { timeoutMs: 10 };
  void wrong;
  const rc: ReconnectingConn = ReconnectingConn.start(url, options);
  await rc.write("hi");
  const msg: Message = await rc.read();
  void msg;
  const state: ReconnectState = rc.state;
  void state;
  const open: Conn | undefined = rc.conn;
  void open;
  for await (const m of rc) void m;
  await rc.close(1000, "bye");
}
void reconnecting;

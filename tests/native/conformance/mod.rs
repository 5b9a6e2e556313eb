//! RFC 6455 conformance: hand-built frames over raw TCP on 127.0.0.1 against isosock's server
//! (`accept`) and client (`dial`), plus abuse and limit cases with memory measurements.
//!
//! Every case names the RFC section it checks and asserts the close code (or HTTP status)
//! that went over the wire, read back byte by byte: nothing here trusts isosock's own parser.
//! Where the RFC leaves a choice, the doc comment says what isosock does. Many cases of one
//! shape are rows of a table run by one test (see [`row`]); each row's comment gives its
//! reasoning.

mod abuse;
mod client;
mod deflate;
mod handshake;
mod server;

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::time::Duration;

use futures_util::FutureExt;
use isosock::{accept, AcceptOptions, ErrorKind};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// How long one frame or one HTTP answer may take to arrive before a case fails.
pub const STEP: Duration = Duration::from_secs(10);

/// The fixed masking key of RFC 6455 section 5.7's examples.
pub const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// Opcodes (RFC 6455 section 5.2).
pub const CONT: u8 = 0x0;
pub const TEXT: u8 = 0x1;
pub const BINARY: u8 = 0x2;
pub const CLOSE: u8 = 0x8;
pub const PING: u8 = 0x9;
pub const PONG: u8 = 0xA;

/// How a frame's payload length is written on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Len {
    /// The minimal encoding RFC 6455 section 5.2 asks senders for.
    Minimal,
    /// Always the 16-bit form (126 + two bytes), even where 7 bits would do.
    Bits16,
    /// Always the 64-bit form (127 + eight bytes).
    Bits64,
    /// The 64-bit form claiming this length, whatever the payload actually is.
    Claim(u64),
}

/// One frame to send, built by hand. Client frames are masked with [`MASK`] unless told
/// otherwise.
#[derive(Debug, Clone)]
pub struct Frame {
    pub fin: bool,
    /// RSV1..RSV3 as the three bits 0b100, 0b010, 0b001.
    pub rsv: u8,
    pub opcode: u8,
    pub mask: Option<[u8; 4]>,
    pub len: Len,
    pub payload: Vec<u8>,
}

impl Frame {
    /// A final, masked frame.
    pub fn new(opcode: u8, payload: impl Into<Vec<u8>>) -> Self {
        Frame {
            fin: true,
            rsv: 0,
            opcode,
            mask: Some(MASK),
            len: Len::Minimal,
            payload: payload.into(),
        }
    }

    pub fn text(payload: impl Into<Vec<u8>>) -> Self {
        Frame::new(TEXT, payload)
    }

    pub fn binary(payload: impl Into<Vec<u8>>) -> Self {
        Frame::new(BINARY, payload)
    }

    pub fn cont(payload: impl Into<Vec<u8>>) -> Self {
        Frame::new(CONT, payload)
    }

    pub fn ping(payload: impl Into<Vec<u8>>) -> Self {
        Frame::new(PING, payload)
    }

    pub fn pong(payload: impl Into<Vec<u8>>) -> Self {
        Frame::new(PONG, payload)
    }

    /// A close frame with a status code and a reason.
    pub fn close(code: u16, reason: &[u8]) -> Self {
        let mut p = code.to_be_bytes().to_vec();
        p.extend_from_slice(reason);
        Frame::new(CLOSE, p)
    }

    pub fn fin(mut self, fin: bool) -> Self {
        self.fin = fin;
        self
    }

    pub fn rsv(mut self, bits: u8) -> Self {
        self.rsv = bits;
        self
    }

    pub fn unmasked(mut self) -> Self {
        self.mask = None;
        self
    }

    pub fn masked(mut self, key: [u8; 4]) -> Self {
        self.mask = Some(key);
        self
    }

    pub fn len(mut self, len: Len) -> Self {
        self.len = len;
        self
    }

    /// The frame's bytes (RFC 6455 section 5.2).
    pub fn encode(&self) -> Vec<u8> {
        let mut f =
            vec![if self.fin { 0x80 } else { 0 } | (self.rsv & 0b111) << 4 | (self.opcode & 0xf)];
        let mask_bit = if self.mask.is_some() { 0x80 } else { 0 };
        let n = self.payload.len() as u64;
        match self.len {
            Len::Minimal if n < 126 => f.push(mask_bit | n as u8),
            Len::Minimal if n <= 0xffff => {
                f.push(mask_bit | 126);
                f.extend_from_slice(&(n as u16).to_be_bytes());
            }
            Len::Minimal | Len::Bits64 => {
                f.push(mask_bit | 127);
                f.extend_from_slice(&n.to_be_bytes());
            }
            Len::Bits16 => {
                f.push(mask_bit | 126);
                f.extend_from_slice(&u16::try_from(n).expect("16-bit length").to_be_bytes());
            }
            Len::Claim(claimed) => {
                f.push(mask_bit | 127);
                f.extend_from_slice(&claimed.to_be_bytes());
            }
        }
        match self.mask {
            Some(key) => {
                f.extend_from_slice(&key);
                f.extend(
                    self.payload
                        .iter()
                        .zip(key.iter().cycle())
                        .map(|(b, k)| b ^ k),
                );
            }
            None => f.extend_from_slice(&self.payload),
        }
        f
    }
}

/// The bytes of several frames, to send in one write.
pub fn frames(list: &[Frame]) -> Vec<u8> {
    list.iter().flat_map(Frame::encode).collect()
}

/// One frame as read from the wire; the payload is already unmasked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    pub fin: bool,
    pub rsv: u8,
    pub opcode: u8,
    pub mask: Option<[u8; 4]>,
    /// Extra length bytes used: 0 (7-bit), 2 (16-bit) or 8 (64-bit).
    pub len_bytes: u8,
    pub payload: Vec<u8>,
}

impl Received {
    /// The status code of a close frame (`None` for an empty close payload).
    pub fn close_code(&self) -> Option<u16> {
        assert_eq!(self.opcode, CLOSE, "not a close frame: {self:?}");
        (self.payload.len() >= 2).then(|| u16::from_be_bytes([self.payload[0], self.payload[1]]))
    }
}

/// Reads one frame; `None` when the peer closed (or reset) the connection first.
/// Fails the test if nothing complete arrives within [`STEP`].
pub async fn read_frame<S: AsyncRead + Unpin>(tcp: &mut S) -> Option<Received> {
    tokio::time::timeout(STEP, read_frame_unbounded(tcp))
        .await
        .expect("no frame (and no end of stream) within the step limit")
}

async fn read_frame_unbounded<S: AsyncRead + Unpin>(tcp: &mut S) -> Option<Received> {
    let mut h = [0u8; 2];
    tcp.read_exact(&mut h).await.ok()?;
    let (len, len_bytes) = match h[1] & 0x7f {
        126 => {
            let mut l = [0u8; 2];
            tcp.read_exact(&mut l).await.ok()?;
            (u64::from(u16::from_be_bytes(l)), 2)
        }
        127 => {
            let mut l = [0u8; 8];
            tcp.read_exact(&mut l).await.ok()?;
            (u64::from_be_bytes(l), 8)
        }
        n => (u64::from(n), 0),
    };
    assert!(len <= 64 << 20, "a frame claiming {len} bytes");
    let mask = if h[1] & 0x80 != 0 {
        let mut k = [0u8; 4];
        tcp.read_exact(&mut k).await.ok()?;
        Some(k)
    } else {
        None
    };
    let mut payload = vec![0u8; len as usize];
    tcp.read_exact(&mut payload).await.ok()?;
    if let Some(key) = mask {
        for (b, k) in payload.iter_mut().zip(key.iter().cycle()) {
            *b ^= k;
        }
    }
    Some(Received {
        fin: h[0] & 0x80 != 0,
        rsv: (h[0] >> 4) & 0b111,
        opcode: h[0] & 0x0f,
        mask,
        len_bytes,
        payload,
    })
}

/// Reads the next frame and checks that it is a close frame with `code`; returns the reason.
pub async fn expect_close<S: AsyncRead + Unpin>(tcp: &mut S, code: u16) -> Vec<u8> {
    let f = read_frame(tcp)
        .await
        .unwrap_or_else(|| panic!("expected a close frame with {code}, the connection ended"));
    assert_eq!(
        f.opcode, CLOSE,
        "expected a close frame with {code}, got {f:?}"
    );
    assert_eq!(f.close_code(), Some(code), "close frame {f:?}");
    f.payload[2..].to_vec()
}

/// Reads the next frame and checks that it is a close frame with one of `codes` (where the
/// RFC lets the implementation choose); returns the code.
pub async fn expect_close_one_of<S: AsyncRead + Unpin>(tcp: &mut S, codes: &[u16]) -> u16 {
    let f = read_frame(tcp)
        .await
        .unwrap_or_else(|| panic!("expected a close frame with one of {codes:?}, got EOF"));
    assert_eq!(f.opcode, CLOSE, "expected a close frame, got {f:?}");
    let code = f.close_code().expect("a close frame with a code");
    assert!(
        codes.contains(&code),
        "close code {code}, expected one of {codes:?}"
    );
    code
}

/// Checks that the peer closes the TCP connection (EOF or reset) without sending more.
pub async fn expect_eof<S: AsyncRead + Unpin>(tcp: &mut S) {
    let mut b = [0u8; 1];
    match tokio::time::timeout(STEP, tcp.read(&mut b)).await {
        Ok(Ok(0)) | Ok(Err(_)) => {}
        Ok(Ok(_)) => panic!("expected the connection to end, got byte {:#04x}", b[0]),
        Err(_) => panic!("the peer did not close the TCP connection"),
    }
}

/// Reads the next frame and checks that it is a data frame of `opcode` with `payload`, final,
/// unmasked (a server's frame) and with no reserved bit set.
pub async fn expect_message<S: AsyncRead + Unpin>(tcp: &mut S, opcode: u8, payload: &[u8]) {
    let f = read_frame(tcp).await.unwrap_or_else(|| {
        panic!(
            "expected a {opcode:#x} frame of {} bytes, the connection ended",
            payload.len()
        )
    });
    assert_eq!(
        (f.opcode, f.fin, f.rsv, f.mask),
        (opcode, true, 0, None),
        "frame header, payload {:?}",
        String::from_utf8_lossy(&f.payload[..f.payload.len().min(80)])
    );
    assert!(
        f.payload == payload,
        "payload of {} bytes differs from the {} expected",
        f.payload.len(),
        payload.len()
    );
}

/// Runs one row of a table test and fails the test if the row fails, naming the row: a panic
/// in `case` is raised again as "row `name` (RFC 6455 `rfc`): <the original message>". Rows run
/// one after another; the first failing row ends the test (none is skipped or forgiven).
pub async fn row<F: Future>(name: &str, rfc: &str, case: F) -> F::Output {
    match AssertUnwindSafe(case).catch_unwind().await {
        Ok(out) => out,
        Err(panic) => {
            let message = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("(a panic without a message)");
            panic!("row `{name}` (RFC 6455 {rfc}): {message}");
        }
    }
}

/// A row of a failure table (tests/native/conformance/server.rs and client.rs): the raw peer
/// sends `bytes` on a fresh connection, and isosock's side must fail the connection with the
/// close code `code` while its application sees `kind`.
pub struct Failure {
    /// The case (the name its own test used to have), with the value that varies, if any.
    pub name: String,
    /// The RFC 6455 section that requires this outcome.
    pub rfc: &'static str,
    pub bytes: Vec<u8>,
    pub code: u16,
    pub kind: ErrorKind,
}

/// A [`Failure`] row.
pub fn failure(
    name: impl Into<String>,
    rfc: &'static str,
    bytes: Vec<u8>,
    code: u16,
    kind: ErrorKind,
) -> Failure {
    Failure {
        name: name.into(),
        rfc,
        bytes,
        code,
        kind,
    }
}

/// Writes `bytes` to the peer.
pub async fn send<S: AsyncWrite + Unpin>(tcp: &mut S, bytes: &[u8]) {
    tokio::time::timeout(STEP, tcp.write_all(bytes))
        .await
        .expect("write within the step limit")
        .expect("write");
}

/// An echo server on `isosock::accept`; every connection's ending error is reported.
pub struct EchoServer {
    pub addr: String,
    ends: mpsc::UnboundedReceiver<isosock::Error>,
}

impl EchoServer {
    /// Starts one on a free loopback port, accepting with `opts`.
    pub async fn start(opts: AcceptOptions) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        let (tx, ends) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (tx, opts) = (tx.clone(), opts.clone());
                tokio::spawn(async move {
                    let end = match accept(tcp, &opts).await {
                        Ok(conn) => loop {
                            match conn.read().await {
                                Ok(msg) => {
                                    if let Err(e) = conn.write(msg).await {
                                        break e;
                                    }
                                }
                                Err(e) => break e,
                            }
                        },
                        Err(e) => e,
                    };
                    let _ = tx.send(end);
                });
            }
        });
        EchoServer { addr, ends }
    }

    /// An echo server with the default options except a 1 MiB read limit.
    pub async fn default_limits() -> Self {
        Self::start(AcceptOptions::new().read_limit(1 << 20)).await
    }

    /// A raw client connection, upgraded by hand.
    pub async fn connect(&self) -> TcpStream {
        upgrade(&self.addr).await
    }

    /// The error that ended the next connection, as the server application saw it.
    pub async fn next_end(&mut self) -> isosock::Error {
        tokio::time::timeout(STEP, self.ends.recv())
            .await
            .expect("the server connection did not end")
            .expect("server task")
    }

    /// Checks that the next connection ended on the server with `kind`.
    pub async fn expect_end(&mut self, kind: ErrorKind) -> isosock::Error {
        let e = self.next_end().await;
        assert_eq!(e.kind(), kind, "server side: {e:?}");
        e
    }
}

/// A valid opening handshake (RFC 6455 section 4.1) with the key of section 1.3.
pub const REQUEST: &str = "GET /conformance HTTP/1.1\r\nHost: 127.0.0.1\r\n\
    Upgrade: websocket\r\nConnection: Upgrade\r\n\
    Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

/// Reads an HTTP head byte by byte (so no frame byte after it is consumed).
pub async fn read_http_head<S: AsyncRead + Unpin>(tcp: &mut S) -> Option<String> {
    tokio::time::timeout(STEP, async {
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            let mut b = [0u8; 1];
            if tcp.read_exact(&mut b).await.is_err() {
                return None;
            }
            head.push(b[0]);
            assert!(head.len() <= 64 << 10, "an HTTP head over 64 KiB");
        }
        Some(String::from_utf8_lossy(&head).into_owned())
    })
    .await
    .expect("no HTTP head within the step limit")
}

/// Connects to `addr`, sends [`REQUEST`] and checks for `101`.
pub async fn upgrade(addr: &str) -> TcpStream {
    upgrade_on(TcpStream::connect(addr).await.expect("connect")).await
}

/// Sends [`REQUEST`] on a connected socket and checks for `101`.
pub async fn upgrade_on(mut tcp: TcpStream) -> TcpStream {
    send(&mut tcp, REQUEST.as_bytes()).await;
    let head = read_http_head(&mut tcp).await.expect("a response");
    assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
    tcp
}

/// The value of header `name` (case-insensitive) in an HTTP head, if present once or more
/// (all values joined with ", ").
pub fn header(head: &str, name: &str) -> Option<String> {
    let values: Vec<&str> = head
        .split("\r\n")
        .skip(1)
        .filter_map(|line| line.split_once(':'))
        .filter(|(n, _)| n.trim().eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim())
        .collect();
    (!values.is_empty()).then(|| values.join(", "))
}

/// The status code of an HTTP response head.
pub fn status(head: &str) -> u16 {
    head.split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {head:?}"))
}

/// SHA-1 (FIPS 180-4), for computing `Sec-WebSocket-Accept` independently of isosock.
pub fn sha1(data: &[u8]) -> [u8; 20] {
    let mut h: [u32; 5] = [
        0x6745_2301,
        0xEFCD_AB89,
        0x98BA_DCFE,
        0x1032_5476,
        0xC3D2_E1F0,
    ];
    let mut msg = data.to_vec();
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&(data.len() as u64 * 8).to_be_bytes());
    for block in msg.chunks(64) {
        let mut w = [0u32; 80];
        for (wi, word) in w.iter_mut().zip(block.chunks(4)) {
            *wi = u32::from_be_bytes([word[0], word[1], word[2], word[3]]);
        }
        for i in 16..80 {
            w[i] = (w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16]).rotate_left(1);
        }
        let [mut a, mut b, mut c, mut d, mut e] = h;
        for (i, wi) in w.iter().enumerate() {
            let (f, k) = match i {
                0..=19 => ((b & c) | (!b & d), 0x5A82_7999),
                20..=39 => (b ^ c ^ d, 0x6ED9_EBA1),
                40..=59 => ((b & c) | (b & d) | (c & d), 0x8F1B_BCDC),
                _ => (b ^ c ^ d, 0xCA62_C1D6),
            };
            let t = a
                .rotate_left(5)
                .wrapping_add(f)
                .wrapping_add(e)
                .wrapping_add(k)
                .wrapping_add(*wi);
            e = d;
            d = c;
            c = b.rotate_left(30);
            b = a;
            a = t;
        }
        for (hi, v) in h.iter_mut().zip([a, b, c, d, e]) {
            *hi = hi.wrapping_add(v);
        }
    }
    let mut out = [0u8; 20];
    for (o, hi) in out.chunks_mut(4).zip(h) {
        o.copy_from_slice(&hi.to_be_bytes());
    }
    out
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding.
pub fn base64(data: &[u8]) -> String {
    let mut out = String::new();
    for c in data.chunks(3) {
        let n = u32::from(c[0]) << 16
            | u32::from(*c.get(1).unwrap_or(&0)) << 8
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                out.push(B64[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Decodes standard base64 with padding; `None` if it is not exactly that.
pub fn unbase64(s: &str) -> Option<Vec<u8>> {
    let s = s.as_bytes();
    if s.len() % 4 != 0 {
        return None;
    }
    let mut out = Vec::new();
    for (ci, c) in s.chunks(4).enumerate() {
        let last = ci == s.len() / 4 - 1;
        let pad = c.iter().rev().take_while(|&&b| b == b'=').count();
        if pad > 2 || (pad > 0 && !last) {
            return None;
        }
        let mut n = 0u32;
        for &b in &c[..4 - pad] {
            n = n << 6 | B64.iter().position(|&x| x == b)? as u32;
        }
        n <<= 6 * pad as u32;
        out.extend_from_slice(&n.to_be_bytes()[1..4 - pad]);
    }
    Some(out)
}

/// `Sec-WebSocket-Accept` for `key` (RFC 6455 section 4.2.2, item 5.4).
pub fn accept_key(key: &str) -> String {
    base64(&sha1(
        format!("{key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11").as_bytes(),
    ))
}

/// Peak and current resident memory of this process, from `/proc/self/status`, in KiB.
pub fn memory_kib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .unwrap_or_else(|| panic!("{name} in /proc/self/status"))
    };
    (field("VmHWM:"), field("VmRSS:"))
}

/// Measures how far resident memory rises above its level at `start` (the peak since then).
#[derive(Debug)]
pub struct RssProbe {
    start_kib: u64,
}

impl RssProbe {
    /// Resets the kernel's peak counter (Linux: `5` into `/proc/self/clear_refs`) and records
    /// the current resident size.
    pub fn start() -> Self {
        let _ = std::fs::write("/proc/self/clear_refs", "5");
        RssProbe {
            start_kib: memory_kib().1,
        }
    }

    /// The peak resident size since `start`, minus the resident size at `start`, in MiB.
    pub fn growth_mib(&self) -> f64 {
        let (peak, _) = memory_kib();
        peak.saturating_sub(self.start_kib) as f64 / 1024.0
    }
}

/// The environment variable naming the one test a re-executed test binary runs.
const CHILD_ENV: &str = "ISOSOCK_CONFORMANCE_CHILD";

/// Runs the calling test again in a fresh process of this test binary, so that its memory
/// measurement sees that case alone (other tests share this process and its heap).
///
/// Returns `true` in the child, which then runs the case; in the parent it waits for the
/// child (bounded by the suite's limit), fails if the child failed, and returns `false`.
pub async fn in_fresh_process(module: &str, test: &str) -> bool {
    // `module_path!()` of a test module is `native::conformance::...`; the harness names
    // tests without the crate.
    let module = module
        .split_once("::")
        .map(|(_, rest)| rest)
        .unwrap_or(module);
    let name = format!("{module}::{test}");
    if std::env::var(CHILD_ENV).as_deref() == Ok(name.as_str()) {
        return true;
    }
    let exe = std::env::current_exe().expect("test binary path");
    let run = tokio::process::Command::new(exe)
        .args([name.as_str(), "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, &name)
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(crate::util::TEST_LIMIT, run)
        .await
        .expect("the child test exceeded the time limit")
        .expect("run the child test");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // The child's measurements, for `--nocapture` runs.
    for line in stderr.lines().filter(|l| l.starts_with("[rss]")) {
        eprintln!("{line}");
    }
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "child test {name} failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    false
}

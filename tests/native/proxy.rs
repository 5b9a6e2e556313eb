//! Dialing through real proxies on loopback: tinyproxy (HTTP CONNECT, Basic credentials) and
//! microsocks (SOCKS5, user name and password), for `ws://` and `wss://`; their refusals (407
//! with its challenge, 403, 500), SOCKS5 failure replies, an unreachable and a stalled proxy;
//! and the proxy environment variables as the `echo_client` example reads them.
//!
//! Both proxies come from Debian (`tinyproxy-bin`, `microsocks`), which scripts/setup.sh
//! installs; a missing one fails the test. Each test starts its own proxy processes on free
//! loopback ports and kills them when it ends.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use isosock::{dial, DialOptions, ErrorKind, Message, StatusCode};
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;
use tokio::process::{Child, Command};

use crate::tls::{tls_echo_server, trusting};
use crate::util::{bounded, echo_url};

/// Every proxy variable isosock reads, removed from the children's environment.
const PROXY_VARS: &[&str] = &[
    "http_proxy",
    "HTTP_PROXY",
    "https_proxy",
    "HTTPS_PROXY",
    "all_proxy",
    "ALL_PROXY",
    "no_proxy",
    "NO_PROXY",
    "REQUEST_METHOD",
];

/// A tool from `PATH`; fails the test loudly when it is not installed.
fn tool(name: &str) -> PathBuf {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!("{name} is not installed: run scripts/setup.sh (Debian's tinyproxy-bin and microsocks)")
        })
}

/// A loopback port nothing listens on (just now).
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// A proxy process on a loopback port, killed when dropped.
struct Proxy {
    child: Child,
    port: u16,
    /// Its configuration and log (tinyproxy), removed when dropped.
    dir: PathBuf,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Proxy {
    /// tinyproxy's log (`LogLevel Connect`: one `Request ...: CONNECT host:port` per tunnel).
    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("log")).unwrap_or_default()
    }

    fn pid(&self) -> String {
        self.child.id().expect("running").to_string()
    }

    /// Sends the process a signal (`STOP`, `CONT`) with kill(1).
    fn signal(&self, sig: &str) {
        let ok = std::process::Command::new("kill")
            .args([format!("-{sig}"), self.pid()])
            .status()
            .expect("kill(1)")
            .success();
        assert!(ok, "kill -{sig}");
    }
}

/// Starts `program` (with the port put in by `args`) until one attempt listens: a port taken
/// between `free_port` and the proxy's bind gets a new one.
async fn start(program: &str, dir: PathBuf, args: impl Fn(u16) -> Vec<String>) -> Proxy {
    let bin = tool(program);
    for _ in 0..5 {
        let port = free_port();
        let mut child = Command::new(&bin)
            .args(args(port))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {program}: {e}"));
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return Proxy { child, port, dir };
            }
            if child.try_wait().expect("wait").is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = child.start_kill();
    }
    panic!("{program} did not start listening in 5 attempts");
}

/// A fresh directory for one proxy's files, writable by tinyproxy after it drops to `nobody`.
fn scratch(name: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("isosock-{name}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    dir
}

/// tinyproxy on loopback, with Basic credentials if `auth`, and allowing CONNECT only to
/// `only_port` if given (any port otherwise).
async fn tinyproxy(auth: Option<(&str, &str)>, only_port: Option<u16>) -> Proxy {
    let dir = scratch("tinyproxy");
    let mut extra = String::new();
    if let Some((user, pass)) = auth {
        extra += &format!("BasicAuth {user} {pass}\n");
    }
    if let Some(port) = only_port {
        extra += &format!("ConnectPort {port}\n");
    }
    let conf = dir.join("conf");
    let d = dir.display();
    start("tinyproxy", dir.clone(), move |port| {
        // As root, tinyproxy drops to `User`/`Group` after binding; otherwise they are unused.
        let text = format!(
            "Port {port}\nListen 127.0.0.1\nTimeout 30\nMaxClients 50\nLogLevel Connect\n\
             LogFile \"{d}/log\"\nPidFile \"{d}/pid\"\nAllow 127.0.0.1\nUser nobody\n\
             Group nogroup\nDisableViaHeader Yes\n{extra}"
        );
        std::fs::write(&conf, text).expect("tinyproxy config");
        vec!["-d".into(), "-c".into(), conf.display().to_string()]
    })
    .await
}

/// microsocks on loopback, requiring a user name and password if `auth`.
async fn microsocks(auth: Option<(&str, &str)>) -> Proxy {
    let auth = auth.map(|(u, p)| (u.to_owned(), p.to_owned()));
    start("microsocks", scratch("microsocks"), move |port| {
        let mut args = vec![
            "-i".into(),
            "127.0.0.1".into(),
            "-p".into(),
            port.to_string(),
        ];
        if let Some((user, pass)) = &auth {
            args.extend(["-u".into(), user.clone(), "-P".into(), pass.clone()]);
        }
        args
    })
    .await
}

/// Dials `url` with `opts`, checks one echo, and returns the open connection.
async fn echo_through(url: &str, opts: &DialOptions) -> isosock::Conn {
    let (conn, _) = dial(url, opts)
        .await
        .unwrap_or_else(|e| panic!("dial {url} through the proxy: {e}"));
    conn.write("through the tunnel").await.expect("write");
    assert_eq!(
        conn.read().await.expect("read"),
        Message::text("through the tunnel")
    );
    conn
}

/// The error of a dial that must fail.
async fn dial_err(url: &str, opts: &DialOptions) -> isosock::Error {
    match dial(url, opts).await {
        Ok(_) => panic!("dial {url} succeeded; expected an error"),
        Err(e) => e,
    }
}

/// The port of a `ws://host:port/...` URL.
fn port_of(url: &str) -> &str {
    url.split(':')
        .nth(2)
        .and_then(|p| p.split('/').next())
        .expect("a URL with a port")
}

/// A `wss://localhost` echo server and the options that trust its certificate.
async fn wss_origin(opts: DialOptions) -> (String, DialOptions) {
    let (port, cert) = tls_echo_server(&["localhost"]).await;
    (
        format!("wss://localhost:{port}/"),
        opts.tls_config(trusting(cert)),
    )
}

#[tokio::test]
async fn http_connect_proxy_carries_ws_and_wss() {
    bounded(async {
        let proxy = tinyproxy(None, None).await;
        let opts = DialOptions::new().proxy(format!("http://127.0.0.1:{}", proxy.port));
        let url = echo_url().await;
        let conn = echo_through(&url, &opts).await;
        conn.close(StatusCode::NORMAL_CLOSURE, "")
            .await
            .expect("close");
        // The tunnel is below the engine: the tokio-tungstenite engine goes through it too.
        #[cfg(feature = "tungstenite")]
        {
            let tungstenite = opts.clone().engine(isosock::Engine::Tungstenite);
            let conn = echo_through(&url, &tungstenite).await;
            conn.close(StatusCode::NORMAL_CLOSURE, "")
                .await
                .expect("close");
        }
        let (wss, wss_opts) = wss_origin(opts).await;
        let conn = echo_through(&wss, &wss_opts).await;
        conn.close(StatusCode::NORMAL_CLOSURE, "")
            .await
            .expect("close");

        let (ws_port, wss_port) = (port_of(&url), port_of(&wss));
        let log = proxy.log();
        let tunnels = if cfg!(feature = "tungstenite") { 2 } else { 1 };
        let seen = log
            .matches(&format!("CONNECT 127.0.0.1:{ws_port} "))
            .count();
        assert_eq!(seen, tunnels, "{log}");
        assert!(
            log.contains(&format!("CONNECT localhost:{wss_port} ")),
            "{log}"
        );
    })
    .await;
}

#[tokio::test]
async fn http_proxy_credentials_and_the_407_challenge() {
    bounded(async {
        let proxy = tinyproxy(Some(("alice", "s3cret")), None).await;
        let url = echo_url().await;
        let at = |userinfo: &str| {
            DialOptions::new().proxy(format!("http://{userinfo}127.0.0.1:{}", proxy.port))
        };
        let conn = echo_through(&url, &at("alice:s3cret@")).await;
        conn.close(StatusCode::NORMAL_CLOSURE, "")
            .await
            .expect("close");
        let (wss, wss_opts) = wss_origin(at("alice:s3cret@")).await;
        echo_through(&wss, &wss_opts).await;

        // No credentials: 407 with the challenge. Wrong ones: tinyproxy answers 401.
        let e = dial_err(&url, &at("")).await;
        let text = e.to_string();
        assert_eq!(
            (e.kind(), e.http_status()),
            (ErrorKind::Proxy, Some(407)),
            "{text}"
        );
        assert!(text.contains("no credentials were given"), "{text}");
        assert!(
            text.contains("Proxy-Authenticate: Basic realm=\"Tinyproxy\""),
            "{text}"
        );
        assert!(
            text.contains(&format!("http://127.0.0.1:{}", proxy.port)),
            "{text}"
        );
        let e = dial_err(&url, &at("alice:wr%6Fng-pass@")).await;
        let text = e.to_string();
        assert_eq!(
            (e.kind(), e.http_status()),
            (ErrorKind::Proxy, Some(401)),
            "{text}"
        );
        assert!(
            text.contains(&format!("http://…@127.0.0.1:{}", proxy.port)),
            "{text}"
        );
        assert!(!format!("{e:?}").contains("wr"), "{e:?}");
    })
    .await;
}

#[tokio::test]
async fn http_proxy_refusals_carry_the_proxy_and_its_status() {
    bounded(async {
        let url = echo_url().await;
        // CONNECT only to port 443: any other is refused with 403.
        let strict = tinyproxy(None, Some(443)).await;
        let opts = DialOptions::new().proxy(format!("http://127.0.0.1:{}", strict.port));
        let e = dial_err(&url, &opts).await;
        assert_eq!(
            (e.kind(), e.http_status()),
            (ErrorKind::Proxy, Some(403)),
            "{e}"
        );
        assert!(e.to_string().contains("HTTP 403 Access violation"), "{e}");
        assert!(
            e.to_string().contains(&format!(
                "proxy http://127.0.0.1:{} (from DialOptions::proxy)",
                strict.port
            )),
            "{e}"
        );

        // A server that is not there: tinyproxy answers 500.
        let open = tinyproxy(None, None).await;
        let opts = DialOptions::new().proxy(format!("http://127.0.0.1:{}", open.port));
        let e = dial_err(&format!("ws://127.0.0.1:{}/", free_port()), &opts).await;
        assert_eq!(
            (e.kind(), e.http_status()),
            (ErrorKind::Proxy, Some(500)),
            "{e}"
        );
        assert!(e.to_string().contains("Unable to connect"), "{e}");

        // A SOCKS5 proxy given as an HTTP one: its answer to CONNECT is not HTTP.
        let socks = microsocks(None).await;
        let opts = DialOptions::new().proxy(format!("http://127.0.0.1:{}", socks.port));
        let e = dial_err(&url, &opts).await;
        assert_eq!(e.kind(), ErrorKind::Proxy, "{e}");
    })
    .await;
}

#[tokio::test]
async fn socks5_proxy_carries_ws_and_wss_and_its_death_ends_them() {
    bounded(async {
        let mut proxy = microsocks(None).await;
        let url = echo_url().await;
        let opts = DialOptions::new().proxy(format!("socks5://127.0.0.1:{}", proxy.port));
        let ws = echo_through(&url, &opts).await;
        // socks5h: microsocks resolves `localhost` itself.
        let opts_h = DialOptions::new().proxy(format!("socks5h://127.0.0.1:{}", proxy.port));
        let (wss, wss_opts) = wss_origin(opts_h).await;
        let secure = echo_through(&wss, &wss_opts).await;

        // Both connections run through the proxy process: killing it ends them.
        proxy.child.kill().await.expect("kill microsocks");
        for conn in [ws, secure] {
            let e = conn.read().await.expect_err("the tunnel is gone");
            assert_eq!(e.kind(), ErrorKind::ConnectionLost, "{e}");
        }
    })
    .await;
}

#[tokio::test]
async fn socks5_credentials_and_failure_replies() {
    bounded(async {
        let proxy = microsocks(Some(("bob", "pa55"))).await;
        let url = echo_url().await;
        let at = |scheme: &str, userinfo: &str| {
            DialOptions::new().proxy(format!("{scheme}://{userinfo}127.0.0.1:{}", proxy.port))
        };
        let conn = echo_through(&url, &at("socks5", "bob:pa55@")).await;
        conn.close(StatusCode::NORMAL_CLOSURE, "")
            .await
            .expect("close");
        let (wss, wss_opts) = wss_origin(at("socks5h", "bob:pa55@")).await;
        echo_through(&wss, &wss_opts).await;

        for (userinfo, why) in [
            ("", "no acceptable authentication method"),
            ("bob:nope@", "user name and password refused"),
        ] {
            let e = dial_err(&url, &at("socks5", userinfo)).await;
            assert_eq!(e.kind(), ErrorKind::Proxy, "{e}");
            assert!(e.to_string().contains(why), "{e}");
            assert!(!e.to_string().contains("nope"), "{e}");
        }
        // Nothing listens at the server's port: the proxy's reply says so.
        let closed = format!("ws://127.0.0.1:{}/", free_port());
        let e = dial_err(&closed, &at("socks5", "bob:pa55@")).await;
        assert_eq!(e.kind(), ErrorKind::Proxy, "{e}");
        assert!(
            e.to_string().contains("SOCKS5 reply 5: connection refused"),
            "{e}"
        );
    })
    .await;
}

#[tokio::test]
async fn unreachable_proxy_is_a_proxy_error_without_credentials() {
    bounded(async {
        let url = echo_url().await;
        let port = free_port();
        for scheme in ["http", "socks5", "socks5h"] {
            let opts = DialOptions::new().proxy(format!("{scheme}://u:hunter2@127.0.0.1:{port}"));
            let e = dial_err(&url, &opts).await;
            let text = e.to_string();
            assert_eq!(e.kind(), ErrorKind::Proxy, "{text}");
            assert!(
                text.contains(&format!(
                    "could not connect to the proxy {scheme}://…@127.0.0.1:{port}"
                )),
                "{text}"
            );
            assert!(
                !text.contains("hunter2") && !format!("{e:?}").contains("hunter2"),
                "{e:?}"
            );
        }
        // Not a proxy URL isosock can use: refused before anything is sent.
        let e = dial_err(&url, &DialOptions::new().proxy("https://proxy.example")).await;
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    })
    .await;
}

#[tokio::test]
async fn a_stalled_proxy_runs_into_the_dial_timeout() {
    bounded(async {
        let url = echo_url().await;
        // tinyproxy, stopped: the kernel still accepts connections, nothing answers.
        let proxy = tinyproxy(None, None).await;
        proxy.signal("STOP");
        let opts = DialOptions::new()
            .proxy(format!("http://127.0.0.1:{}", proxy.port))
            .timeout(Duration::from_millis(500));
        let e = dial_err(&url, &opts).await;
        proxy.signal("CONT");
        assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
        assert!(
            e.to_string().contains(&format!(
                "through the proxy http://127.0.0.1:{}",
                proxy.port
            )),
            "{e}"
        );
    })
    .await;
}

#[tokio::test]
async fn dropping_a_dial_closes_its_proxy_connection() {
    bounded(async {
        // Here the stalled proxy is a bare listener, to see the socket from its side: it reads
        // the CONNECT request and never answers.
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let opts = DialOptions::new().proxy(format!("http://127.0.0.1:{port}"));
        let dialing = tokio::spawn(async move { dial("ws://example.invalid/", &opts).await });
        let (mut sock, _) = listener.accept().await.expect("accept");
        let mut buf = vec![0u8; 1024];
        let n = sock.read(&mut buf).await.expect("read the request");
        assert!(
            buf[..n].starts_with(b"CONNECT example.invalid:80 HTTP/1.1\r\n"),
            "{:?}",
            String::from_utf8_lossy(&buf[..n])
        );
        dialing.abort();
        assert!(dialing.await.expect_err("aborted").is_cancelled());
        let eof = tokio::time::timeout(Duration::from_secs(10), sock.read(&mut buf))
            .await
            .expect("the proxy connection closes once the dial is dropped");
        assert_eq!(eof.expect("read"), 0);
    })
    .await;
}

/// Runs the `echo_client` example against `url` with `vars` as its only proxy variables;
/// returns whether it succeeded, and its output.
async fn echo_client(url: &str, vars: &[(&str, String)]) -> (bool, String) {
    let exe = std::env::current_exe().expect("test binary");
    let bin = exe
        .parent()
        .and_then(|deps| deps.parent())
        .map(|dir| dir.join("examples").join("echo_client"))
        .expect("target dir");
    assert!(
        bin.is_file(),
        "{} is missing: `cargo test` builds the examples (or: cargo build --example echo_client)",
        bin.display()
    );
    let mut cmd = Command::new(bin);
    cmd.arg(url).kill_on_drop(true);
    for var in PROXY_VARS {
        cmd.env_remove(var);
    }
    for (name, value) in vars {
        cmd.env(name, value);
    }
    let out = tokio::time::timeout(Duration::from_secs(20), cmd.output())
        .await
        .expect("echo_client finished in time")
        .expect("run echo_client");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

#[tokio::test]
async fn the_environment_picks_the_proxy_as_curl_does() {
    bounded(async {
        let proxy = tinyproxy(None, None).await;
        let url = echo_url().await;
        let port = port_of(&url);
        let via = format!("http://127.0.0.1:{}", proxy.port);
        let dead = format!("http://127.0.0.1:{}", free_port());
        let tunnels = |log: String| log.matches(&format!("CONNECT 127.0.0.1:{port} ")).count();

        // ws:// reads http_proxy.
        let (ok, out) = echo_client(&url, &[("http_proxy", via.clone())]).await;
        assert!(ok, "{out}");
        assert_eq!(tunnels(proxy.log()), 1, "{}", proxy.log());

        // NO_PROXY lists the host: direct, and the proxy sees nothing.
        let (ok, out) = echo_client(
            &url,
            &[
                ("HTTP_PROXY", via.clone()),
                ("NO_PROXY", "localhost, 127.0.0.0/8".into()),
            ],
        )
        .await;
        assert!(ok, "{out}");
        assert_eq!(tunnels(proxy.log()), 1, "{}", proxy.log());

        // The lower-case name wins: its dead proxy fails the dial, and the error names it.
        let (ok, out) = echo_client(
            &url,
            &[("http_proxy", dead.clone()), ("HTTP_PROXY", via.clone())],
        )
        .await;
        assert!(!ok, "{out}");
        assert!(
            out.contains(&format!(
                "could not connect to the proxy {dead} (from http_proxy)"
            )),
            "{out}"
        );

        // A wss:// proxy does not apply to ws://; ALL_PROXY does, after the scheme's own.
        let (ok, out) = echo_client(
            &url,
            &[("https_proxy", dead.clone()), ("ALL_PROXY", via.clone())],
        )
        .await;
        assert!(ok, "{out}");
        assert_eq!(tunnels(proxy.log()), 2, "{}", proxy.log());

        // An unusable value is an error that names the variable, not a silent direct dial.
        let (ok, out) = echo_client(&url, &[("http_proxy", "ftp://proxy.example".into())]).await;
        assert!(!ok, "{out}");
        assert!(
            out.contains("(http_proxy)") && out.contains("InvalidArgument"),
            "{out}"
        );
    })
    .await;
}

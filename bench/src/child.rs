//! Echo servers as child processes of this same binary, killed when dropped.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use isosock::Compression;

use crate::servers::Server;
use crate::{Impl, Result};

/// A running `isosock-bench server IMPL` process.
#[derive(Debug)]
pub struct ServerProc {
    child: Child,
    /// Its process id, for /proc.
    pub pid: u32,
    /// The `ws://127.0.0.1:PORT` URL it printed.
    pub url: String,
}

impl ServerProc {
    /// Starts the echo server of `imp` on a free port, pinned to `core` if given, and waits
    /// for the line with its URL.
    pub fn start(imp: Impl, core: Option<usize>) -> Result<ServerProc> {
        ServerProc::start_server(Server::Impl(imp), Compression::Disabled, core)
    }

    /// [`start`](Self::start) for any server of this binary, in a compression mode.
    pub fn start_server(
        server: Server,
        compression: Compression,
        core: Option<usize>,
    ) -> Result<ServerProc> {
        let mut cmd = Command::new(std::env::current_exe()?);
        cmd.args(["server", server.name(), "--port", "0"]);
        cmd.args(["--compression", crate::deflate::mode_name(compression)]);
        if let Some(c) = core {
            cmd.args(["--core", &c.to_string()]);
        }
        ServerProc::spawn(cmd, server.name())
    }

    /// Starts `program args...` (a peer's echo server), pinned to `core` if given (through
    /// `isosock-bench pinned`, so that every thread it starts inherits the core), and waits for
    /// its first line, `listening on ws://...`.
    pub fn start_program(
        name: &str,
        program: &str,
        args: &[&str],
        core: Option<usize>,
    ) -> Result<ServerProc> {
        let mut cmd = match core {
            Some(c) => {
                let mut cmd = Command::new(std::env::current_exe()?);
                cmd.args(["pinned", &c.to_string(), program]);
                cmd
            }
            None => Command::new(program),
        };
        cmd.args(args);
        ServerProc::spawn(cmd, name)
    }

    fn spawn(mut cmd: Command, name: &str) -> Result<ServerProc> {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = cmd.spawn()?;
        let pid = child.id();
        let mut line = String::new();
        let read = match child.stdout.take() {
            Some(out) => BufReader::new(out).read_line(&mut line).map_err(Into::into),
            None => Err(crate::Error::from("no stdout pipe")),
        };
        let url = line.trim().strip_prefix("listening on ").map(str::to_owned);
        match (read, url) {
            (Ok(_), Some(url)) => Ok(ServerProc { child, pid, url }),
            (r, _) => {
                let _ = child.kill();
                let status = child.wait();
                Err(format!(
                    "{name} server did not start (read: {:?}, line {line:?}, exit: {status:?})",
                    r.err()
                )
                .into())
            }
        }
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for ServerProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

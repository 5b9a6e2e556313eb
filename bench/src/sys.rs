//! Process facts from Linux: CPU pinning, the open-file limit, CPU time and RSS from /proc.

use std::time::Duration;

use crate::Result;

/// Pins the calling thread (and the threads it starts later) to CPU `core`.
///
/// The core need not be in the inherited CPU set: a load process pinned to core 1 may start a
/// server that pins itself to core 0.
pub fn pin_to_core(core: usize) -> Result<()> {
    let online = std::thread::available_parallelism().map_or(1, |n| n.get());
    if !core_affinity::set_for_current(core_affinity::CoreId { id: core }) {
        return Err(format!(
            "sched_setaffinity to core {core} failed (this process may use {online} cores)"
        )
        .into());
    }
    Ok(())
}

/// Raises the soft RLIMIT_NOFILE to the hard limit; fails if that is below `need`.
pub fn raise_nofile(need: u64) -> Result<u64> {
    use rlimit::Resource;
    let (soft, hard) = Resource::NOFILE.get()?;
    if soft < hard {
        Resource::NOFILE.set(hard, hard)?;
    }
    if hard < need {
        return Err(format!(
            "RLIMIT_NOFILE: {need} open files needed, the hard limit is {hard} \
             (raise it, e.g. `ulimit -Hn {need}` as root, or use fewer connections)"
        )
        .into());
    }
    Ok(hard)
}

/// Clock ticks per second: the unit of utime and stime in /proc/<pid>/stat.
#[allow(unsafe_code)]
fn clock_ticks() -> u64 {
    // SAFETY: sysconf only reads a configuration value; it has no memory-safety preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as u64
    } else {
        100
    }
}

fn stat_path(pid: Option<u32>) -> String {
    match pid {
        Some(p) => format!("/proc/{p}/stat"),
        None => "/proc/self/stat".to_owned(),
    }
}

/// User plus system CPU time of process `pid` (this process for `None`), all threads,
/// from utime + stime in /proc/<pid>/stat (clock-tick resolution, usually 10 ms).
pub fn cpu_time(pid: Option<u32>) -> Result<Duration> {
    let path = stat_path(pid);
    let stat = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
    // The command name (field 2) may hold spaces; the fields after its ')' do not.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or_else(|| format!("{path}: unexpected format"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After ')' comes field 3 (state); utime is field 14, stime field 15.
    let field = |i: usize| -> Result<u64> {
        fields
            .get(i - 3)
            .and_then(|f| f.parse().ok())
            .ok_or_else(|| format!("{path}: field {i} missing").into())
    };
    let ticks = field(14)? + field(15)?;
    Ok(Duration::from_secs_f64(ticks as f64 / clock_ticks() as f64))
}

/// Resident set size (VmRSS) of process `pid`, in KiB.
pub fn vm_rss_kib(pid: u32) -> Result<u64> {
    status_kib(pid, "VmRSS")
}

/// A `kB` field of /proc/<pid>/status (`VmRSS`, `VmHWM`, ...), in KiB.
pub fn status_kib(pid: u32, field: &str) -> Result<u64> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| format!("{path}: no {field} line").into())
}

/// Bytes the application side of a set of TCP sockets has written and read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SocketBytes {
    /// Established sockets found.
    pub sockets: usize,
    /// Written by the application: acknowledged by the peer plus still in the send queue.
    pub written: u64,
    /// Read by the application: received by the kernel less what waits in the receive queue.
    pub read: u64,
}

/// What this machine's established TCP sockets whose remote port is `port` have carried, from
/// `ss -tinH` (iproute2): per socket `bytes_acked` + Send-Q and `bytes_received` - Recv-Q,
/// summed. On a client these are the WebSocket frames as sent and read, headers included.
pub fn socket_bytes_to_port(port: u16) -> Result<SocketBytes> {
    let out = std::process::Command::new("ss")
        .args([
            "-tinH",
            "state",
            "established",
            "dport",
            "=",
            &format!(":{port}"),
        ])
        .output()
        .map_err(|e| format!("running ss (iproute2): {e}"))?;
    if !out.status.success() {
        return Err(format!("ss: {}", String::from_utf8_lossy(&out.stderr).trim()).into());
    }
    parse_ss(&String::from_utf8_lossy(&out.stdout))
}

/// Parses `ss -tinH state established` output: a line `Recv-Q Send-Q local peer` per socket,
/// then a line of TCP_INFO fields.
fn parse_ss(text: &str) -> Result<SocketBytes> {
    let mut total = SocketBytes::default();
    let mut queues: Option<(u64, u64)> = None;
    for line in text.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.is_empty() {
            continue;
        }
        if !line.starts_with(char::is_whitespace) {
            let q = |i: usize| fields.get(i).and_then(|v| v.parse::<u64>().ok());
            queues = q(0).zip(q(1));
            continue;
        }
        let Some((recv_q, send_q)) = queues.take() else {
            continue;
        };
        let field = |name: &str| -> u64 {
            fields
                .iter()
                .find_map(|f| f.strip_prefix(name)?.strip_prefix(':')?.parse().ok())
                .unwrap_or(0)
        };
        total.sockets += 1;
        total.written += field("bytes_acked") + send_q;
        total.read += field("bytes_received").saturating_sub(recv_q);
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_cpu_time_and_rss() {
        assert!(cpu_time(None).is_ok());
        let rss = vm_rss_kib(std::process::id()).expect("VmRSS");
        assert!(rss > 0);
    }

    #[test]
    fn parses_ss_output() {
        let out = "0      59393  127.0.0.1:48482 127.0.0.1:37545\n\t bbr wscale:10,10 \
                   bytes_sent:40198709 bytes_acked:40139317 bytes_received:37235367 \
                   segs_out:1182\n12     0      127.0.0.1:48484 127.0.0.1:37545\n\t \
                   bytes_acked:100 bytes_received:50 rcv_space:1\n";
        let b = parse_ss(out).expect("parses");
        assert_eq!(b.sockets, 2);
        assert_eq!(b.written, 40139317 + 59393 + 100);
        assert_eq!(b.read, 37235367 + 50 - 12);
    }
}

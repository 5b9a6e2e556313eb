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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_cpu_time_and_rss() {
        assert!(cpu_time(None).is_ok());
        let rss = vm_rss_kib(std::process::id()).expect("VmRSS");
        assert!(rss > 0);
    }
}

//! A minimal command-line parser: positional words, `--name value` options and `--switch`es.

use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

use crate::Result;

/// Parsed arguments of one subcommand.
#[derive(Debug, Default)]
pub struct Args {
    positional: Vec<String>,
    options: HashMap<String, String>,
    switches: Vec<String>,
}

impl Args {
    /// Parses `args`; names in `switches` take no value, every other `--name` takes one.
    pub fn parse(args: &[String], switches: &[&str]) -> Result<Args> {
        let mut out = Args::default();
        let mut it = args.iter();
        while let Some(a) = it.next() {
            let Some(name) = a.strip_prefix("--") else {
                out.positional.push(a.clone());
                continue;
            };
            if let Some((n, v)) = name.split_once('=') {
                out.options.insert(n.to_owned(), v.to_owned());
            } else if switches.contains(&name) {
                out.switches.push(name.to_owned());
            } else {
                let v = it.next().ok_or_else(|| format!("--{name} needs a value"))?;
                out.options.insert(name.to_owned(), v.clone());
            }
        }
        Ok(out)
    }

    /// The `i`th positional word.
    pub fn positional(&self, i: usize) -> Option<&str> {
        self.positional.get(i).map(String::as_str)
    }

    /// Whether `--name` was given.
    pub fn switch(&self, name: &str) -> bool {
        self.switches.iter().any(|s| s == name)
    }

    /// The raw value of `--name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.options.get(name).map(String::as_str)
    }

    /// The value of `--name` parsed as `T`, or `default`.
    pub fn value<T: FromStr>(&self, name: &str, default: T) -> Result<T> {
        match self.get(name) {
            None => Ok(default),
            Some(v) => v
                .parse()
                .map_err(|_| format!("--{name}: cannot parse {v:?}").into()),
        }
    }

    /// The value of `--name` as seconds (fractions allowed), or `default`.
    pub fn seconds(&self, name: &str, default: Duration) -> Result<Duration> {
        match self.get(name) {
            None => Ok(default),
            Some(v) => {
                let s: f64 = v
                    .parse()
                    .map_err(|_| format!("--{name}: not a number of seconds: {v:?}"))?;
                Duration::try_from_secs_f64(s).map_err(|e| format!("--{name}: {e}").into())
            }
        }
    }

    /// A comma-separated list from `--name` parsed with `parse`, or `default`.
    pub fn list<T>(
        &self,
        name: &str,
        default: Vec<T>,
        parse: impl Fn(&str) -> Result<T>,
    ) -> Result<Vec<T>> {
        match self.get(name) {
            None => Ok(default),
            Some(v) => v.split(',').map(|s| parse(s.trim())).collect(),
        }
    }
}

/// Parses a size such as `16`, `1KiB`, `64k`, `1MiB`, `1m` into bytes.
pub fn parse_size(s: &str) -> Result<usize> {
    let lower = s.to_ascii_lowercase();
    let (num, mult) = if let Some(n) = lower
        .strip_suffix("kib")
        .or_else(|| lower.strip_suffix('k'))
    {
        (n, 1 << 10)
    } else if let Some(n) = lower
        .strip_suffix("mib")
        .or_else(|| lower.strip_suffix('m'))
    {
        (n, 1 << 20)
    } else {
        (lower.strip_suffix('b').unwrap_or(&lower), 1)
    };
    let n: usize = num
        .trim()
        .parse()
        .map_err(|_| format!("not a size: {s:?}"))?;
    Ok(n * mult)
}

/// Formats a byte count the way the tables show it: `16 B`, `1 KiB`, `64 KiB`, `1 MiB`.
pub fn fmt_size(n: usize) -> String {
    if n >= 1 << 20 && n.is_multiple_of(1 << 20) {
        format!("{} MiB", n >> 20)
    } else if n >= 1 << 10 && n.is_multiple_of(1 << 10) {
        format!("{} KiB", n >> 10)
    } else {
        format!("{n} B")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_round_trip() {
        for (s, n) in [
            ("16", 16),
            ("1KiB", 1024),
            ("64k", 65536),
            ("1MiB", 1 << 20),
        ] {
            assert_eq!(parse_size(s).ok(), Some(n), "{s}");
        }
        assert_eq!(fmt_size(16), "16 B");
        assert_eq!(fmt_size(1 << 20), "1 MiB");
    }

    #[test]
    fn options_switches_and_positionals() {
        let argv: Vec<String> = ["server", "--port", "0", "--quick", "--core=1"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let a = Args::parse(&argv, &["quick"]).expect("parses");
        assert_eq!(a.positional(0), Some("server"));
        assert_eq!(a.get("port"), Some("0"));
        assert_eq!(a.get("core"), Some("1"));
        assert!(a.switch("quick"));
    }
}

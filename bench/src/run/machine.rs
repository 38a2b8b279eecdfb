//! What the printed run says about where it ran: the machine (CPUs, memory, kernel, rustc,
//! nginx, load average) and the trees the binaries under test were built from.

use std::path::Path;
use std::process::{Command, Stdio};

use super::options::Options;

/// Where the binaries under test come from, and the commit of their tree when it is one.
pub(crate) fn binaries(o: &Options) -> String {
    let describe = |dir: &Path| {
        let dir = dir.display().to_string();
        match tree_commit(&dir) {
            Some((commit, dirty)) => format!(
                "`{dir}` (tree at {commit}{})",
                if dirty {
                    " with uncommitted changes"
                } else {
                    ""
                }
            ),
            None => format!("`{dir}`"),
        }
    };
    match &o.sim_bin_dir {
        Some(sim) if *sim != o.bin_dir => format!(
            "proxy from {}, simulator from {}",
            describe(&o.bin_dir),
            describe(sim)
        ),
        _ => describe(&o.bin_dir),
    }
}

/// The short commit of the git tree holding `dir`, and whether tracked files differ from it.
fn tree_commit(dir: &str) -> Option<(String, bool)> {
    let head = Command::new("git")
        .args(["-C", dir, "rev-parse", "--short", "HEAD"])
        .stderr(Stdio::null())
        .output()
        .ok()
        .filter(|out| out.status.success())?;
    let commit = String::from_utf8_lossy(&head.stdout).trim().to_owned();
    let dirty = Command::new("git")
        .args(["-C", dir, "status", "--porcelain", "--untracked-files=no"])
        .stderr(Stdio::null())
        .output()
        .is_ok_and(|out| !out.stdout.is_empty());
    Some((commit, dirty))
}

/// What `program args` prints (stdout, else stderr), trimmed.
fn command_line(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .map(|o| {
            let text = if o.stdout.is_empty() {
                o.stderr
            } else {
                o.stdout
            };
            String::from_utf8_lossy(&text).trim().to_owned()
        })
        .unwrap_or_else(|_| "unknown".to_owned())
}

/// The `Machine:` line that opens the output.
pub(crate) fn machine(o: &Options) -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or("unknown", |(_, v)| v.trim())
        .to_owned();
    let mem = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("MemTotal"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or("unknown".to_owned(), |kib| {
            format!("{:.1} GiB", kib as f64 / 1_048_576.0)
        });
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    // The tree the binaries under test were built from (--bin-dir), else this one.
    let (commit, dirty) = tree_commit(&o.bin_dir.display().to_string())
        .or_else(|| tree_commit("."))
        .unwrap_or_else(|| ("unknown".to_owned(), false));
    format!(
        "Machine: {} CPUs ({model}), {mem} RAM, Linux {}, {}, {}; genesys-proxy at {commit}{}; load average at start {}.\n",
        num_cpus_total(),
        kernel.trim(),
        command_line("rustc", &["--version"]),
        command_line(&o.nginx.display().to_string(), &["-v"]),
        if dirty {
            " with uncommitted changes"
        } else {
            ""
        },
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
    )
}

/// CPUs of the machine (not only those this process may use).
fn num_cpus_total() -> usize {
    std::fs::read_to_string("/proc/cpuinfo")
        .map(|t| t.lines().filter(|l| l.starts_with("processor")).count())
        .unwrap_or(0)
}

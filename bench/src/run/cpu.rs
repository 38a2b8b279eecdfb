//! CPU use during a run, from /proc: the server's (its process and children), the load
//! generator's, and everything else's on the server's core ([`CpuProbe`], [`CpuUse`]).

use super::SERVER_CPU;

fn cpu_ticks(pid: u32) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may contain spaces): state is field 3.
    let rest = text.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let get = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    get(11) + get(12) // utime (14) and stime (15), counted from field 3
}

/// The process and its children (nginx: master and workers).
fn family(pid: u32) -> Vec<u32> {
    let mut out = vec![pid];
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for entry in dir.flatten() {
            let Some(child) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            let stat = std::fs::read_to_string(format!("/proc/{child}/stat")).unwrap_or_default();
            let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
            if rest
                .split_whitespace()
                .nth(1)
                .and_then(|p| p.parse::<u32>().ok())
                == Some(pid)
            {
                out.push(child);
            }
        }
    }
    out
}

/// Busy and total ticks of one CPU (from /proc/stat).
fn core_ticks(cpu: &str) -> (u64, u64) {
    let text = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let name = format!("cpu{cpu} ");
    let Some(line) = text.lines().find(|l| l.starts_with(&name)) else {
        return (0, 0);
    };
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let total: u64 = v.iter().take(8).sum();
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    (total - idle, total)
}

/// CPU use during a run: the server's, the load generator's, and everything else's on
/// the server's core, each as a share of one core.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct CpuUse {
    pub(crate) server: f64,
    pub(crate) load: f64,
    pub(crate) other_on_server_core: f64,
}

/// The counters at the start of a measured span; [`CpuProbe::stop`] gives the use since.
pub(crate) struct CpuProbe {
    pids: Vec<u32>,
    server: u64,
    load: u64,
    core: (u64, u64),
    at: std::time::Instant,
}

impl CpuProbe {
    pub(crate) fn start(server_pid: u32) -> Self {
        let pids = family(server_pid);
        Self {
            server: pids.iter().map(|p| cpu_ticks(*p)).sum(),
            load: cpu_ticks(std::process::id()),
            core: core_ticks(SERVER_CPU),
            at: std::time::Instant::now(),
            pids,
        }
    }

    pub(crate) fn stop(&self) -> CpuUse {
        let hz = 100.0; // USER_HZ
        let secs = self.at.elapsed().as_secs_f64();
        let server: u64 = self.pids.iter().map(|p| cpu_ticks(*p)).sum();
        let load = cpu_ticks(std::process::id());
        let core = core_ticks(SERVER_CPU);
        let server_share = (server - self.server) as f64 / hz / secs;
        let core_busy = (core.0 - self.core.0) as f64 / (core.1 - self.core.1).max(1) as f64;
        CpuUse {
            server: server_share,
            load: (load - self.load) as f64 / hz / secs,
            other_on_server_core: (core_busy - server_share).max(0.0),
        }
    }
}

/// CPUs this process may run on.
pub(crate) fn num_cpus() -> usize {
    std::thread::available_parallelism().map_or(2, std::num::NonZero::get)
}

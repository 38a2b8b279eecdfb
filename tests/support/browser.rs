//! Headless Chromium for the browser tests: find it, load a page in a fresh profile with
//! only the host names a test allows resolvable, and return its DOM ([`render`]) or write
//! a screenshot of it ([`screenshot`]); and run a browser driver in its own process group
//! under the same guard ([`output_within_timeout`]).
//!
//! Needs Debian's `chromium` (`apt-get install -y chromium`). Without it [`chromium`]
//! prints "skipped: chromium not installed" and returns `None`, except under CI (`CI`
//! set), where it fails.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Longest a Chromium run may take before it is killed: a guard against a hung browser,
/// not a timing claim. A page load takes about 2 s on an idle 2-core machine; 15 s was
/// exceeded on a loaded one (load average 24), so the guard is generous.
pub const CHROMIUM_TIMEOUT: Duration = Duration::from_secs(90);

/// Chromium: `/usr/bin/chromium`, or `chromium` on `PATH`. `None` means the caller must
/// return (skipped); under CI its absence fails the test.
pub fn chromium() -> Option<PathBuf> {
    let debian = PathBuf::from("/usr/bin/chromium");
    if debian.is_file() {
        return Some(debian);
    }
    super::installed("chromium", "apt-get install -y chromium")
}

/// A fresh Chromium profile directory, removed when dropped.
#[derive(Debug)]
pub struct Profile(pub PathBuf);

impl Profile {
    pub fn new() -> Self {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("the clock is after 1970")
            .as_nanos();
        let dir = std::env::temp_dir().join(format!(
            "genesys-proxy-browser-{}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).expect("the profile directory is created");
        Self(dir)
    }
}

impl Drop for Profile {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// How a page is loaded: which names resolve (Chromium's `--host-resolver-rules`; the
/// tests let it resolve no name but the proxy's, so the page works offline or not at
/// all), and how long the page may run in virtual time before it is read.
#[derive(Debug, Clone)]
pub struct Load<'a> {
    pub url: &'a str,
    pub resolver_rules: &'a str,
    pub virtual_time_ms: u64,
}

/// Runs Chromium on `load` with `extra` arguments (the output mode), in a fresh profile
/// and its own process group, killed whole if it outlives [`CHROMIUM_TIMEOUT`]; returns
/// its standard output.
async fn run(chromium: &Path, load: &Load<'_>, extra: &[String]) -> String {
    let profile = Profile::new();
    let mut command = tokio::process::Command::new(chromium);
    command
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-extensions",
            "--disable-sync",
            "--no-first-run",
            "--no-proxy-server",
            "--hide-scrollbars",
        ])
        .arg(format!("--virtual-time-budget={}", load.virtual_time_ms))
        .arg(format!("--host-resolver-rules={}", load.resolver_rules))
        .arg(format!("--user-data-dir={}", profile.0.display()))
        .args(extra)
        .arg(load.url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let what = format!("chromium loading {}", load.url);
    let output = output_within_timeout(command, &what).await;
    assert!(
        output.status.success(),
        "chromium failed on {} ({}): {}",
        load.url,
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Runs `command` (set up with `process_group(0)` and piped output) and returns its
/// output; if it outlives [`CHROMIUM_TIMEOUT`], kills its whole process group (a browser's
/// renderers, or the browser a driver started) and fails naming `what`.
pub async fn output_within_timeout(
    mut command: tokio::process::Command,
    what: &str,
) -> std::process::Output {
    let child = command
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("{what}: does not start: {e}"));
    let group = child.id().expect("the child has a pid");
    let Ok(output) = tokio::time::timeout(CHROMIUM_TIMEOUT, child.wait_with_output()).await else {
        // Dropping the wait killed the child itself; what it started is in its group.
        let _ = std::process::Command::new("kill")
            .args(["-KILL", "--", &format!("-{group}")])
            .status();
        panic!("{what}: did not finish within {CHROMIUM_TIMEOUT:?}");
    };
    output.unwrap_or_else(|e| panic!("{what}: {e}"))
}

/// Loads the page and returns its DOM once it has settled (`--dump-dom`).
pub async fn render(chromium: &Path, load: &Load<'_>) -> String {
    let dom = run(chromium, load, &["--dump-dom".to_owned()]).await;
    assert!(
        !dom.trim().is_empty(),
        "chromium rendered {} as nothing",
        load.url
    );
    dom
}

/// Loads the page in a window of `width` x `height` pixels and writes a PNG screenshot of
/// it to `path` (`--screenshot`), checking that a PNG was written.
pub async fn screenshot(
    chromium: &Path,
    load: &Load<'_>,
    path: &Path,
    (width, height): (u32, u32),
) {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).expect("the screenshot's directory is created");
    }
    let _ = std::fs::remove_file(path);
    run(
        chromium,
        load,
        &[
            format!("--screenshot={}", path.display()),
            format!("--window-size={width},{height}"),
        ],
    )
    .await;
    let png = std::fs::read(path)
        .unwrap_or_else(|e| panic!("chromium wrote no screenshot at {}: {e}", path.display()));
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 1_000,
        "{} is not a PNG of a page ({} bytes)",
        path.display(),
        png.len()
    );
}

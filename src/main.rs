//! `genesys-proxy`: config -> telemetry -> App::build -> serve until shutdown. Owns the
//! command line: its options, the environment it documents (`--help`), and the messages an
//! operator meets first (nothing to run, a setting that stops the start, `--demo` in a
//! build without the `demo` feature).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
#[cfg(feature = "demo")]
use genesys_proxy::demo::Demo;
use genesys_proxy::{App, Settings, app, auth, telemetry};

/// The environment, as `--help` shows it.
const ENVIRONMENT_HELP: &str = "\
Environment:
  GENESYS_CLIENT_ID                 OAuth client id of the proxy (client-credentials grant)
  GENESYS_CLIENT_SECRET             its secret (read from the environment only), or
  GENESYS_CLIENT_SECRET_FILE        a file holding it (container secrets)
  GENESYS_REGION                    the org's region (mypurecloud.ie), or both of
  GENESYS_API_URL, GENESYS_LOGIN_URL  explicit base URLs (a simulator, an egress proxy)
  GENESYS_PROXY_<SECTION>__<KEY>    any setting of the file (GENESYS_PROXY_BUDGET__RATE=600)
  GENESYS_PROXY_CLIENTS             the [[clients]] entries, as a TOML array
  RUST_LOG                          log filter (overrides telemetry.log_filter)
  OTEL_EXPORTER_OTLP_ENDPOINT       export traces over OTLP/HTTP (OTEL_SERVICE_NAME names them)

Later wins: built-in defaults, --config FILE, GENESYS_PROXY_*, the GENESYS_* connection
variables, --listen. Other GENESYS_PROXY_* variables (Kubernetes service links, compose's
GENESYS_PROXY_IMAGE) are ignored with a warning; a GENESYS_PROXY_*__* name that is no
setting stops the start. Every setting: config.example.toml.";

/// What to do when there is nothing to run.
#[cfg(feature = "demo")]
const FIRST_RUN: &str = "nothing to serve: pass --config FILE (your settings and [[clients]]; \
see config.example.toml), or --demo to try the proxy against a built-in simulated Genesys org \
(`genesys-proxy --help` lists the options and environment variables)";
#[cfg(not(feature = "demo"))]
const FIRST_RUN: &str = "nothing to serve: pass --config FILE (your settings and [[clients]]; \
see config.example.toml; `genesys-proxy --help` lists the options and environment variables)";

/// `--demo`, as `--help` shows it.
#[cfg(feature = "demo")]
const DEMO_HELP: &str =
    "Start the simulated Genesys org in-process and point the proxy at it (no credentials needed)";
#[cfg(not(feature = "demo"))]
const DEMO_HELP: &str = "Demo mode: not in this build, which was built without the `demo` \
feature (the default features have it)";

/// `--demo` in a build without the simulator: what happened and how to get it.
const WITHOUT_DEMO: &str = "--demo is not in this build: genesys-proxy was built without its \
`demo` feature (`--no-default-features`, a production build), so it carries no simulated \
Genesys org. Demo mode needs the default features: `cargo run --release -- --demo` in the \
source tree, or the container image built without `--build-arg DEMO=false`. This build serves \
a real org: pass --config FILE";

/// Stands in for [`genesys_proxy::demo::Demo`] in a build without the `demo` feature: it has
/// no value, since `--demo` stops the start ([`WITHOUT_DEMO`]) before one would be made.
#[cfg(not(feature = "demo"))]
#[derive(Debug)]
enum Demo {}

#[cfg(not(feature = "demo"))]
impl Demo {
    async fn start(
        _: &mut Settings,
    ) -> Result<(Self, genesys_proxy::config::GenesysConnection), String> {
        Err(WITHOUT_DEMO.to_owned())
    }

    fn banner(&self, _: SocketAddr) -> String {
        match *self {}
    }
}

/// A caching, coalescing, rate-pacing proxy in front of Genesys Cloud conversation data.
#[derive(Debug, Parser)]
#[command(version, about, after_help = ENVIRONMENT_HELP)]
struct Cli {
    #[arg(long, help = DEMO_HELP)]
    demo: bool,
    /// Settings file (TOML); see config.example.toml.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Address to listen on (overrides server.listen).
    #[arg(long)]
    listen: Option<SocketAddr>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print a new API key, its SHA-256 and a [[clients]] entry to paste into the config.
    Keygen {
        /// The client's name.
        #[arg(long, default_value = "my-client")]
        name: String,
    },
    /// Exit 0 when the proxy at URL answers its liveness probe (for container HEALTHCHECKs
    /// that have no curl).
    Healthcheck {
        /// The liveness URL.
        #[arg(long, default_value = "http://127.0.0.1:8080/healthz")]
        url: String,
    },
}

async fn healthcheck(url: &str) -> ExitCode {
    // Never through HTTP_PROXY: the health check asks a local port.
    let client = match genesys_proxy::egress::local_client(std::time::Duration::from_secs(3)) {
        Ok(client) => client,
        Err(error) => return fail(&format!("healthcheck: {error}")),
    };
    match client.get(url).send().await {
        Ok(response) if response.status().is_success() => ExitCode::SUCCESS,
        Ok(response) => fail(&format!(
            "healthcheck: {url} answered {}",
            response.status()
        )),
        Err(error) => fail(&format!("healthcheck: {url} did not answer: {error}")),
    }
}

fn fail(message: &str) -> ExitCode {
    eprintln!("genesys-proxy: {message}");
    ExitCode::from(2)
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.demo && !cfg!(feature = "demo") {
        return fail(WITHOUT_DEMO);
    }
    if let Some(Command::Healthcheck { url }) = &cli.command {
        return healthcheck(url).await;
    }
    if let Some(Command::Keygen { name }) = &cli.command {
        let key = auth::generate_key();
        println!("API key (give it to the client; it is not stored anywhere): {key}");
        println!();
        println!(
            "[[clients]]\nname = {name:?}\nkey_sha256 = \"{}\"\nscopes = [\"conversations:read\", \"reports:read\"]\nweight = 1",
            auth::hash_key(&key)
        );
        return ExitCode::SUCCESS;
    }

    // Demo mode needs no file and adds its own client, so it validates later (App::build),
    // but it honours a file and the environment like real mode.
    let mut settings = match Settings::gather(cli.config.as_deref()) {
        Ok(settings) => settings,
        Err(message) => return fail(&message),
    };
    if !cli.demo && cli.config.is_none() && settings.clients.is_empty() {
        return fail(FIRST_RUN);
    }
    let checked = if cli.demo {
        settings.telemetry.validate()
    } else {
        settings.validate()
    };
    if let Err(message) = checked {
        return fail(&message);
    }
    let listen_origin = match cli.listen {
        Some(listen) => {
            settings.server.listen = listen;
            "--listen".to_owned()
        }
        None => Settings::origin(cli.config.as_deref(), "server.listen"),
    };
    let _telemetry = telemetry::init(&settings.telemetry);
    let stray = Settings::stray_environment();
    if !stray.is_empty() {
        tracing::warn!(
            variables = %stray.join(", "),
            "ignoring GENESYS_PROXY_* variables that name no setting (settings are GENESYS_PROXY_<SECTION>__<KEY> and GENESYS_PROXY_CLIENTS)"
        );
    }

    let (demo, connection) = if cli.demo {
        match Demo::start(&mut settings).await {
            Ok((demo, connection)) => (Some(demo), connection),
            Err(message) => return fail(&message),
        }
    } else {
        match settings.genesys_connection() {
            Ok(connection) => (None, connection),
            Err(message) => return fail(&message),
        }
    };

    let app = match App::build(settings, connection).await {
        Ok(app) => app,
        Err(message) => return fail(&message),
    };
    let address = app.local_addr();
    tracing::info!(%address, listen_from = %listen_origin, "genesys-proxy listening");
    if let Some(ops) = app.ops_addr() {
        tracing::info!(%ops, "operations listener: /healthz, /readyz and /metrics");
    }
    if let Some(demo) = &demo {
        println!("{}", demo.banner(address));
    }
    if let Err(error) = app.serve(app::shutdown_signal()).await {
        return fail(&format!("server error: {error}"));
    }
    // The simulator serves until the proxy has stopped (a build without the demo feature
    // has none).
    #[cfg(feature = "demo")]
    drop(demo);
    ExitCode::SUCCESS
}

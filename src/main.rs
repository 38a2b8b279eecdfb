//! `genesys-proxy`: config -> telemetry -> App::build -> serve until shutdown.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use genesys_proxy::demo::Demo;
use genesys_proxy::{App, Settings, app, auth, telemetry};

/// A caching, coalescing, rate-pacing proxy in front of Genesys Cloud conversation data.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// Start the simulated Genesys org in-process and point the proxy at it (no credentials needed).
    #[arg(long)]
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
    let client = match reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(3))
        .build()
    {
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
    let gathered = if cli.demo {
        Settings::gather(cli.config.as_deref())
    } else {
        Settings::load(cli.config.as_deref())
    };
    let mut settings = match gathered {
        Ok(settings) => settings,
        Err(message) => return fail(&message),
    };
    if let Some(listen) = cli.listen {
        settings.server.listen = listen;
    }
    let _telemetry = telemetry::init(&settings.telemetry);

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
    match &demo {
        Some(demo) => println!("{}", demo.banner(address)),
        None => tracing::info!(%address, "genesys-proxy listening"),
    }
    if let Err(error) = app.serve(app::shutdown_signal()).await {
        return fail(&format!("server error: {error}"));
    }
    drop(demo);
    ExitCode::SUCCESS
}

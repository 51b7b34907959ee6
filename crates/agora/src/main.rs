//! `agora`: serve, migrate, manage keys.

use anyhow::Context;
use clap::{Parser, Subcommand};
use tokio::net::TcpListener;
use tracing_subscriber::fmt::writer::BoxMakeWriter;

use agora::config::LogFormat;

/// mimalloc instead of the system allocator: the delivery path allocates per request (headers,
/// bodies, SQL arguments) across many threads, where glibc's malloc took a large share of the
/// CPU (docs/dev/performance.md has the measurement and how to repeat it).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use agora::Config;

#[derive(Parser)]
#[command(
    name = "agora",
    version,
    about = "A headless community forum server with reliable webhooks"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the API and the delivery workers.
    Serve(Config),
    /// Bring the database schema up to date and exit.
    Migrate(Config),
    /// Manage API keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Print the version.
    Version,
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Create a key and print its value (shown this once).
    Create {
        /// What the key is for.
        #[arg(long, default_value = "cli")]
        name: String,
        /// Comma-separated abilities, e.g. `webhooks:write,threads:read`.
        #[arg(long, value_delimiter = ',', required = true)]
        abilities: Vec<String>,
        #[command(flatten)]
        config: Config,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(config) => serve(config).await,
        Command::Migrate(config) => {
            init_logging(config.log_format);
            let store = agora_store::Store::open(
                &config.database_url()?,
                Default::default(),
                config.store_options(),
            )
            .await?;
            store.close().await;
            println!("database is up to date");
            Ok(())
        }
        Command::Keys {
            command:
                KeysCommand::Create {
                    name,
                    abilities,
                    config,
                },
        } => {
            let parsed =
                agora_forum::abilities::Abilities::parse(&abilities).map_err(anyhow::Error::msg)?;
            let store = agora_store::Store::open(
                &config.database_url()?,
                Default::default(),
                config.store_options(),
            )
            .await?;
            let value = agora_store::keys::generate_value();
            let key = store.create_key(&name, &parsed, &value).await?;
            store.close().await;
            println!("{value}");
            eprintln!(
                "created {} with abilities {}; the key is shown only this once",
                key.id,
                abilities.join(",")
            );
            Ok(())
        }
        Command::Version => {
            println!("agora {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    init_logging(config.log_format);
    let listener = TcpListener::bind(&config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let running = agora::start(config, listener).await?;
    // To stderr, never to stdout, which carries the log stream: a log collector must not
    // receive, and keep, the admin key.
    if let Some(key) = &running.bootstrap_admin_key {
        eprintln!(
            "admin API key (shown once, also written to the data directory as admin.key): {key}"
        );
    }
    let drainer = running.drainer();
    tokio::spawn(async move {
        wait_for_signal().await;
        // A second signal skips what is left of the drain.
        drainer.drain_then_stop(wait_for_signal()).await;
    });
    let stopped = running.wait().await;
    agora::otlp::shutdown();
    stopped
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler installs");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

fn init_logging(format: LogFormat) {
    use std::io::IsTerminal;
    agora::init_logging(
        format,
        BoxMakeWriter::new(std::io::stdout),
        std::io::stdout().is_terminal(),
    );
}

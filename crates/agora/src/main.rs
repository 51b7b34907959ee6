//! `agora`: serve, migrate, back up, manage keys offline; and the remote commands (`cli`), which
//! talk to a running server.

mod cli;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tokio::net::TcpListener;
use tracing_subscriber::fmt::writer::BoxMakeWriter;

use agora::config::LogFormat;
use agora::local::{Existing, Location};

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
    /// Bring an existing database's schema up to date and exit.
    Migrate(Config),
    /// Copy a running server's SQLite database into FILE (a new file), consistently.
    Backup {
        /// The file to write; it must not exist.
        file: std::path::PathBuf,
        #[command(flatten)]
        location: Location,
    },
    /// Manage API keys: on a running server, or (`create` without a server) in its database.
    Keys {
        #[command(flatten)]
        remote: cli::Remote,
        #[command(subcommand)]
        command: cli::KeysCommand,
    },
    /// Manage webhooks on a running server.
    Webhooks {
        #[command(flatten)]
        remote: cli::Remote,
        #[command(subcommand)]
        command: cli::WebhooksCommand,
    },
    /// Inspect and redeliver deliveries on a running server.
    Deliveries {
        #[command(flatten)]
        remote: cli::Remote,
        #[command(subcommand)]
        command: cli::DeliveriesCommand,
    },
    /// Read the event history and publish custom events on a running server.
    Events {
        #[command(flatten)]
        remote: cli::Remote,
        #[command(subcommand)]
        command: cli::EventsCommand,
    },
    /// Read the audit trail of a running server (admin).
    AuditLog {
        #[command(flatten)]
        remote: cli::Remote,
        #[command(flatten)]
        args: cli::AuditArgs,
    },
    /// Print a shell completion script: `agora completions bash > /etc/bash_completion.d/agora`.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Follow a server's events and forward each, signed, to a local URL.
    Listen(agora::listen::ListenArgs),
    /// Print the version and the database schema version it brings a database to.
    Version,
}

#[tokio::main]
async fn main() -> anyhow::Result<std::process::ExitCode> {
    let cli = Cli::parse();
    let done = match cli.command {
        Command::Serve(config) => serve(config).await,
        Command::Listen(args) => {
            agora::listen::check(&args)?;
            agora::listen::run(args).await
        }
        Command::Migrate(config) => {
            init_logging(config.log_format);
            let database = Existing::find(&config.data_dir, config.database_url.as_deref())?;
            let store = agora_store::Store::open(
                &database.url(),
                Default::default(),
                config.store_options(),
            )
            .await?;
            store.close().await;
            println!("database is up to date");
            Ok(())
        }
        Command::Keys { remote, command } => return keys(remote, command).await,
        Command::Webhooks { remote, command } => {
            return Ok(cli::exit_code(command.run(&remote).await))
        }
        Command::Deliveries { remote, command } => {
            return Ok(cli::exit_code(command.run(&remote).await))
        }
        Command::Events { remote, command } => {
            return Ok(cli::exit_code(command.run(&remote).await))
        }
        Command::AuditLog { remote, args } => return Ok(cli::exit_code(args.run(&remote).await)),
        Command::Completions { shell } => {
            use clap::CommandFactory;
            let mut command = Cli::command();
            clap_complete::generate(shell, &mut command, "agora", &mut std::io::stdout());
            Ok(())
        }
        Command::Backup { file, location } => {
            let backup = agora::backup::run(&location.existing()?, &file).await?;
            println!("{}", backup.file.display());
            eprintln!(
                "copied {} into {} ({} bytes); a restore also needs the secret key \
                 (secret.key in the data directory, or AGORA_SECRET_KEY), which the copy \
                 does not hold",
                backup.database.display(),
                backup.file.display(),
                backup.bytes
            );
            Ok(())
        }
        Command::Version => {
            use agora_store::{schema, Backend};
            println!("agora {}", env!("CARGO_PKG_VERSION"));
            println!(
                "schema {} (SQLite), {} (PostgreSQL)",
                schema::latest(Backend::Sqlite),
                schema::latest(Backend::Postgres)
            );
            Ok(())
        }
    };
    done.map(|()| std::process::ExitCode::SUCCESS)
}

/// `agora keys …`: `create` with no server (neither `--server` nor `AGORA_URL`) writes to
/// the database directly; everything else goes through the API.
async fn keys(
    remote: cli::Remote,
    command: cli::KeysCommand,
) -> anyhow::Result<std::process::ExitCode> {
    let remote_command = match command {
        cli::KeysCommand::Create {
            name,
            abilities,
            local,
        } if remote.server.is_none() => {
            create_key_offline(&name, &abilities, local).await?;
            return Ok(std::process::ExitCode::SUCCESS);
        }
        cli::KeysCommand::Create {
            name, abilities, ..
        } => cli::RemoteKeysCommand::Create { name, abilities },
        cli::KeysCommand::List => cli::RemoteKeysCommand::List,
        cli::KeysCommand::Revoke { id } => cli::RemoteKeysCommand::Revoke { id },
    };
    Ok(cli::exit_code(remote_command.run(&remote).await))
}

/// Creates a key in the database of `local`, for a server's first key or a locked-out
/// operator; recorded in the audit trail as the operator's.
async fn create_key_offline(
    name: &str,
    abilities: &[String],
    local: Location,
) -> anyhow::Result<()> {
    let parsed = agora_forum::abilities::Abilities::parse(abilities).map_err(anyhow::Error::msg)?;
    let config = Config::defaults(local.data_dir.clone());
    let store = agora_store::Store::open(
        &local.existing()?.url(),
        Default::default(),
        config.store_options(),
    )
    .await?;
    let value = agora_store::keys::generate_value();
    let key = store
        .create_key(
            name,
            &parsed,
            &value,
            &agora_store::audit::Actor::operator(),
        )
        .await?;
    store.close().await;
    println!("{value}");
    eprintln!(
        "created {} with abilities {}; the key is shown only this once",
        key.id,
        abilities.join(",")
    );
    Ok(())
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

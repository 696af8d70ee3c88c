//! The `cometa` binary: flags, logging, bind, serve, shut down.

use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use cometa::changes::Changes;
use cometa::chat::Chat;
use cometa::config::{Cli, Command};
use cometa::routes::App;
use cometa::server::{self, Listener};
use cometa::store::{self, Store};
use cometa::watcher::ForeignWrites;

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();

    if let Some(Command::Migrate) = cli.command {
        return match store::migrate(&cli.db) {
            Ok(()) => {
                println!("migrated {}", cli.db.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("cometa: migrate {}: {e}", cli.db.display());
                ExitCode::FAILURE
            }
        };
    }
    let config = match cli.serve.config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("cometa: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match cli.serve.threads {
        1 => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
        n => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(n.into())
            .enable_all()
            .build(),
    };
    let runtime = match runtime {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cometa: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let changes = Arc::new(Changes::default());
        let store = match Store::open(&cli.db, cli.serve.durability, changes.clone()) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("cometa: database {}: {e}", cli.db.display());
                return ExitCode::FAILURE;
            }
        };
        let foreign = match ForeignWrites::start(
            &cli.db,
            cli.serve.watch,
            Duration::from_secs_f64(cli.serve.fallback_poll),
            changes.clone(),
        ) {
            Ok(w) => w,
            Err(e) => {
                eprintln!("cometa: watching {}: {e}", cli.db.display());
                return ExitCode::FAILURE;
            }
        };
        let listener = match Listener::bind(&cli.serve.listen).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("cometa: cannot listen on {}: {e}", cli.serve.listen);
                return ExitCode::FAILURE;
            }
        };
        let shutdown = CancellationToken::new();
        let app = Arc::new(App {
            chat: Chat::new(store.clone(), changes, config.hold, shutdown.clone()),
            connections: Arc::new(Semaphore::new(config.max_connections)),
            config,
        });
        tracing::info!(db = %cli.db.display(), hold = ?app.config.hold, "serving");
        // Tests and scripts wait for this line to learn the bound port.
        println!("cometa listening on {}", listener.describe());
        let _ = std::io::stdout().flush();

        tokio::spawn(signals(shutdown.clone()));
        server::run(listener, app, shutdown).await;
        drop(foreign);
        // Every sender has been answered or dropped: let the writer finish its queue.
        let _ = tokio::task::spawn_blocking(move || store.close()).await;
        tracing::info!("stopped");
        ExitCode::SUCCESS
    })
}

/// Cancels `shutdown` on SIGTERM or SIGINT.
async fn signals(shutdown: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers");
        return;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM"),
        _ = int.recv() => tracing::info!("SIGINT"),
    }
    shutdown.cancel();
}

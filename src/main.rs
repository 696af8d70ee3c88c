//! The `cometa` binary: flags, logging, bind, serve, shut down.

use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use cometa::changes::Changes;
use cometa::config::{Cli, Command};
use cometa::engine::Engine;
use cometa::limits::{self, Limits};
use cometa::profile::{Profile, ProfileError};
use cometa::routes::App;
use cometa::server::{self, Listener};
use cometa::store::{self, Checker, Schema, Store, WriterSetup};
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

    let db = cli.db();
    let tz = match jiff::tz::TimeZone::get(&cli.serve.timezone) {
        Ok(tz) => tz,
        Err(e) => {
            eprintln!("cometa: --timezone {:?}: {e}", cli.serve.timezone);
            return ExitCode::from(2);
        }
    };
    let profile = match load_profile(
        &cli.profile,
        &tz,
        cli.db
            .as_deref()
            .filter(|_| matches!(cli.command, Some(Command::Check))),
    ) {
        Ok(p) => Arc::new(p),
        Err(e) => {
            eprintln!("cometa: invalid profile: {e}");
            return ExitCode::FAILURE;
        }
    };
    match cli.command {
        Some(Command::Check) => {
            // `cometa check | head` must not panic on a closed pipe.
            let mut out = std::io::stdout().lock();
            let _ = write!(out, "{}", profile.describe()).and_then(|()| writeln!(out, "ok"));
            return ExitCode::SUCCESS;
        }
        Some(Command::Migrate) => {
            return match store::migrate(&db, schema(&profile)) {
                Ok(()) => {
                    println!("migrated {} for profile {}", db.display(), profile.name);
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("cometa: migrate {}: {e}", db.display());
                    ExitCode::FAILURE
                }
            };
        }
        None => {}
    }
    let mut config = match cli.serve.config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("cometa: {e}");
            return ExitCode::from(2);
        }
    };
    let (fits, why) = limits::fit_descriptors(config.max_connections);
    if let Some(why) = why {
        tracing::warn!("{why}");
    }
    config.max_connections = fits;
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
        store::set_busy_timeout(Duration::from_secs_f64(cli.serve.busy_timeout));
        let changes = Arc::new(Changes::default());
        if let Err(e) = store::migrate(&db, schema(&profile)) {
            eprintln!("cometa: database {}: {e}", db.display());
            return ExitCode::FAILURE;
        }
        let foreign = match ForeignWrites::start(
            &db,
            cli.serve.watch,
            Duration::from_secs_f64(cli.serve.fallback_poll),
            changes.clone(),
        ) {
            Ok(w) => w,
            Err(e) => {
                eprintln!("cometa: watching {}: {e}", db.display());
                return ExitCode::FAILURE;
            }
        };
        let poke = foreign.poke();
        let setup = WriterSetup {
            app_schema: profile.schema.clone(),
            extra_sql: profile.extra_sql.clone(),
            topics: profile.topics.clone(),
            maintenance: profile.maintenance.clone(),
            retention: retention(&profile, &cli.serve),
            on_commit: Box::new(move || poke.poke()),
        };
        let store = match Store::open(&db, cli.serve.durability, setup) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("cometa: database {}: {e}", db.display());
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
        foreign.guard(store.clone());
        let shutdown = CancellationToken::new();
        let interrupt = shutdown.clone();
        tokio::spawn(async move {
            // Writes waiting for another process's lock give up: 503, not a stuck exit.
            interrupt.cancelled().await;
            store::interrupt_waits();
        });
        let app = Arc::new(App {
            engine: Engine::new(profile.clone(), store.clone(), changes, config.hold, shutdown.clone()),
            connections: Arc::new(Semaphore::new(config.max_connections)),
            limits: Limits::new(config.limits.clone()),
            config,
        });
        tracing::info!(db = %db.display(), profile = %profile.name, hold = ?app.config.hold, "serving");
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

/// The retention rules the flags ask for, from the profile's statements.
fn retention(p: &Profile, flags: &cometa::config::ServeArgs) -> Vec<store::Retention> {
    let mut rules = Vec::new();
    if flags.retain_days > 0.0 {
        match &p.retention_by_age {
            Some((sql, _)) => rules.push(store::Retention {
                sql: sql.clone(),
                max_age: Some(Duration::from_secs_f64(flags.retain_days * 86_400.0)),
                keep: None,
            }),
            None => {
                tracing::warn!(profile = %p.name, "--retain-days is ignored: the profile has no [retention] by_age")
            }
        }
    }
    if flags.retain_per_room > 0 {
        match &p.retention_by_count {
            Some((sql, _)) => rules.push(store::Retention {
                sql: sql.clone(),
                max_age: None,
                keep: Some(flags.retain_per_room),
            }),
            None => {
                tracing::warn!(profile = %p.name, "--retain-per-room is ignored: the profile has no [retention] by_count")
            }
        }
    }
    rules
}

/// What the database needs for `p`.
fn schema(p: &Profile) -> Schema<'_> {
    Schema {
        app: &p.schema,
        extra: &p.extra_sql,
        topics: &p.topics,
    }
}

/// Loads and checks a profile: its statements must prepare against its own
/// schema (in memory), and against `db` when given (the real database).
fn load_profile(
    name: &str,
    tz: &jiff::tz::TimeZone,
    db: Option<&std::path::Path>,
) -> Result<Profile, ProfileError> {
    let mut profile = Profile::load(name, tz)?;
    let origin = profile.origin.clone();
    let fail = |message: String| ProfileError {
        file: origin.clone(),
        line: None,
        key: "profile.schema".into(),
        message,
    };
    let checker = Checker::memory(schema(&profile)).map_err(|e| {
        fail(format!(
            "the schema, extra_sql or a topic's key does not apply: {e}"
        ))
    })?;
    profile.check_sql(|sql| checker.prepare(sql))?;
    if let Some(db) = db {
        let real = Checker::open(db).map_err(|e| fail(format!("--db {}: {e}", db.display())))?;
        profile.check_sql(|sql| {
            real.prepare(sql)
                .map_err(|e| format!("against {}: {e}", db.display()))
        })?;
    }
    Ok(profile)
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

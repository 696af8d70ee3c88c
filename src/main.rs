//! The `cometa` binary: configuration, logging, bind, serve, signals, shut down.

use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use cometa::admin::{self, Admin};
use cometa::changes::Changes;
use cometa::config::{self, Cli, Command};
use cometa::engine::Engine;
use cometa::health::Readiness;
use cometa::limits::{self, Limits};
use cometa::logging::{self, Logging};
use cometa::profile::{Profile, ProfileError};
use cometa::routes::App;
use cometa::server::{self, Listener};
use cometa::store::{self, Checker, Schema, Store, WriterSetup};
use cometa::watcher::ForeignWrites;

fn main() -> ExitCode {
    let cli = config::parse();
    let filter = logging::initial_filter(cli.serve.log_level.as_deref());
    let logging = match logging::init(cli.serve.log_format, &filter) {
        Ok(l) => Arc::new(l),
        Err(e) => {
            eprintln!("cometa: {e}");
            return ExitCode::from(2);
        }
    };
    let code = run(cli, &logging);
    // The last lines reach stderr when the logger is dropped.
    drop(logging);
    code
}

fn run(cli: Cli, logging: &Arc<Logging>) -> ExitCode {
    let db = cli.db();
    let tz = match jiff::tz::TimeZone::get(&cli.serve.timezone) {
        Ok(tz) => tz,
        Err(e) => {
            tracing::error!("--timezone {:?}: {e}", cli.serve.timezone);
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
            tracing::error!("invalid profile: {e}");
            return ExitCode::FAILURE;
        }
    };
    match cli.command {
        Some(Command::Check) => check(&cli, &profile),
        Some(Command::Migrate) => match store::migrate(&db, schema(&profile)) {
            Ok(()) => {
                println!("migrated {} for profile {}", db.display(), profile.name);
                ExitCode::SUCCESS
            }
            Err(e) => {
                tracing::error!(db = %db.display(), error = %e, "migrate failed");
                ExitCode::FAILURE
            }
        },
        None => serve(cli, profile, Arc::clone(logging)),
    }
}

/// `cometa check`: the profile's routes and the configuration's report on stdout.
fn check(cli: &Cli, profile: &Profile) -> ExitCode {
    let report = config::check(cli);
    // `cometa check | head` must not panic on a closed pipe.
    let mut out = std::io::stdout().lock();
    let _ = write!(out, "{}", profile.describe());
    for w in &report.warnings {
        let _ = writeln!(out, "warning: {w}");
    }
    for e in &report.errors {
        let _ = writeln!(out, "error: {e}");
    }
    if report.ok() {
        let _ = writeln!(out, "ok");
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn serve(cli: Cli, profile: Arc<Profile>, logging: Arc<Logging>) -> ExitCode {
    let report = config::check(&cli);
    for w in &report.warnings {
        tracing::warn!("{w}");
    }
    if !report.ok() {
        for e in &report.errors {
            tracing::error!("{e}");
        }
        tracing::error!("not starting: fix the configuration (`cometa check` tells the same)");
        return ExitCode::from(2);
    }
    let db = cli.db();
    let mut config = match cli.serve.config() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("{e}");
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
            tracing::error!(error = %e, "cannot start the runtime");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        store::set_busy_timeout(Duration::from_secs_f64(cli.serve.busy_timeout));
        let prometheus = match cometa::metrics::install() {
            Ok(h) => {
                // Histograms keep their samples until they are folded into
                // buckets: without a scrape, at every request's pace, forever.
                let h2 = h.clone();
                tokio::spawn(async move {
                    let mut every = tokio::time::interval(cometa::metrics::UPKEEP_EVERY);
                    loop {
                        every.tick().await;
                        h2.run_upkeep();
                    }
                });
                Some(h)
            }
            Err(e) => {
                tracing::warn!("{e}; /metrics stays empty");
                None
            }
        };
        // Bind before anything else: an address in use costs no migration and
        // no thread, and the socket queues connections while the rest starts.
        let listener = match cometa::listener::public(&cli.serve.listen).await {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(listen = %cli.serve.listen, error = %e, "cannot listen");
                return ExitCode::FAILURE;
            }
        };
        let admin_listener = match &cli.serve.admin_listen {
            None => None,
            Some(addr) => match Listener::bind(addr).await {
                Ok(l) => Some(l),
                Err(e) => {
                    tracing::error!(admin_listen = %addr, error = %e, "cannot listen");
                    return ExitCode::FAILURE;
                }
            },
        };
        let changes = Arc::new(Changes::default());
        if let Err(e) = store::migrate(&db, schema(&profile)) {
            tracing::error!(db = %db.display(), error = %e, "cannot migrate the database");
            return ExitCode::FAILURE;
        }
        let foreign = match ForeignWrites::start(
            &db,
            cli.serve.watch,
            Duration::from_secs_f64(cli.serve.fallback_poll),
            changes.clone(),
        ) {
            Ok(w) => Arc::new(w),
            Err(e) => {
                tracing::error!(db = %db.display(), error = %e, "cannot watch the database");
                return ExitCode::FAILURE;
            }
        };
        let setup = WriterSetup {
            app_schema: profile.schema.clone(),
            extra_sql: profile.extra_sql.clone(),
            topics: profile.topics.clone(),
            maintenance: profile.maintenance.clone(),
            retention: retention(&profile, &cli.serve),
            changes: changes.clone(),
        };
        let store = match Store::open(&db, cli.serve.durability, setup) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(db = %db.display(), error = %e, "cannot open the database");
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
            engine: Engine::new(
                profile.clone(),
                store.clone(),
                changes,
                config.hold,
                shutdown.clone(),
            ),
            connections: Arc::new(Semaphore::new(config.max_connections)),
            limits: Limits::new(config.limits.clone()),
            config,
        });
        tracing::info!(
            db = %db.display(),
            profile = %profile.name,
            hold = ?app.config.hold,
            version = cometa::metrics::VERSION,
            commit = cometa::metrics::COMMIT,
            "serving"
        );
        // Tests and scripts wait for these lines to learn the bound ports.
        println!("cometa listening on {}", listener.describe());
        let admin_task = admin_listener.map(|l| {
            println!("cometa admin on {}", l.describe());
            let checks: Vec<Arc<dyn Readiness>> = vec![
                Arc::new(store.clone()) as Arc<dyn Readiness>,
                foreign.clone(),
            ];
            let admin = Arc::new(Admin {
                prometheus: prometheus.unwrap_or_else(|| {
                    metrics_exporter_prometheus::PrometheusBuilder::new()
                        .build_recorder()
                        .handle()
                }),
                app: app.clone(),
                checks,
                dropped_log_lines: Some(logging.dropped_counter()),
            });
            tokio::spawn(admin::run(l, admin, shutdown.clone()))
        });
        let _ = std::io::stdout().flush();
        notify_systemd(&[
            sd_notify::NotifyState::Ready,
            sd_notify::NotifyState::Status("serving"),
        ]);

        tokio::spawn(signals(shutdown.clone(), logging, cli, app.clone()));
        server::run(listener, app, shutdown).await;
        if let Some(t) = admin_task {
            let _ = t.await;
        }
        drop(foreign);
        // Every sender has been answered or dropped: let the writer finish its queue.
        let _ = tokio::task::spawn_blocking(move || store.close()).await;
        tracing::info!("stopped");
        ExitCode::SUCCESS
    })
}

/// Tells systemd (`Type=notify`) where we are; nothing without `NOTIFY_SOCKET`.
fn notify_systemd(states: &[sd_notify::NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::warn!(error = %e, "cannot notify systemd");
    }
}

/// SIGTERM or SIGINT cancel `shutdown`; SIGHUP reloads what can change
/// without dropping a waiter, and never stops the server.
async fn signals(shutdown: CancellationToken, logging: Arc<Logging>, running: Cli, app: Arc<App>) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int), Ok(mut hup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    ) else {
        tracing::error!("cannot install signal handlers");
        return;
    };
    loop {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM"),
            _ = int.recv() => tracing::info!("SIGINT"),
            _ = hup.recv() => {
                reload(&logging, &running, &app).await;
                continue;
            }
        }
        break;
    }
    notify_systemd(&[
        sd_notify::NotifyState::Stopping,
        sd_notify::NotifyState::Status("stopping"),
    ]);
    shutdown.cancel();
}

/// SIGHUP: reads the configuration again (the `--config` file; flags and the
/// environment are those of the start) and applies what can change while
/// serving: the log filter and the profile (read again from its file, checked
/// against the database, then swapped in; requests in flight keep the old
/// one). Logs go to stderr (journald or the supervisor's file), so there is no
/// file to reopen.
async fn reload(logging: &Logging, running: &Cli, app: &App) {
    let new = match config::parse_from(std::env::args_os()) {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(
                error = %e.to_string().trim(),
                "SIGHUP: configuration not reloaded; still serving with the previous one"
            );
            return;
        }
    };
    let filter = logging::initial_filter(new.serve.log_level.as_deref());
    match logging.set_filter(&filter) {
        Ok(()) => tracing::info!(%filter, "SIGHUP: log filter reloaded"),
        Err(e) => tracing::warn!(error = %e, "SIGHUP: log filter not changed"),
    }
    reload_profile(&new, app).await;
    // Hook: limits that can change without dropping a waiter are applied
    // here once they can be swapped; every other setting takes effect at the
    // next (socket-activated, gap-free) restart.
    let mut unchanged = new.serve;
    unchanged.log_level.clone_from(&running.serve.log_level);
    if format!("{unchanged:?}") != format!("{:?}", running.serve) || new.db != running.db {
        tracing::warn!(
            "SIGHUP: settings other than the log filter and the profile changed; they take effect at the next restart"
        );
    }
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

/// Loads the profile `new` names (its file may have changed), prepares its
/// tables and change-log triggers (as at start-up), checks its statements
/// against the database, and serves it; on any error keeps the running one.
async fn reload_profile(new: &Cli, app: &App) {
    let (name, db, tz) = (new.profile.clone(), new.db(), new.serve.timezone.clone());
    let loaded = tokio::task::spawn_blocking(move || {
        let tz = jiff::tz::TimeZone::get(&tz).map_err(|e| format!("--timezone {tz:?}: {e}"))?;
        let profile = load_profile(&name, &tz, None).map_err(|e| e.to_string())?;
        store::migrate(&db, schema(&profile)).map_err(|e| e.to_string())?;
        load_profile(&name, &tz, Some(&db)).map_err(|e| e.to_string())
    })
    .await;
    match loaded {
        Ok(Ok(profile)) => {
            tracing::info!(profile = %profile.name, origin = %profile.origin, "SIGHUP: profile reloaded");
            app.engine.reload(Arc::new(profile));
        }
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "SIGHUP: profile not reloaded; still serving the previous one")
        }
        Err(e) => tracing::warn!(error = %e, "SIGHUP: profile not reloaded"),
    }
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

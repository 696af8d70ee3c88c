//! What `/readyz` asks: each part that must work for cometa to serve says
//! whether it does. The store and the watcher implement [`Readiness`]; a part
//! that the profile engine adds (or replaces) implements it too and is added
//! to the list in `main.rs`.

use std::sync::Arc;
use std::time::Duration;

use crate::store::Store;
use crate::watcher::ForeignWrites;

/// How long `/readyz` waits for the database's write lock.
const LOCK_WAIT: Duration = Duration::from_secs(1);

/// A part of the server that can tell whether it works.
pub trait Readiness: Send + Sync {
    /// The part's name in `/readyz`'s answer.
    fn name(&self) -> &'static str;
    /// `Ok` when it works; the error says why not. May block (it runs on a
    /// blocking thread) but should answer within a second or two.
    fn check(&self) -> Result<(), String>;
}

impl Readiness for Store {
    fn name(&self) -> &'static str {
        "store"
    }

    /// The writer thread runs and a write transaction can begin now.
    fn check(&self) -> Result<(), String> {
        if !self.writer_alive() {
            return Err("the writer thread stopped".into());
        }
        crate::store::check_writable(self.path(), LOCK_WAIT)
            .map_err(|e| format!("{} is not writable now: {e}", self.path().display()))
    }
}

impl Readiness for ForeignWrites {
    fn name(&self) -> &'static str {
        "watcher"
    }

    fn check(&self) -> Result<(), String> {
        if self.alive() {
            Ok(())
        } else {
            Err("the watcher thread stopped".into())
        }
    }
}

/// Runs every check on blocking threads, bounded by `within` in all; the
/// failures, as `name: why`.
pub async fn failures(checks: &[Arc<dyn Readiness>], within: Duration) -> Vec<String> {
    let runs = checks.iter().map(|c| {
        let c = Arc::clone(c);
        async move {
            let name = c.name();
            match tokio::time::timeout(within, tokio::task::spawn_blocking(move || c.check())).await
            {
                Ok(Ok(Ok(()))) => None,
                Ok(Ok(Err(why))) => Some(format!("{name}: {why}")),
                Ok(Err(_)) => Some(format!("{name}: the check panicked")),
                Err(_) => Some(format!("{name}: no answer within {within:?}")),
            }
        }
    });
    let mut out = Vec::new();
    for run in runs {
        out.extend(run.await);
    }
    out
}

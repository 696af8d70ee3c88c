//! One request through a profile's route, top to bottom: parameters (PHP's
//! sources and casts) → detached writes (presence marks, never waited for) →
//! the route's statements on the store (a reader, or the writer's transaction
//! when they write) → while the hold's condition is true, wait on the declared
//! wake keys and run them again → the first answer case that applies,
//! rendered. Reads of many waiters asking the same question run, and render,
//! once ([`Store::read_shared`]).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use bytes::Bytes;
use futures_util::FutureExt;
use hyper::header::HeaderValue;
use hyper::{HeaderMap, Method, StatusCode, header};
use tokio_util::sync::CancellationToken;

use crate::changes::{self, Changes};
use crate::error::StoreError;
use crate::php::{self, Param};
use crate::profile::templates::Scope;
use crate::profile::{self, ErrorKind, Kind, Profile, Route, Source, Value};
use crate::store::{Bound, Rows, Script, Store, now_ms};

/// The longest a request waits for its detached statements to commit.
const DETACHED_WAIT: Duration = Duration::from_millis(50);

/// A finished answer; shared (`Arc`) among the waiters it is rendered for.
#[derive(Debug)]
pub struct Reply {
    /// HTTP status.
    pub status: StatusCode,
    /// Headers (`Content-Type` among them): the answer's, shared.
    pub headers: Arc<HeaderMap>,
    /// Body bytes.
    pub body: Bytes,
}

/// How a request ended, for the access log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Answered without waiting.
    Immediate,
    /// Held, then answered by a change.
    Answered,
    /// Held until the hold time ran out.
    Empty,
    /// Held until the server shut down.
    Shutdown,
    /// Refused (parameters, method, body, store).
    Refused,
}

/// What one pass of a route's statements decided.
struct Pass {
    /// Keep waiting.
    hold: bool,
    /// The answer now (or, when holding, the answer if the hold ends).
    reply: Arc<Reply>,
}

/// The request as the engine needs it.
pub struct Input<'a> {
    /// Method.
    pub method: &'a Method,
    /// `$_GET` and `$_POST`.
    pub params: &'a php::Request,
    /// `$_COOKIE`.
    pub cookies: &'a php::Request,
}

/// The profile being served; replaced whole on reload (SIGHUP), while each
/// request keeps the one it started with.
pub struct Engine {
    current: RwLock<Arc<Served>>,
}

impl Engine {
    /// Serves `profile` over `store`; held requests wait on `changes`, end
    /// after `hold`, or at once when `shutdown` is cancelled.
    pub fn new(
        profile: Arc<Profile>,
        store: Store,
        changes: Arc<Changes>,
        hold: Duration,
        shutdown: CancellationToken,
    ) -> Engine {
        Engine {
            current: RwLock::new(Arc::new(Served::new(
                profile,
                store,
                changes,
                hold,
                shutdown,
                Arc::default(),
            ))),
        }
    }

    /// The profile served now, with everything a request needs.
    pub fn current(&self) -> Arc<Served> {
        self.current.read().expect("engine lock").clone()
    }

    /// Serves `profile` from now on (already checked and migrated); requests
    /// under way, held ones included, finish with the profile they began with.
    pub fn reload(&self, profile: Arc<Profile>) {
        let old = self.current();
        let next = Served::new(
            profile,
            old.store.clone(),
            old.changes.clone(),
            old.hold,
            old.shutdown.clone(),
            old.throttled.clone(),
        );
        *self.current.write().expect("engine lock") = Arc::new(next);
    }

    /// The wake-up signal.
    pub fn changes(&self) -> Arc<Changes> {
        self.current().changes.clone()
    }
}

/// A profile, served.
pub struct Served {
    profile: Arc<Profile>,
    store: Store,
    changes: Arc<Changes>,
    hold: Duration,
    shutdown: CancellationToken,
    /// Per route, the parameters its reads and answers depend on (the rest,
    /// like the `user` of a presence mark, do not change the answer).
    question: Vec<Vec<usize>>,
    throttled: Arc<Mutex<Throttle>>,
}

/// When detached statements with a `throttle` last ran, by statement and values.
#[derive(Default)]
struct Throttle {
    ran: HashMap<String, i64>,
    prune_at: usize,
}

impl Throttle {
    /// Whether `key` may run at `now_ms`; if so, it counts as run.
    fn claim(&mut self, key: &str, now_ms: i64, every_ms: i64) -> bool {
        if self
            .ran
            .get(key)
            .is_some_and(|&t| now_ms - t < every_ms && now_ms >= t)
        {
            return false;
        }
        self.ran.insert(key.to_owned(), now_ms);
        if self.ran.len() >= self.prune_at {
            self.ran.retain(|_, t| now_ms - *t < 86_400_000);
            self.prune_at = (2 * self.ran.len()).max(1024);
        }
        true
    }
}

impl Served {
    fn new(
        profile: Arc<Profile>,
        store: Store,
        changes: Arc<Changes>,
        hold: Duration,
        shutdown: CancellationToken,
        throttled: Arc<Mutex<Throttle>>,
    ) -> Served {
        let question = profile
            .routes
            .iter()
            .map(|r| question_params(&profile, r))
            .collect();
        Served {
            profile,
            store,
            changes,
            hold,
            shutdown,
            question,
            throttled,
        }
    }

    /// The profile served.
    pub fn profile(&self) -> &Arc<Profile> {
        &self.profile
    }

    /// The wake-up signal.
    pub fn changes(&self) -> &Changes {
        &self.changes
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The methods any route at `path` takes (`None`: any), for a 405 decided
    /// before the body is read.
    pub fn allows(&self, path: &str, method: &Method) -> Result<(), Arc<Reply>> {
        let mut allow: Vec<&str> = Vec::new();
        for r in self.profile.routes.iter().filter(|r| r.path == path) {
            if r.methods.is_empty() || r.methods.contains(method) {
                return Ok(());
            }
            for m in &r.methods {
                if !allow.contains(&m.as_str()) {
                    allow.push(m.as_str());
                }
            }
        }
        Err(self.error(ErrorKind::MethodNotAllowed, "", &allow.join(", ")))
    }

    /// The answer to an engine-level error, as the profile words it.
    pub fn error(&self, kind: ErrorKind, reason: &str, allow: &str) -> Arc<Reply> {
        let p = &self.profile;
        let answer = &p.answers[p.errors[&kind]];
        let mut scope = Scope::default();
        let reason = if reason.is_empty() {
            kind.reason()
        } else {
            reason
        };
        scope.set("error", Value::Text(reason.to_owned()));
        scope.set("allow", Value::Text(allow.to_owned()));
        let now = now_ms();
        scope.set("now_ms", Value::Int(now));
        scope.set("now", Value::Int(now.div_euclid(1000)));
        let body = match &answer.fixed {
            Some(b) => b.clone(),
            None => p.render(&answer.template, &scope).unwrap_or_else(|e| {
                tracing::error!(error = %e, "the profile's error answer failed to render");
                String::new()
            }),
        };
        let mut reply = build(answer, body);
        if reply.status == StatusCode::METHOD_NOT_ALLOWED
            && !reply.headers.contains_key(header::ALLOW)
            && let Ok(v) = HeaderValue::from_str(allow)
        {
            Arc::make_mut(&mut reply.headers).insert(header::ALLOW, v);
        }
        if reply.status == StatusCode::SERVICE_UNAVAILABLE
            && kind == ErrorKind::Unavailable
            && !reply.headers.contains_key(header::RETRY_AFTER)
        {
            Arc::make_mut(&mut reply.headers)
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        Arc::new(reply)
    }

    /// The route at `path` whose `match` agrees with the request.
    pub fn route(&self, path: &str, input: &Input<'_>) -> Option<usize> {
        self.profile.route(path, |name, from| {
            let raw = match from {
                Source::Get => input.params.from_query(name),
                Source::Post => input.params.from_body(name),
                Source::Request => input.params.get(name),
                Source::Cookie => input.cookies.from_query(name),
            };
            match raw {
                Param::Text(s) => Some(s.as_str()),
                _ => None,
            }
        })
    }

    /// Answers one request on route `ri`.
    pub async fn answer(&self, ri: usize, input: &Input<'_>) -> (Arc<Reply>, Outcome) {
        let route = &self.profile.routes[ri];
        if !(route.methods.is_empty() || route.methods.contains(input.method)) {
            return (
                self.error(ErrorKind::MethodNotAllowed, "", &route.allow),
                Outcome::Refused,
            );
        }
        let mut scope = match read_params(&self.profile, route, input) {
            Ok(s) => s,
            Err(reason) => {
                return (
                    self.error(ErrorKind::BadRequest, &reason, &route.allow),
                    Outcome::Refused,
                );
            }
        };
        let now = now_ms();
        // Names no parameter has (the profile refuses them).
        scope.push_new("now_ms", Value::Int(now));
        scope.push_new("now", Value::Int(now.div_euclid(1000)));
        scope.push_new("timed_out", Value::Int(0));
        scope.push_new("insert_id", Value::Null);
        if let Some(committed) = self.detached(ri, &scope, now) {
            // Normally committed within a few ms, and then visible to the
            // client's next request as PHP's mark was; but never waited for
            // longer (another process may hold the write lock for seconds).
            if let Ok(Ok(Err(e))) = tokio::time::timeout(DETACHED_WAIT, committed).await {
                tracing::warn!(error = %e, "a detached statement failed");
            }
        }
        match self.run(ri, scope).await {
            Ok((reply, outcome)) => (reply, outcome),
            Err(e) => {
                let kind = if e.is_busy() || matches!(e, StoreError::Replaced) {
                    ErrorKind::Unavailable
                } else {
                    ErrorKind::Internal
                };
                tracing::error!(error = %e, path = %route.path, "request failed");
                (self.error(kind, "", &route.allow), Outcome::Refused)
            }
        }
    }

    /// Queues the route's detached statements (first pass only), throttled.
    fn detached(
        &self,
        ri: usize,
        scope: &Scope,
        now: i64,
    ) -> Option<tokio::sync::oneshot::Receiver<Result<crate::store::Boxed, StoreError>>> {
        let route = &self.profile.routes[ri];
        let mut picked = Vec::new();
        for (i, s) in route.sql.iter().enumerate().filter(|(_, s)| s.detached) {
            if let Some(w) = &s.when {
                match self.profile.truthy(w, scope) {
                    Ok(true) => {}
                    Ok(false) => continue,
                    Err(e) => {
                        tracing::error!(error = %e, "a detached statement's condition failed");
                        continue;
                    }
                }
            }
            if let Some(every) = s.throttle {
                // Keyed by what the statement writes, not by when: the clock's
                // binds would make every run new.
                let mut key = format!("{ri}/{i}");
                for b in s
                    .binds
                    .iter()
                    .filter(|b| !matches!(b.as_str(), "now" | "now_ms"))
                {
                    key.push('\0');
                    match bind(scope, None, b) {
                        Bound::Null => {}
                        Bound::Int(x) => {
                            let _ = write!(key, "{x}");
                        }
                        Bound::Real(x) => {
                            let _ = write!(key, "{x}");
                        }
                        Bound::Text(t) => key.push_str(t),
                    }
                }
                let every = i64::try_from(every.as_millis()).unwrap_or(i64::MAX);
                if !self
                    .throttled
                    .lock()
                    .expect("throttle lock")
                    .claim(&key, now, every)
                {
                    continue;
                }
            }
            picked.push(i);
        }
        if picked.is_empty() {
            return None;
        }
        let script = RouteScript {
            profile: self.profile.clone(),
            route: ri,
            scope: scope.clone(),
            only: Some(picked),
            insert_id: None,
        };
        // From the same start at every run (the writer may run a job twice).
        self.store
            .write_detached(move |r| r.run(&mut script.clone()))
    }

    /// Runs the route, holding while its condition says so.
    async fn run(&self, ri: usize, scope: Scope) -> Result<(Arc<Reply>, Outcome), StoreError> {
        let route = &self.profile.routes[ri];
        let Some(hold) = &route.hold else {
            // Boxed, as the passes below: a held request's future keeps no room for it.
            let pass = Box::pin(self.pass(ri, &scope, None)).await?;
            return Ok((pass.reply, Outcome::Immediate));
        };
        let deadline = tokio::time::Instant::now() + self.hold;
        // Subscribe before the first pass: a commit landing in between still wakes us.
        let mut subs = Vec::with_capacity(hold.wake.len());
        for (i, w) in hold.wake.iter().enumerate() {
            let value = self
                .profile
                .render(&w.key, &scope)
                .map_err(StoreError::Profile)?;
            let key = changes::key(&self.profile.topics[w.topic].name, &value);
            // One held request counts once, whatever the number of keys it waits on.
            subs.push(if i == 0 {
                self.changes.subscribe(key)
            } else {
                self.changes.subscribe_uncounted(key)
            });
        }
        let question = (!route.writes && subs.len() == 1).then(|| self.question_key(ri, &scope));
        let mut quiet = question.as_deref().is_some_and(|q| subs[0].known_quiet(q));
        let mut last: Option<Arc<Reply>> = None;
        let mut woken = false;
        let mut woken_at = std::time::Instant::now();
        loop {
            if !quiet {
                // A read of the same question already queued (a wave of
                // arrivals, or of waiters woken together) is joined; else a
                // pass of our own. Both boxed: while the request waits, its
                // future keeps no room for them.
                let wait = question
                    .as_deref()
                    .and_then(|q| self.store.join_shared::<Pass>(q))
                    .map(Box::pin);
                let joined = match wait {
                    Some(wait) => wait.await.map(|p| Pass {
                        hold: p.hold,
                        reply: p.reply.clone(),
                    }),
                    None => None,
                };
                let pass = match joined {
                    Some(pass) => pass,
                    None => Box::pin(self.pass(ri, &scope, question.as_deref())).await?,
                };
                if !pass.hold {
                    let outcome = if woken {
                        crate::metrics::record_wake_latency(woken_at);
                        Outcome::Answered
                    } else {
                        Outcome::Immediate
                    };
                    return Ok((pass.reply, outcome));
                }
                if let Some(q) = &question {
                    subs[0].found_quiet(q);
                }
                last = Some(pass.reply);
            }
            // One key (the usual case) is awaited in place; several, boxed.
            let wake = async {
                match subs.as_mut_slice() {
                    [one] => {
                        one.changed().await;
                    }
                    many => {
                        futures_util::future::select_all(
                            many.iter_mut().map(|s| s.changed().boxed()),
                        )
                        .await;
                    }
                }
            };
            let ended = tokio::select! {
                () = wake => None,
                () = tokio::time::sleep_until(deadline) => Some(Outcome::Empty),
                () = self.shutdown.cancelled() => Some(Outcome::Shutdown),
            };
            if let Some(outcome) = ended {
                let reply = match last {
                    Some(r) => r,
                    // Spared the first pass by a quiet answer: run it now for the bytes.
                    None => {
                        Box::pin(self.pass(ri, &scope, question.as_deref()))
                            .await?
                            .reply
                    }
                };
                return Ok((reply, outcome));
            }
            quiet = false;
            woken = true;
            woken_at = std::time::Instant::now();
        }
    }

    /// The key of the question a read-only route asks: the route and the
    /// values of the parameters its reads and answer depend on.
    fn question_key(&self, ri: usize, scope: &Scope) -> String {
        let mut key = String::with_capacity(32);
        let _ = write!(key, "{ri}");
        for &p in &self.question[ri] {
            key.push('\0');
            match scope.var(&self.profile.params[p].name) {
                None | Some(Value::Null) => key.push('n'),
                Some(Value::Int(i)) => {
                    key.push('i');
                    let _ = write!(key, "{i}");
                }
                Some(Value::Real(r)) => {
                    key.push('r');
                    let _ = write!(key, "{r}");
                }
                Some(Value::Text(t)) => {
                    key.push('t');
                    key.push_str(t);
                }
            }
        }
        key
    }

    /// One pass of the route's statements, and what to answer.
    async fn pass(&self, ri: usize, scope: &Scope, key: Option<&str>) -> Result<Pass, StoreError> {
        let route = &self.profile.routes[ri];
        if route.writes {
            let start = RouteScript::new(self.profile.clone(), ri, scope.clone());
            // From the same start at every run (the writer may run a job twice).
            let scope = self
                .store
                .write(move |r| {
                    let mut script = start.clone();
                    r.run(&mut script)?;
                    Ok(script.into_scope())
                })
                .await?;
            return finish(&self.profile, ri, scope);
        }
        let reads = route.sql.iter().filter(|s| !s.detached).count();
        if reads == 0 {
            return finish(
                &self.profile,
                ri,
                RouteScript::new(self.profile.clone(), ri, scope.clone()).scope,
            );
        }
        let key = key.map_or_else(|| self.question_key(ri, scope), str::to_owned);
        // Built by the one caller that runs the read; those who join it only
        // paid for the key.
        let (profile, scope) = (self.profile.clone(), scope.clone());
        let work = move |r: &mut crate::store::Runner<'_, '_>| {
            let mut script = RouteScript::new(profile.clone(), ri, scope);
            if reads > 1 {
                // One snapshot for all of them.
                r.begin()?;
            }
            r.run(&mut script)?;
            finish(&profile, ri, script.into_scope())
        };
        let pass = self.store.read_shared(key, work).await?;
        Ok(Pass {
            hold: pass.hold,
            reply: pass.reply.clone(),
        })
    }
}

/// The result of a statement that did not run: no rows.
static NO_ROWS: std::sync::LazyLock<Arc<Rows>> =
    std::sync::LazyLock::new(|| Arc::new(Rows::default()));

/// After the statements: hold, or the first case that applies, rendered.
fn finish(profile: &Profile, ri: usize, mut scope: Scope) -> Result<Pass, StoreError> {
    let route = &profile.routes[ri];
    let hold = match &route.hold {
        Some(h) => profile
            .truthy(&h.while_, &scope)
            .map_err(StoreError::Profile)?,
        None => false,
    };
    if hold {
        scope.set("timed_out", Value::Int(1));
    }
    for case in &route.cases {
        if let Some(w) = &case.when
            && !profile.truthy(w, &scope).map_err(StoreError::Profile)?
        {
            continue;
        }
        let answer = &profile.answers[case.answer];
        let body = match &answer.fixed {
            Some(b) => b.clone(),
            None => profile
                .render(&answer.template, &scope)
                .map_err(StoreError::Profile)?,
        };
        return Ok(Pass {
            hold,
            reply: Arc::new(build(answer, body)),
        });
    }
    Err(StoreError::Profile(format!(
        "route {:?}: no answer case applies",
        route.path
    )))
}

fn build(answer: &profile::Answer, body: String) -> Reply {
    Reply {
        status: answer.status,
        headers: Arc::clone(&answer.header_map),
        body: Bytes::from(body),
    }
}

/// The parameters a route's reads and answers depend on.
fn question_params(profile: &Profile, route: &Route) -> Vec<usize> {
    let mut names: Vec<String> = route.answer_inputs.clone();
    let env = &profile.env;
    let mut vars_of = |t: &str| {
        if let Ok(t) = env.get_template(t) {
            names.extend(t.undeclared_variables(false));
        }
    };
    for s in route.sql.iter().filter(|s| !s.detached) {
        if let Some(w) = &s.when {
            vars_of(w);
        }
    }
    if let Some(h) = &route.hold {
        vars_of(&h.while_);
    }
    for s in route.sql.iter().filter(|s| !s.detached) {
        for b in &s.binds {
            names.push(b.split_once("__").map_or(b.as_str(), |(r, _)| r).to_owned());
        }
    }
    route
        .params
        .iter()
        .copied()
        .filter(|&p| names.iter().any(|n| *n == profile.params[p].name))
        .collect()
}

/// The value bound to `:name`: a parameter or built-in, or `result__column`
/// (the first row's column of an earlier result; NULL without rows).
fn bind<'a>(scope: &'a Scope, insert_id: Option<i64>, name: &str) -> Bound<'a> {
    if name == "insert_id"
        && let Some(id) = insert_id
    {
        return Bound::Int(id);
    }
    if let Some(v) = scope.var(name) {
        return Bound::from(v);
    }
    if let Some((res, col)) = name.split_once("__")
        && let Some(rows) = scope.result(res)
        && let Some(c) = rows.columns.iter().position(|c| c == col)
        && let Some(row) = rows.rows.first()
    {
        return Bound::from(&row[c]);
    }
    Bound::Null
}

/// A route's statements as the store runs them.
#[derive(Clone)]
struct RouteScript {
    profile: Arc<Profile>,
    route: usize,
    scope: Scope,
    /// Only these statements (the detached ones); `None`: all but those.
    only: Option<Vec<usize>>,
    /// The row id the last inserting statement inserted (set in the scope at the end).
    insert_id: Option<i64>,
}

impl RouteScript {
    /// The scope after the run, `insert_id` included.
    fn into_scope(mut self) -> Scope {
        if let Some(id) = self.insert_id {
            self.scope.set("insert_id", Value::Int(id));
        }
        self.scope
    }

    /// All of route `ri`'s statements (but the detached ones) over `scope`.
    fn new(profile: Arc<Profile>, ri: usize, mut scope: Scope) -> RouteScript {
        // A statement that does not run leaves its result empty, not undefined.
        for s in &profile.routes[ri].sql {
            if let Some(n) = &s.name {
                scope.set_result(n, NO_ROWS.clone());
            }
        }
        RouteScript {
            profile,
            route: ri,
            scope,
            only: None,
            insert_id: None,
        }
    }
}

impl Script for RouteScript {
    fn count(&self) -> usize {
        self.profile.routes[self.route].sql.len()
    }

    fn sql(&self, i: usize) -> &str {
        &self.profile.routes[self.route].sql[i].sql
    }

    fn runs(&mut self, i: usize) -> Result<bool, StoreError> {
        let s = &self.profile.routes[self.route].sql[i];
        match &self.only {
            Some(only) => return Ok(only.contains(&i)),
            None if s.detached => return Ok(false),
            None => {}
        }
        match &s.when {
            Some(w) => self
                .profile
                .truthy(w, &self.scope)
                .map_err(StoreError::Profile),
            None => Ok(true),
        }
    }

    fn bind(&self, _i: usize, name: &str) -> Bound<'_> {
        bind(&self.scope, self.insert_id, name)
    }

    fn record(&mut self, i: usize, rows: Rows, inserted: Option<i64>) {
        let s = &self.profile.routes[self.route].sql[i];
        if inserted.is_some() {
            self.insert_id = inserted;
        }
        if let Some(n) = &s.name {
            self.scope.set_result(n, Arc::new(rows));
        }
    }
}

/// Reads and checks the route's parameters, in its order; the first broken
/// rule gives the reason.
fn read_params(profile: &Profile, route: &Route, input: &Input<'_>) -> Result<Scope, String> {
    // The parameters and the four built-ins `answer` adds.
    let mut scope = Scope::with_capacity(route.params.len() + 4);
    for &pi in &route.params {
        let p = &profile.params[pi];
        let raw = match p.from {
            Source::Get => input.params.from_query(&p.name),
            Source::Post => input.params.from_body(&p.name),
            Source::Request => input.params.get(&p.name),
            Source::Cookie => input.cookies.from_query(&p.name),
        };
        let text = match raw {
            Param::Absent => None,
            // Without a reason to refuse it, an array or undecodable text reads
            // as absent (as a careful `is_string($v) ? $v : default` reads it).
            Param::Array => match &p.invalid {
                Some(reason) => return Err(reason.clone()),
                None => None,
            },
            // Without a reason to refuse it, text that is not UTF-8 reads with
            // U+FFFD for each bad byte: what a browser shows of PHP's raw bytes.
            Param::InvalidUtf8(lossy) => match &p.invalid {
                Some(reason) => return Err(reason.clone()),
                None => Some(lossy.as_str()),
            },
            Param::Text(s) => Some(s.as_str()),
        };
        // Borrowed until here: the one copy is the value the scope keeps.
        let text = text.map(|t| if p.trim { php::trim(t) } else { t });
        let text = text.filter(|t| !(p.empty_is_absent && t.is_empty()));
        let value = match text {
            None => {
                if route.required.contains(&pi) {
                    return Err(p
                        .missing
                        .clone()
                        .unwrap_or_else(|| format!("missing {}", p.name)));
                }
                p.default.clone().unwrap_or(Value::Null)
            }
            Some(t) => {
                if let Some(re) = &p.pattern
                    && !re.is_match(t)
                {
                    return Err(p.invalid.clone().unwrap_or_default());
                }
                let too_long = p.max_chars.is_some_and(|m| php::mb_strlen(t) > m)
                    || p.max_bytes.is_some_and(|m| t.len() > m);
                if too_long {
                    return Err(p.too_long.clone().unwrap_or_default());
                }
                match p.kind {
                    Kind::Text => Value::Text(t.to_owned()),
                    Kind::Int => {
                        let i = php::int_cast(t);
                        if p.one_of.as_ref().is_some_and(|set| !set.contains(&i)) {
                            return Err(p.invalid.clone().unwrap_or_default());
                        }
                        Value::Int(i)
                    }
                }
            }
        };
        // Each parameter once (a name listed twice reads the same value).
        scope.push_new(&p.name, value);
    }
    Ok(scope)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recent_run_is_not_repeated() {
        let mut t = Throttle::default();
        assert!(t.claim("a", 10_000, 1000));
        assert!(!t.claim("a", 10_999, 1000));
        assert!(t.claim("b", 10_999, 1000), "other values");
        assert!(t.claim("a", 11_000, 1000), "a second later");
        assert!(
            t.claim("a", 5_000, 1000),
            "a clock that went back does not suppress"
        );
    }
}

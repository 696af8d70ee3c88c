//! Profiles: a legacy chat's wire format as a file (`docs/profiles.md`).
//!
//! A profile names the app's routes (paths, methods, dispatch by parameter),
//! its parameters (PHP's sources and casts), the SQL each route runs on the
//! app's own tables, the answer for each case (a template with PHP filters),
//! the hold policy and what wakes a held request (topics: table changes that
//! cometa's triggers log). This module loads and checks the file; the
//! [`engine`](crate::engine) runs it.

mod spec;
pub mod templates;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};

use hyper::header::{HeaderName, HeaderValue};
use hyper::{HeaderMap, StatusCode};
use regex::Regex;
use toml::Spanned;

use spec::{AnswerSpec, CaseSpec, FileSpec, ParamSpec};
pub use spec::{Kind, Source};

/// Files beside a profile: name and contents.
type FileList = &'static [(&'static str, &'static str)];

/// Profiles shipped in the binary: name, file, and the files it refers to.
const BUILTIN: &[(&str, &str, FileList)] = &[
    (
        "classic",
        include_str!("../../profiles/classic.toml"),
        &[(
            "classic.schema.sql",
            include_str!("../../profiles/classic.schema.sql"),
        )],
    ),
    (
        "omegle",
        include_str!("../../profiles/omegle.toml"),
        &[(
            "omegle.schema.sql",
            include_str!("../../profiles/omegle.schema.sql"),
        )],
    ),
];

/// Names of the built-in profiles.
pub fn builtin_names() -> impl Iterator<Item = &'static str> {
    BUILTIN.iter().map(|(n, _, _)| *n)
}

/// A profile that cannot be used, with where and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileError {
    /// The file (a path, or `builtin:NAME/FILE`).
    pub file: String,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// The key, as a path (`route "/x.php" sql[2]`).
    pub key: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ProfileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(l) = self.line {
            write!(f, ":{l}")?;
        }
        if !self.key.is_empty() {
            write!(f, ": {}", self.key)?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ProfileError {}

/// One parameter, as the app's PHP read it.
#[derive(Debug)]
pub struct Param {
    /// Its name in the request.
    pub name: String,
    /// `$_GET`, `$_POST`, `$_REQUEST` or `$_COOKIE`.
    pub from: Source,
    /// Text or `(int)`.
    pub kind: Kind,
    /// PHP `trim()` first.
    pub trim: bool,
    /// An empty value counts as absent.
    pub empty_is_absent: bool,
    /// The value when absent.
    pub default: Option<Value>,
    /// Longest value in code points.
    pub max_chars: Option<usize>,
    /// Longest value in bytes.
    pub max_bytes: Option<usize>,
    /// The whole value must match.
    pub pattern: Option<Regex>,
    /// Allowed integers.
    pub one_of: Option<Vec<i64>>,
    /// Reason for an array, invalid UTF-8, a pattern or `one_of` mismatch;
    /// `None`: such a value reads as PHP would read it, never an error.
    pub invalid: Option<String>,
    /// Reason for a required parameter that is absent.
    pub missing: Option<String>,
    /// Reason for a value over `max_chars`/`max_bytes`.
    pub too_long: Option<String>,
}

/// A value bound into SQL and seen by templates.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// SQL NULL / PHP null.
    Null,
    /// An integer.
    Int(i64),
    /// A float.
    Real(f64),
    /// Text.
    Text(String),
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => Ok(()),
            Value::Int(i) => write!(f, "{i}"),
            Value::Real(r) => write!(f, "{r}"),
            Value::Text(s) => f.write_str(s),
        }
    }
}

/// A change that wakes held requests: rows of `table` inserted, updated or
/// deleted, under the key `key` (SQL over `NEW`/`OLD`).
#[derive(Debug, Clone)]
pub struct Topic {
    /// Its name.
    pub name: String,
    /// The app's table.
    pub table: String,
    /// `insert`, `update`, `delete`.
    pub on: Vec<String>,
    /// SQL expression giving the key.
    pub key: String,
}

/// One answer: status, headers, and a template for the body.
#[derive(Debug)]
pub struct Answer {
    /// HTTP status.
    pub status: StatusCode,
    /// The template's name in the environment.
    pub template: String,
    /// The body does not depend on anything (rendered at load).
    pub fixed: Option<String>,
    /// `Content-Type` and the other headers, parsed once and shared by every
    /// answer.
    pub header_map: std::sync::Arc<HeaderMap>,
}

/// An answer's headers as a map. Cloned once here: the values' bytes become
/// shared, so the clone made for every response copies no bytes.
fn header_map<'a>(
    content_type: &str,
    headers: impl IntoIterator<Item = (&'a String, &'a String)>,
) -> std::sync::Arc<HeaderMap> {
    let mut map = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(content_type) {
        map.insert(hyper::header::CONTENT_TYPE, v);
    }
    for (k, v) in headers {
        if let (Ok(k), Ok(v)) = (
            HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(v),
        ) {
            map.append(k, v);
        }
    }
    drop(map.clone());
    std::sync::Arc::new(map)
}

/// One statement of a route.
#[derive(Debug)]
pub struct Statement {
    /// Results go by this name.
    pub name: Option<String>,
    /// The SQL.
    pub sql: String,
    /// Condition template, if any.
    pub when: Option<String>,
    /// Run without waiting (never delays the answer), first pass only.
    pub detached: bool,
    /// Skip when run with the same values within this long.
    pub throttle: Option<std::time::Duration>,
    /// Set by the check against the schema: the statement changes nothing.
    pub readonly: bool,
    /// Its bound names, in order (`:room` → `room`).
    pub binds: Vec<String>,
    /// Line of the SQL in the profile file.
    pub line: usize,
}

/// Where a held request waits.
#[derive(Debug)]
pub struct Wake {
    /// Topic index.
    pub topic: usize,
    /// Template of the key.
    pub key: String,
}

/// The hold: while the condition is true after a pass, wait for a wake.
#[derive(Debug)]
pub struct Hold {
    /// Condition template.
    pub while_: String,
    /// What wakes it.
    pub wake: Vec<Wake>,
}

/// One answer case of a route.
#[derive(Debug)]
pub struct Case {
    /// Condition template, if any.
    pub when: Option<String>,
    /// The answer index.
    pub answer: usize,
}

/// One route.
#[derive(Debug)]
pub struct Route {
    /// Path relative to the base path, e.g. `/listenToRecive.php`.
    pub path: String,
    /// Allowed methods; empty: any.
    pub methods: Vec<hyper::Method>,
    /// `Allow` header value for a 405.
    pub allow: String,
    /// Dispatch: parameter → value it must have (raw, as sent); read from
    /// the parameter's declared source when `[params]` has it, else `$_REQUEST`.
    pub matches: Vec<(String, String)>,
    /// Parameter indices, in validation order.
    pub params: Vec<usize>,
    /// Required parameters (indices).
    pub required: Vec<usize>,
    /// Statements, in order.
    pub sql: Vec<Statement>,
    /// The hold, if any.
    pub hold: Option<Hold>,
    /// Answer cases, first match wins.
    pub cases: Vec<Case>,
    /// Whether the statements write (known after the schema check).
    pub writes: bool,
    /// Subject to the send rate limit.
    pub rate_limited: bool,
    /// Names the answer depends on (for sharing one rendering among waiters).
    pub answer_inputs: Vec<String>,
}

impl Route {
    /// A name for metrics and the access log: the path, and the dispatch
    /// values when several routes share it (`/chat.php?act=send`).
    pub fn label(&self) -> std::borrow::Cow<'_, str> {
        if self.matches.is_empty() {
            return std::borrow::Cow::Borrowed(&self.path);
        }
        let mut label = self.path.clone();
        for (i, (k, v)) in self.matches.iter().enumerate() {
            label.push(if i == 0 { '?' } else { '&' });
            label.push_str(k);
            label.push('=');
            label.push_str(v);
        }
        std::borrow::Cow::Owned(label)
    }
}

/// Engine-level outcomes each profile answers in its own way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ErrorKind {
    /// A parameter broke its rule.
    BadRequest,
    /// A method the route does not take.
    MethodNotAllowed,
    /// Body over the cap.
    TooLarge,
    /// Connection cap reached.
    Busy,
    /// The database failed.
    Internal,
    /// The database cannot take writes now.
    Unavailable,
    /// Send rate limit.
    RateLimited,
}

impl ErrorKind {
    const ALL: [(ErrorKind, &'static str, &'static str, u16); 7] = [
        (ErrorKind::BadRequest, "bad_request", "", 400),
        (
            ErrorKind::MethodNotAllowed,
            "method_not_allowed",
            "method not allowed",
            405,
        ),
        (
            ErrorKind::TooLarge,
            "too_large",
            "request body too large",
            413,
        ),
        (ErrorKind::Busy, "busy", "server busy", 503),
        (ErrorKind::Internal, "internal", "internal error", 500),
        (
            ErrorKind::Unavailable,
            "unavailable",
            "service unavailable",
            503,
        ),
        (
            ErrorKind::RateLimited,
            "rate_limited",
            "too many requests",
            429,
        ),
    ];

    /// The reason text given to the template as `error`.
    pub fn reason(self) -> &'static str {
        Self::ALL.iter().find(|e| e.0 == self).map_or("", |e| e.2)
    }
}

/// A loaded, checked profile.
pub struct Profile {
    /// Its name.
    pub name: String,
    /// Where it came from.
    pub origin: String,
    /// One line about the app.
    pub description: String,
    /// The app's schema (`CREATE … IF NOT EXISTS`).
    pub schema: String,
    /// What cometa adds beside it.
    pub extra_sql: Vec<String>,
    /// Parameters.
    pub params: Vec<Param>,
    /// Topics.
    pub topics: Vec<Topic>,
    /// Answers.
    pub answers: Vec<Answer>,
    /// The answer for each engine-level error.
    pub errors: BTreeMap<ErrorKind, usize>,
    /// Routes.
    pub routes: Vec<Route>,
    /// Statements the writer runs now and then, with their period.
    pub maintenance: Vec<(String, std::time::Duration)>,
    /// Lines of the maintenance statements.
    maintenance_lines: Vec<usize>,
    /// `[retention] by_age`: deletes up to `:batch` rows older than `:cutoff`
    /// (unix seconds) / `:cutoff_ms`; with its line.
    pub retention_by_age: Option<(String, usize)>,
    /// `[retention] by_count`: deletes up to `:batch` rows beyond the newest
    /// `:keep` of each room; with its line.
    pub retention_by_count: Option<(String, usize)>,
    /// Lines of the topics.
    topic_lines: Vec<usize>,
    /// Templates (bodies and conditions) with PHP's filters.
    pub env: minijinja::Environment<'static>,
    /// The templates and conditions simple enough to skip the engine, by name.
    fast: HashMap<String, templates::Fast>,
}

impl fmt::Debug for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Profile")
            .field("name", &self.name)
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

/// Reads files of a profile: from disk, or from the binary.
enum Files {
    Disk(PathBuf),
    Builtin(FileList),
}

impl Files {
    fn read(&self, name: &str) -> Result<String, String> {
        match self {
            Files::Disk(dir) => std::fs::read_to_string(dir.join(name))
                .map_err(|e| format!("cannot read {}: {e}", dir.join(name).display())),
            Files::Builtin(files) => files
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, c)| (*c).to_owned())
                .ok_or_else(|| format!("no file {name} in the built-in profile")),
        }
    }
}

/// Builds errors for one file.
struct Ctx<'a> {
    file: String,
    source: &'a str,
}

impl Ctx<'_> {
    fn err(
        &self,
        at: Option<usize>,
        key: impl Into<String>,
        msg: impl Into<String>,
    ) -> ProfileError {
        ProfileError {
            file: self.file.clone(),
            line: at.map(|pos| line_of(self.source, pos)),
            key: key.into(),
            message: msg.into(),
        }
    }
}

fn line_of(source: &str, pos: usize) -> usize {
    source.as_bytes()[..pos.min(source.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// Names every template can use besides parameters and results.
pub const BUILTIN_VARS: &[&str] = &["now", "now_ms", "insert_id", "timed_out", "error", "allow"];

impl Profile {
    /// Loads a profile by built-in name or file path; `tz` is the zone of `date`.
    pub fn load(name_or_path: &str, tz: &jiff::tz::TimeZone) -> Result<Profile, ProfileError> {
        if let Some((name, source, files)) = BUILTIN.iter().find(|(n, _, _)| *n == name_or_path) {
            return Profile::parse(
                &format!("builtin:{name}.toml"),
                source,
                Files::Builtin(files),
                tz,
            );
        }
        let path = Path::new(name_or_path);
        let source = std::fs::read_to_string(path).map_err(|e| ProfileError {
            file: name_or_path.to_owned(),
            line: None,
            key: String::new(),
            message: if e.kind() == std::io::ErrorKind::NotFound && !name_or_path.contains('/') {
                format!(
                    "no such file, and not a built-in profile (built-in: {})",
                    builtin_names().collect::<Vec<_>>().join(", ")
                )
            } else {
                e.to_string()
            },
        })?;
        let dir = path
            .parent()
            .map_or_else(|| PathBuf::from("."), Path::to_owned);
        Profile::parse(name_or_path, &source, Files::Disk(dir), tz)
    }

    /// Loads a profile from its text alone (no files beside it): for tests
    /// and fuzzing.
    pub fn parse_text(
        file: &str,
        source: &str,
        tz: &jiff::tz::TimeZone,
    ) -> Result<Profile, ProfileError> {
        Profile::parse(file, source, Files::Builtin(&[]), tz)
    }

    fn parse(
        file: &str,
        source: &str,
        files: Files,
        tz: &jiff::tz::TimeZone,
    ) -> Result<Profile, ProfileError> {
        let cx = Ctx {
            file: file.to_owned(),
            source,
        };
        let spec: FileSpec = toml::from_str(source).map_err(|e| {
            let at = e.span().map(|s| s.start);
            cx.err(at, "", e.message().to_owned())
        })?;
        let mut env = templates::environment(tz.clone());

        // Schema and what cometa adds.
        let schema = match &spec.profile.schema {
            Some(s) => files
                .read(s.get_ref())
                .map_err(|m| cx.err(Some(s.span().start), "profile.schema", m))?,
            None => String::new(),
        };

        // Parameters.
        let mut params = Vec::new();
        let mut param_index = HashMap::new();
        for (name, p) in &spec.params {
            let key = format!("params.{name}");
            let param = compile_param(&cx, &key, name, p)?;
            param_index.insert(name.clone(), params.len());
            params.push(param);
        }

        // Topics.
        let mut topics = Vec::new();
        for (name, t) in &spec.topics {
            let key = format!("topics.{name}");
            let at = Some(t.span().start);
            let t = t.get_ref();
            if !valid_ident(name) {
                return Err(cx.err(at, key, "a topic name is letters, digits and _"));
            }
            if !valid_ident(&t.table) {
                return Err(cx.err(at, key + ".table", "a table name is letters, digits and _"));
            }
            if t.on.is_empty() {
                return Err(cx.err(
                    at,
                    key + ".on",
                    "name at least one of insert, update, delete",
                ));
            }
            for on in &t.on {
                if !matches!(on.as_str(), "insert" | "update" | "delete") {
                    return Err(cx.err(
                        at,
                        key + ".on",
                        format!("{on:?}: expected insert, update or delete"),
                    ));
                }
            }
            let k = t.key.get_ref();
            if t.on.iter().any(|o| o == "insert") && k.contains("OLD.") {
                return Err(cx.err(
                    Some(t.key.span().start),
                    key + ".key",
                    "an insert has no OLD row; use NEW.",
                ));
            }
            if t.on.iter().any(|o| o == "delete") && k.contains("NEW.") {
                return Err(cx.err(
                    Some(t.key.span().start),
                    key + ".key",
                    "a delete has no NEW row; use OLD.",
                ));
            }
            topics.push(Topic {
                name: name.clone(),
                table: t.table.clone(),
                on: t.on.clone(),
                key: k.clone(),
            });
        }

        // Named answers.
        let mut answers = Vec::new();
        let mut answer_index = HashMap::new();
        for (name, a) in &spec.answers {
            let key = format!("answers.{name}");
            let answer = compile_answer(
                &cx,
                &files,
                &mut env,
                &key,
                a.get_ref(),
                Some(a.span().start),
            )?;
            answer_index.insert(name.clone(), answers.len());
            answers.push(answer);
        }

        // Error answers.
        let mut errors = BTreeMap::new();
        for (name, a) in &spec.errors {
            let Some(kind) = ErrorKind::ALL.iter().find(|e| e.1 == name) else {
                return Err(cx.err(
                    Some(a.span().start),
                    format!("errors.{name}"),
                    format!(
                        "unknown error; expected one of {}",
                        ErrorKind::ALL.map(|e| e.1).join(", ")
                    ),
                ));
            };
            let Some(&i) = answer_index.get(a.get_ref()) else {
                return Err(cx.err(
                    Some(a.span().start),
                    format!("errors.{name}"),
                    format!("no answer named {:?} in [answers]", a.get_ref()),
                ));
            };
            errors.insert(kind.0, i);
        }
        for (kind, _, reason, status) in ErrorKind::ALL {
            if errors.contains_key(&kind) {
                continue;
            }
            // Not declared: a JSON error as the classic chat gives it.
            let name = format!("error:{kind:?}");
            env.add_template_owned(
                name.clone(),
                r#"{"status":"error","error":{{ error|json }}}"#.to_owned(),
            )
            .expect("built-in error template compiles");
            let _ = reason;
            errors.insert(kind, answers.len());
            answers.push(Answer {
                status: StatusCode::from_u16(status).expect("valid status"),
                template: name,
                fixed: None,
                header_map: header_map("application/json", []),
            });
        }
        for (kind, i) in &errors {
            let t = env
                .get_template(&answers[*i].template)
                .expect("answer template added");
            let unknown: Vec<String> = t
                .undeclared_variables(false)
                .into_iter()
                .filter(|v| !matches!(v.as_str(), "error" | "allow" | "now" | "now_ms"))
                .collect();
            if !unknown.is_empty() {
                return Err(cx.err(
                    None,
                    format!("errors ({kind:?})"),
                    format!(
                        "an error answer knows only error, allow, now, now_ms; it uses {}",
                        unknown.join(", ")
                    ),
                ));
            }
        }

        // Routes.
        let mut routes: Vec<Route> = Vec::new();
        let mut cond_n = 0usize;
        for (ri, r) in spec.routes.iter().enumerate() {
            let at = Some(r.span().start);
            let r = r.get_ref();
            let key = format!("route[{ri}] {:?}", r.path);
            if !r.path.starts_with('/') {
                return Err(cx.err(at, key + ".path", "a path starts with /"));
            }
            let mut methods = Vec::new();
            for m in &r.methods {
                if m == "*" {
                    methods.clear();
                    break;
                }
                methods.push(
                    hyper::Method::from_bytes(m.to_ascii_uppercase().as_bytes()).map_err(|_| {
                        cx.err(
                            at,
                            format!("{key}.methods"),
                            format!("{m:?} is not a method"),
                        )
                    })?,
                );
            }
            let allow = methods
                .iter()
                .map(hyper::Method::as_str)
                .collect::<Vec<_>>()
                .join(", ");
            let lookup = |n: &String, what: &str| {
                param_index.get(n).copied().ok_or_else(|| {
                    cx.err(
                        at,
                        format!("{key}.{what}"),
                        format!("no parameter {n:?} in [params]"),
                    )
                })
            };
            let route_params: Vec<usize> = r
                .params
                .iter()
                .map(|n| lookup(n, "params"))
                .collect::<Result<_, _>>()?;
            let required: Vec<usize> = r
                .required
                .iter()
                .map(|n| lookup(n, "required"))
                .collect::<Result<_, _>>()?;
            for q in &required {
                if !route_params.contains(q) {
                    return Err(cx.err(
                        at,
                        format!("{key}.required"),
                        format!("{:?} is required but not in params", params[*q].name),
                    ));
                }
                if params[*q].missing.is_none() {
                    return Err(cx.err(
                        at,
                        format!("{key}.required"),
                        format!(
                            "{:?} is required: give it errors.missing in [params.{}]",
                            params[*q].name, params[*q].name
                        ),
                    ));
                }
            }
            // Names known to this route's templates, growing with each statement.
            let mut known: BTreeSet<String> = route_params
                .iter()
                .map(|&i| params[i].name.clone())
                .chain(BUILTIN_VARS.iter().map(|s| (*s).to_owned()))
                .collect();
            let mut sql = Vec::new();
            for (si, s) in r.sql.iter().enumerate() {
                let sat = Some(s.span().start);
                let s = s.get_ref();
                let skey = format!("{key}.sql[{si}]");
                let when = match &s.when {
                    Some(w) => Some(add_condition(
                        &cx,
                        &mut env,
                        &mut cond_n,
                        &known,
                        w,
                        &format!("{skey}.when"),
                    )?),
                    None => None,
                };
                if s.detached && s.name.is_some() {
                    return Err(cx.err(sat, skey, "a detached statement has no results to name"));
                }
                let throttle = match s.throttle {
                    Some(t) if t.is_finite() && t > 0.0 && t <= 86_400.0 => {
                        Some(std::time::Duration::from_secs_f64(t))
                    }
                    Some(_) => {
                        return Err(cx.err(sat, skey + ".throttle", "seconds between 0 and 86400"));
                    }
                    None => None,
                };
                let binds = sql_binds(s.sql.get_ref());
                for b in &binds {
                    if !bind_known(b, &known) {
                        return Err(cx.err(
                            Some(s.sql.span().start),
                            format!("{skey}.sql"),
                            format!(":{b} is neither a parameter of this route, an earlier result (name__column), nor one of now, now_ms, insert_id"),
                        ));
                    }
                }
                if let Some(n) = &s.name {
                    if !valid_ident(n) || n.contains("__") {
                        return Err(cx.err(
                            sat,
                            skey + ".name",
                            "a result name is letters, digits and single _",
                        ));
                    }
                    known.insert(n.clone());
                }
                sql.push(Statement {
                    name: s.name.clone(),
                    sql: s.sql.get_ref().clone(),
                    when,
                    detached: s.detached,
                    throttle,
                    readonly: false,
                    binds,
                    line: line_of(source, s.sql.span().start),
                });
            }
            let hold = match &r.hold {
                Some(h) => {
                    let hkey = format!("{key}.hold");
                    let h = h.get_ref();
                    let while_ = add_condition(
                        &cx,
                        &mut env,
                        &mut cond_n,
                        &known,
                        &h.while_,
                        &format!("{hkey}.while"),
                    )?;
                    if h.wake.is_empty() {
                        return Err(cx.err(
                            Some(h.while_.span().start),
                            hkey + ".wake",
                            "a hold needs at least one wake",
                        ));
                    }
                    let mut wake = Vec::new();
                    for w in &h.wake {
                        let Some(t) = topics.iter().position(|t| t.name == w.topic) else {
                            return Err(cx.err(
                                Some(w.key.span().start),
                                format!("{hkey}.wake"),
                                format!("no topic {:?} in [topics]", w.topic),
                            ));
                        };
                        let name = format!("wake:{cond_n}");
                        cond_n += 1;
                        // Evaluated before the first pass: parameters only.
                        let before: BTreeSet<String> = route_params
                            .iter()
                            .map(|&i| params[i].name.clone())
                            .chain(["now", "now_ms"].map(String::from))
                            .collect();
                        add_template(
                            &cx,
                            &mut env,
                            &name,
                            format!("{{{{ {} }}}}", w.key.get_ref()),
                            Some(w.key.span().start),
                            &format!("{hkey}.wake.key"),
                            &before,
                        )?;
                        wake.push(Wake {
                            topic: t,
                            key: name,
                        });
                    }
                    Some(Hold { while_, wake })
                }
                None => None,
            };
            if r.answer.is_empty() {
                return Err(cx.err(
                    at,
                    key + ".answer",
                    "a route needs at least one [[route.answer]]",
                ));
            }
            let mut cases = Vec::new();
            let mut inputs: BTreeSet<String> = BTreeSet::new();
            for (ci, c) in r.answer.iter().enumerate() {
                let cat = Some(c.span().start);
                let c = c.get_ref();
                let ckey = format!("{key}.answer[{ci}]");
                let when = match &c.when {
                    Some(w) => Some(add_condition(
                        &cx,
                        &mut env,
                        &mut cond_n,
                        &known,
                        w,
                        &format!("{ckey}.when"),
                    )?),
                    None => None,
                };
                let answer = match &c.use_ {
                    Some(name) => {
                        if c.body.is_some()
                            || c.file.is_some()
                            || c.status.is_some()
                            || c.content_type.is_some()
                            || !c.headers.is_empty()
                        {
                            return Err(cx.err(cat, ckey, "give either use or the answer itself (status, content_type, headers, body), not both"));
                        }
                        *answer_index.get(name).ok_or_else(|| {
                            cx.err(
                                cat,
                                format!("{ckey}.use"),
                                format!("no answer named {name:?} in [answers]"),
                            )
                        })?
                    }
                    None => {
                        let a = inline_answer(c);
                        let answer = compile_answer(&cx, &files, &mut env, &ckey, &a, cat)?;
                        answers.push(answer);
                        answers.len() - 1
                    }
                };
                let t = env.get_template(&answers[answer].template).expect("added");
                for v in t.undeclared_variables(false) {
                    if !known.contains(&v) {
                        return Err(cx.err(cat, ckey, format!("the answer uses {v:?}, which this route does not have (its parameters, results and {})", BUILTIN_VARS.join(", "))));
                    }
                    inputs.insert(v);
                }
                if let Some(w) = &when {
                    for v in env
                        .get_template(w)
                        .expect("added")
                        .undeclared_variables(false)
                    {
                        inputs.insert(v);
                    }
                }
                cases.push(Case { when, answer });
            }
            if cases.last().is_some_and(|c| c.when.is_some()) {
                return Err(cx.err(
                    at,
                    key + ".answer",
                    "the last case must have no `when` (it answers when nothing else does)",
                ));
            }
            routes.push(Route {
                path: r.path.clone(),
                methods,
                allow,
                matches: r
                    .matches
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
                params: route_params,
                required,
                sql,
                hold,
                cases,
                writes: false,
                rate_limited: r.rate_limited,
                answer_inputs: inputs.into_iter().collect(),
            });
        }
        for (i, a) in routes.iter().enumerate() {
            if routes[..i]
                .iter()
                .any(|b| b.path == a.path && b.matches == a.matches)
            {
                return Err(cx.err(
                    None,
                    format!("route[{i}] {:?}", a.path),
                    "an earlier route has the same path and match: this one is never used",
                ));
            }
        }

        let retention = |spec: &Option<Spanned<String>>,
                         key: &str|
         -> Result<Option<(String, usize)>, ProfileError> {
            let Some(sql) = spec else { return Ok(None) };
            for b in sql_binds(sql.get_ref()) {
                if !matches!(
                    b.as_str(),
                    "cutoff" | "cutoff_ms" | "keep" | "batch" | "now" | "now_ms"
                ) {
                    return Err(cx.err(
                        Some(sql.span().start),
                        format!("retention.{key}"),
                        format!(":{b}: retention binds only :cutoff, :cutoff_ms, :keep, :batch, :now, :now_ms"),
                    ));
                }
            }
            if !sql.get_ref().contains(":batch") {
                return Err(cx.err(Some(sql.span().start), format!("retention.{key}"), "delete at most :batch rows per statement (LIMIT :batch), so sends never wait behind it"));
            }
            Ok(Some((
                sql.get_ref().clone(),
                line_of(source, sql.span().start),
            )))
        };
        let retention_by_age = retention(&spec.retention.by_age, "by_age")?;
        let retention_by_count = retention(&spec.retention.by_count, "by_count")?;
        let mut maintenance = Vec::new();
        let maintenance_lines = spec
            .maintenance
            .iter()
            .map(|m| line_of(source, m.get_ref().sql.span().start))
            .collect();
        let topic_lines = spec
            .topics
            .values()
            .map(|t| line_of(source, t.get_ref().key.span().start))
            .collect();
        for (i, m) in spec.maintenance.iter().enumerate() {
            let at = Some(m.span().start);
            let m = m.get_ref();
            if !(m.every.is_finite() && m.every >= 1.0) {
                return Err(cx.err(at, format!("maintenance[{i}].every"), "at least 1 second"));
            }
            for b in sql_binds(m.sql.get_ref()) {
                if !matches!(b.as_str(), "now" | "now_ms") {
                    return Err(cx.err(
                        at,
                        format!("maintenance[{i}].sql"),
                        format!(":{b}: maintenance binds only :now and :now_ms"),
                    ));
                }
            }
            maintenance.push((
                m.sql.get_ref().clone(),
                std::time::Duration::from_secs_f64(m.every),
            ));
        }

        Ok(Profile {
            name: spec.profile.name.clone(),
            origin: file.to_owned(),
            description: spec.profile.description.clone(),
            schema,
            extra_sql: spec
                .profile
                .extra_sql
                .iter()
                .map(|s| s.get_ref().clone())
                .collect(),
            params,
            topics,
            answers,
            errors,
            routes,
            maintenance,
            maintenance_lines,
            retention_by_age,
            retention_by_count,
            topic_lines,
            fast: env
                .templates()
                .filter_map(|(name, t)| {
                    let src = t.source();
                    let fast = match src
                        .strip_prefix("{% if ")
                        .and_then(|r| r.strip_suffix(" %}1{% endif %}"))
                    {
                        Some(cond) if name.starts_with("when:") => {
                            templates::Fast::of_condition(cond)
                        }
                        _ => templates::Fast::of_template(src, tz),
                    }?;
                    Some((name.to_owned(), fast))
                })
                .collect(),
            env,
        })
    }

    /// Checks every statement against a database that has the schema, and
    /// learns which routes write. `prepare` answers, for one SQL text, whether
    /// it is read-only, or why it does not prepare.
    pub fn check_sql(
        &mut self,
        mut prepare: impl FnMut(&str) -> Result<bool, String>,
    ) -> Result<(), ProfileError> {
        let file = self.origin.clone();
        let fail = |line: usize, key: String, message: String| ProfileError {
            file: file.clone(),
            line: Some(line),
            key,
            message,
        };
        // A topic's key is SQL over the changed row, resolved by SQLite only
        // when the trigger fires: a typo would break every write to the
        // table, the PHP app's included. Prepared here with the row aliased.
        for (t, line) in self.topics.iter().zip(&self.topic_lines) {
            let rows: Vec<&str> =
                t.on.iter()
                    .flat_map(|on| match on.as_str() {
                        "insert" => vec!["NEW"],
                        "delete" => vec!["OLD"],
                        _ => vec!["NEW", "OLD"],
                    })
                    .collect();
            for row in rows {
                prepare(&format!(
                    "SELECT CAST(({}) AS TEXT) FROM \"{}\" AS {row} LIMIT 0",
                    t.key, t.table
                ))
                .map_err(|e| fail(*line, format!("topics.{}.key", t.name), e))?;
            }
        }
        for (ri, r) in self.routes.iter_mut().enumerate() {
            let mut writes = false;
            for (si, s) in r.sql.iter_mut().enumerate() {
                s.readonly = prepare(&s.sql)
                    .map_err(|e| fail(s.line, format!("route[{ri}] {:?}.sql[{si}]", r.path), e))?;
                writes |= !s.readonly && !s.detached;
            }
            r.writes = writes;
        }
        for (i, (sql, _)) in self.maintenance.iter().enumerate() {
            prepare(sql).map_err(|e| {
                fail(
                    self.maintenance_lines[i],
                    format!("maintenance[{i}].sql"),
                    e,
                )
            })?;
        }
        Ok(())
    }

    /// Renders template `name` (an answer body or a wake key) over `scope`.
    pub fn render(&self, name: &str, scope: &templates::Scope) -> Result<String, String> {
        if let Some(out) = self.fast.get(name).and_then(|f| f.render(scope)) {
            return Ok(out);
        }
        templates::render(&self.env, name, scope)
    }

    /// Evaluates condition `name` over `scope`.
    pub fn truthy(&self, name: &str, scope: &templates::Scope) -> Result<bool, String> {
        self.render(name, scope).map(|s| s == "1")
    }

    /// The route for `path` whose `match` parameters agree with `raw`
    /// (given the name and its declared source).
    pub fn route<'a>(
        &self,
        path: &str,
        raw: impl Fn(&str, Source) -> Option<&'a str>,
    ) -> Option<usize> {
        let source = |name: &str| {
            self.params
                .iter()
                .find(|p| p.name == name)
                .map_or(Source::Request, |p| p.from)
        };
        self.routes.iter().position(|r| {
            r.path == path
                && r.matches
                    .iter()
                    .all(|(k, v)| raw(k, source(k)) == Some(v.as_str()))
        })
    }

    /// Whether any route is served at `path`.
    pub fn serves(&self, path: &str) -> bool {
        self.routes.iter().any(|r| r.path == path)
    }

    /// Lines describing the routes, for `cometa check`.
    pub fn describe(&self) -> String {
        let mut out = format!("profile {} ({})\n", self.name, self.origin);
        for r in &self.routes {
            let methods = if r.methods.is_empty() {
                "*".to_owned()
            } else {
                r.allow.clone()
            };
            let m: Vec<String> = r.matches.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let p: Vec<&str> = r
                .params
                .iter()
                .map(|&i| self.params[i].name.as_str())
                .collect();
            let what = match (&r.hold, r.writes) {
                (Some(_), true) => "holds, writes",
                (Some(_), false) => "holds",
                (None, true) => "writes",
                (None, false) => "reads",
            };
            out.push_str(&format!(
                "  {methods:<10} {}{}  params: {}  ({what})\n",
                r.path,
                if m.is_empty() {
                    String::new()
                } else {
                    format!("?{}", m.join("&"))
                },
                if p.is_empty() {
                    "-".to_owned()
                } else {
                    p.join(", ")
                },
            ));
        }
        out
    }
}

fn valid_ident(s: &str) -> bool {
    !s.is_empty()
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && !s.as_bytes()[0].is_ascii_digit()
}

/// The `:name` parameters of a SQL text, in order, without repeats. Quoted
/// strings and comments are skipped.
pub fn sql_binds(sql: &str) -> Vec<String> {
    let b = sql.as_bytes();
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            q @ (b'\'' | b'"' | b'`') => {
                i += 1;
                while i < b.len() && b[i] != q {
                    i += 1;
                }
                i += 1;
            }
            b'-' if b.get(i + 1) == Some(&b'-') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i + 1 < b.len() && !(b[i] == b'*' && b[i + 1] == b'/') {
                    i += 1;
                }
                i += 2;
            }
            b':' | b'@' | b'$' => {
                let start = i + 1;
                let mut j = start;
                while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'_') {
                    j += 1;
                }
                if j > start {
                    let name = &sql[start..j];
                    if !out.iter().any(|n| n == name) {
                        out.push(name.to_owned());
                    }
                }
                i = j.max(i + 1);
            }
            _ => i += 1,
        }
    }
    out
}

fn bind_known(name: &str, known: &BTreeSet<String>) -> bool {
    if matches!(name, "now" | "now_ms" | "insert_id") || known.contains(name) {
        return !matches!(name, "timed_out" | "error" | "allow");
    }
    name.split_once("__")
        .is_some_and(|(res, col)| known.contains(res) && !col.is_empty())
}

fn compile_param(
    cx: &Ctx<'_>,
    key: &str,
    name: &str,
    p: &Spanned<ParamSpec>,
) -> Result<Param, ProfileError> {
    let at = Some(p.span().start);
    let p = p.get_ref();
    if !valid_ident(name) {
        return Err(cx.err(
            at,
            key,
            "a parameter name is letters, digits and _ (it is bound into SQL as :name)",
        ));
    }
    if matches!(
        name,
        "now" | "now_ms" | "insert_id" | "timed_out" | "error" | "allow"
    ) {
        return Err(cx.err(at, key, format!("{name} is a built-in name")));
    }
    let default = match &p.default {
        None => None,
        Some(toml::Value::String(s)) => Some(match p.kind {
            Kind::Text => Value::Text(s.clone()),
            Kind::Int => Value::Int(crate::php::int_cast(s)),
        }),
        Some(toml::Value::Integer(i)) => Some(match p.kind {
            Kind::Int => Value::Int(*i),
            Kind::Text => Value::Text(i.to_string()),
        }),
        Some(_) => {
            return Err(cx.err(
                at,
                format!("{key}.default"),
                "a default is a string or an integer",
            ));
        }
    };
    let pattern = match &p.pattern {
        Some(re) => Some(Regex::new(&format!("^(?:{})$", re.get_ref())).map_err(|e| {
            cx.err(
                Some(re.span().start),
                format!("{key}.pattern"),
                e.to_string(),
            )
        })?),
        None => None,
    };
    if (pattern.is_some() || p.one_of.is_some()) && p.errors.invalid.is_none() {
        return Err(cx.err(
            at,
            format!("{key}.errors.invalid"),
            "pattern and one_of need the reason for a mismatch",
        ));
    }
    if (p.max_chars.is_some() || p.max_bytes.is_some()) && p.errors.too_long.is_none() {
        return Err(cx.err(
            at,
            format!("{key}.errors.too_long"),
            "max_chars and max_bytes need the reason for a value too long",
        ));
    }
    if p.one_of.is_some() && p.kind != Kind::Int {
        return Err(cx.err(at, format!("{key}.one_of"), "one_of is for type = \"int\""));
    }
    Ok(Param {
        name: name.to_owned(),
        from: p.from,
        kind: p.kind,
        trim: p.trim,
        empty_is_absent: p.empty_is_absent,
        default,
        max_chars: p.max_chars,
        max_bytes: p.max_bytes,
        pattern,
        one_of: p.one_of.clone(),
        invalid: p.errors.invalid.clone(),
        missing: p.errors.missing.clone(),
        too_long: p.errors.too_long.clone(),
    })
}

fn inline_answer(c: &CaseSpec) -> AnswerSpec {
    AnswerSpec {
        status: c.status,
        content_type: c.content_type.clone(),
        headers: c.headers.clone(),
        body: c.body.clone(),
        file: c.file.clone(),
    }
}

fn compile_answer(
    cx: &Ctx<'_>,
    files: &Files,
    env: &mut minijinja::Environment<'static>,
    key: &str,
    a: &AnswerSpec,
    at: Option<usize>,
) -> Result<Answer, ProfileError> {
    let status = StatusCode::from_u16(a.status.unwrap_or(200))
        .map_err(|_| cx.err(at, format!("{key}.status"), "not an HTTP status"))?;
    let (source, src_at) = match (&a.body, &a.file) {
        (Some(b), None) => (b.get_ref().clone(), Some(b.span().start)),
        (None, Some(f)) => (
            files
                .read(f.get_ref())
                .map_err(|m| cx.err(Some(f.span().start), format!("{key}.file"), m))?,
            Some(f.span().start),
        ),
        (None, None) => (String::new(), at),
        (Some(_), Some(_)) => return Err(cx.err(at, key, "give body or file, not both")),
    };
    for (h, v) in &a.headers {
        if hyper::header::HeaderName::from_bytes(h.as_bytes()).is_err()
            || hyper::header::HeaderValue::from_str(v).is_err()
        {
            return Err(cx.err(
                at,
                format!("{key}.headers"),
                format!("{h}: {v:?} is not a valid header"),
            ));
        }
        if h.eq_ignore_ascii_case("content-type") || h.eq_ignore_ascii_case("content-length") {
            return Err(cx.err(
                at,
                format!("{key}.headers"),
                format!("{h} is set by content_type / the body"),
            ));
        }
    }
    let content_type = a
        .content_type
        .clone()
        .unwrap_or_else(|| "text/html; charset=UTF-8".to_owned());
    if hyper::header::HeaderValue::from_str(&content_type).is_err() {
        return Err(cx.err(
            at,
            format!("{key}.content_type"),
            "not a valid header value",
        ));
    }
    let name = format!("answer:{key}");
    let fixed = (!source.contains("{{") && !source.contains("{%") && !source.contains("{#"))
        .then(|| source.clone());
    add_template(
        cx,
        env,
        &name,
        source,
        src_at,
        &format!("{key}.body"),
        &BTreeSet::new(),
    )?;
    Ok(Answer {
        status,
        header_map: header_map(&content_type, &a.headers),
        template: name,
        fixed,
    })
}

/// Compiles a template; with `known` non-empty, its variables must be in it.
fn add_template(
    cx: &Ctx<'_>,
    env: &mut minijinja::Environment<'static>,
    name: &str,
    source: String,
    at: Option<usize>,
    key: &str,
    known: &BTreeSet<String>,
) -> Result<(), ProfileError> {
    env.add_template_owned(name.to_owned(), source)
        .map_err(|e| {
            cx.err(
                at,
                key,
                format!("template does not compile: {}", template_error(&e)),
            )
        })?;
    if !known.is_empty() {
        let t = env.get_template(name).expect("just added");
        for v in t.undeclared_variables(false) {
            if !known.contains(&v) {
                return Err(cx.err(
                    at,
                    key,
                    format!(
                        "{v:?} is not a parameter of this route, an earlier result, nor one of {}",
                        BUILTIN_VARS.join(", ")
                    ),
                ));
            }
        }
    }
    Ok(())
}

fn add_condition(
    cx: &Ctx<'_>,
    env: &mut minijinja::Environment<'static>,
    n: &mut usize,
    known: &BTreeSet<String>,
    expr: &Spanned<String>,
    key: &str,
) -> Result<String, ProfileError> {
    let name = format!("when:{n}");
    *n += 1;
    add_template(
        cx,
        env,
        &name,
        format!("{{% if {} %}}1{{% endif %}}", expr.get_ref()),
        Some(expr.span().start),
        key,
        known,
    )?;
    Ok(name)
}

fn template_error(e: &minijinja::Error) -> String {
    let mut s = e.kind().to_string();
    if let Some(d) = e.detail() {
        s.push_str(": ");
        s.push_str(d);
    }
    if let Some(l) = e.line() {
        s.push_str(&format!(" (template line {l})"));
    }
    s
}

pub use templates::{render, truthy};

#[cfg(test)]
mod tests {
    use super::*;

    fn utc() -> jiff::tz::TimeZone {
        jiff::tz::TimeZone::UTC
    }

    #[test]
    fn builtins_load() {
        for name in builtin_names() {
            Profile::load(name, &utc()).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }

    #[test]
    fn binds_skip_strings_and_comments() {
        assert_eq!(
            sql_binds(
                "SELECT ':no' -- :no\n FROM t WHERE a = :room AND b > :lastId /* :x */ AND c = :room"
            ),
            ["room", "lastId"]
        );
    }

    fn parse(src: &str) -> Result<Profile, ProfileError> {
        Profile::parse("t.toml", src, Files::Builtin(&[]), &utc())
    }

    #[test]
    fn unknown_keys_name_file_line_and_key() {
        let e = parse("[profile]\nname = \"x\"\n\n[[route]]\npath = \"/a.php\"\nanswr = []\n")
            .unwrap_err();
        assert_eq!((e.file.as_str(), e.line), ("t.toml", Some(6)), "{e}");
        assert!(e.message.contains("unknown field `answr`"), "{e}");
    }

    #[test]
    fn a_template_that_does_not_compile_is_named() {
        let e = parse("[profile]\nname = \"x\"\n[[route]]\npath = \"/a.php\"\n[[route.answer]]\nbody = \"{{ oops \"\n").unwrap_err();
        assert_eq!(e.line, Some(6), "{e}");
        assert!(e.message.contains("template does not compile"), "{e}");
    }

    #[test]
    fn an_unknown_name_in_an_answer_is_refused() {
        let e = parse("[profile]\nname = \"x\"\n[[route]]\npath = \"/a.php\"\n[[route.answer]]\nbody = \"{{ usr }}\"\n").unwrap_err();
        assert!(e.message.contains("\"usr\""), "{e}");
    }

    #[test]
    fn an_unknown_bind_is_refused() {
        let e = parse("[profile]\nname = \"x\"\n[[route]]\npath = \"/a.php\"\n[[route.sql]]\nsql = \"SELECT :nope\"\n[[route.answer]]\nbody = \"\"\n").unwrap_err();
        assert!(e.message.contains(":nope"), "{e}");
        assert_eq!(e.line, Some(6), "{e}");
    }
}

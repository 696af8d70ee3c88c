//! Answers as minijinja templates, with PHP's building blocks as filters
//! (`json`, `htmlspecialchars`, `date`, `int`, `trim`, `substr`) and PHP's
//! `echo` rules for printing (null and false print nothing, true prints `1`).
//! No autoescaping: an answer keeps the escaping its PHP original had, none
//! included. Templates cannot run code, read files or reach the network.

use std::sync::Arc;

use minijinja::value::{Enumerator, Object, ObjectRepr, Value as J, ValueKind};
use minijinja::{AutoEscape, Environment, Error, ErrorKind, UndefinedBehavior};

use super::Value;
use crate::php;
use crate::store::Rows;

/// The environment every profile's templates live in.
pub(super) fn environment(tz: jiff::tz::TimeZone) -> Environment<'static> {
    let mut env = Environment::new();
    env.set_auto_escape_callback(|_| AutoEscape::None);
    env.set_keep_trailing_newline(true);
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_formatter(|out, _state, v| {
        let s = echo(v);
        out.write_str(&s).map_err(Error::from)
    });
    env.add_filter("json", |v: J| -> Result<String, Error> {
        let mut out = String::new();
        json(&mut out, &v, 0)?;
        Ok(out)
    });
    let h = |v: J, flags: Option<String>| -> Result<String, Error> {
        let s = echo(&v);
        let mut out = String::with_capacity(s.len() + 8);
        match flags.as_deref() {
            None | Some("ENT_QUOTES") => php::push_htmlspecialchars(&mut out, &s),
            Some("ENT_COMPAT") => push_html_compat(&mut out, &s, true),
            Some("ENT_NOQUOTES") => push_html_compat(&mut out, &s, false),
            Some(other) => {
                return Err(Error::new(
                    ErrorKind::InvalidOperation,
                    format!(
                        "htmlspecialchars flags {other:?}: use ENT_QUOTES, ENT_COMPAT or ENT_NOQUOTES"
                    ),
                ));
            }
        }
        Ok(out)
    };
    env.add_filter("htmlspecialchars", h);
    env.add_filter("h", h);
    env.add_filter(
        "date",
        move |v: J, format: String| -> Result<String, Error> {
            let t = timestamp(&v)?;
            Ok(php::date(&format, t, &tz))
        },
    );
    env.add_filter("int", |v: J| -> i64 { int_of(&v) });
    env.add_filter("trim", |v: J| -> String { php::trim(&echo(&v)).to_owned() });
    env.add_filter("substr", |v: J, start: i64, len: Option<i64>| -> String {
        php::substr(&echo(&v), start, len)
    });
    env
}

/// What PHP's `echo` prints for a value.
fn echo(v: &J) -> String {
    match v.kind() {
        ValueKind::Undefined | ValueKind::None => String::new(),
        ValueKind::Bool => {
            if v.is_true() {
                "1".into()
            } else {
                String::new()
            }
        }
        ValueKind::Number => match v.as_i64() {
            Some(i) if v.to_string().parse::<i64>().is_ok() => i.to_string(),
            _ => php_float(f64::try_from(v.clone()).unwrap_or(0.0)),
        },
        _ => v.as_str().map_or_else(|| v.to_string(), str::to_owned),
    }
}

/// PHP 8's `echo` of a float: 14 significant digits (`precision`), the
/// shortest form of that, exponent form `1.0E+25` outside 1e-4..1e15.
fn php_float(f: f64) -> String {
    if !f.is_finite() {
        return if f.is_nan() {
            "NAN".into()
        } else if f > 0.0 {
            "INF".into()
        } else {
            "-INF".into()
        };
    }
    let r: f64 = format!("{f:.13e}").parse().unwrap_or(f);
    if r == 0.0 {
        return if r.is_sign_negative() {
            "-0".into()
        } else {
            "0".into()
        };
    }
    let a = r.abs();
    if (1e-4..1e15).contains(&a) {
        return format!("{r}");
    }
    let e = format!("{r:e}");
    let (m, x) = e.split_once('e').unwrap_or((&e, "0"));
    let m = if m.contains('.') {
        m.to_owned()
    } else {
        format!("{m}.0")
    };
    let x: i32 = x.parse().unwrap_or(0);
    format!("{m}E{}{}", if x < 0 { '-' } else { '+' }, x.abs())
}

/// PHP `(int)` of a value.
fn int_of(v: &J) -> i64 {
    match v.kind() {
        ValueKind::Number => v
            .as_i64()
            .unwrap_or_else(|| f64::try_from(v.clone()).map_or(0, |f| f as i64)),
        ValueKind::Bool => i64::from(v.is_true()),
        ValueKind::String => php::int_cast(v.as_str().unwrap_or("")),
        _ => 0,
    }
}

/// A unix time from an integer, or from SQLite's `CURRENT_TIMESTAMP` text (UTC).
fn timestamp(v: &J) -> Result<i64, Error> {
    if let Some(s) = v.as_str() {
        let s = s.trim();
        if let Ok(i) = s.parse::<i64>() {
            return Ok(i);
        }
        return jiff::civil::DateTime::strptime("%Y-%m-%d %H:%M:%S", s)
            .or_else(|_| s.parse::<jiff::civil::DateTime>())
            .and_then(|dt| dt.to_zoned_datetime(jiff::tz::TimeZone::UTC))
            .map(|z| z.timestamp().as_second())
            .map_err(|e| {
                Error::new(
                    ErrorKind::InvalidOperation,
                    format!("date: {s:?} is not a time: {e}"),
                )
            });
    }
    Ok(int_of(v))
}

/// `htmlspecialchars` with `ENT_COMPAT` (double quotes only) or `ENT_NOQUOTES`.
fn push_html_compat(out: &mut String, s: &str, double: bool) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' if double => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
}

/// `json_encode` with PHP's default flags.
fn json(out: &mut String, v: &J, depth: usize) -> Result<(), Error> {
    if depth > 64 {
        return Err(Error::new(
            ErrorKind::InvalidOperation,
            "json: nested too deep",
        ));
    }
    match v.kind() {
        ValueKind::Undefined | ValueKind::None => out.push_str("null"),
        ValueKind::Bool => out.push_str(if v.is_true() { "true" } else { "false" }),
        ValueKind::Number => match v.as_i64() {
            Some(i) if v.to_string().parse::<i64>().is_ok() => out.push_str(&i.to_string()),
            _ => {
                // serialize_precision = -1: the shortest text that reads back.
                let f = f64::try_from(v.clone()).unwrap_or(0.0);
                let s = if f.is_finite() {
                    format!("{f}")
                } else {
                    "0".into()
                };
                out.push_str(&s);
                if f == f.trunc() && !s.contains(['e', 'E', '.']) {
                    out.push_str(".0");
                }
            }
        },
        ValueKind::String => php::push_json_string(out, v.as_str().unwrap_or("")),
        ValueKind::Seq | ValueKind::Iterable => {
            out.push('[');
            for (i, item) in v.try_iter()?.enumerate() {
                if i > 0 {
                    out.push(',');
                }
                json(out, &item, depth + 1)?;
            }
            out.push(']');
        }
        ValueKind::Map => {
            out.push('{');
            for (i, k) in v.try_iter()?.enumerate() {
                if i > 0 {
                    out.push(',');
                }
                php::push_json_string(out, &echo(&k));
                out.push(':');
                json(out, &v.get_item(&k)?, depth + 1)?;
            }
            out.push('}');
        }
        _ => php::push_json_string(out, &echo(v)),
    }
    Ok(())
}

fn to_j(v: &Value) -> J {
    match v {
        Value::Null => J::from(()),
        Value::Int(i) => J::from(*i),
        Value::Real(r) => J::from(*r),
        Value::Text(s) => J::from(s.as_str()),
    }
}

/// A name in a [`Scope`]: kept inline up to 24 bytes (every name a profile
/// usually has), so that a held request's scope is one allocation, not one
/// more per parameter.
type Name = compact_str::CompactString;
/// A scope's named values.
type Vars = Vec<(Name, Value)>;
/// A scope's statement results.
type Results = Vec<(Name, Arc<Rows>)>;

/// What templates see: named values (parameters and built-ins) and results.
/// Cheap to clone: both lists are shared until one side changes.
#[derive(Debug, Clone)]
pub struct Scope {
    /// Parameters and built-ins, by name.
    vars: Arc<Vars>,
    /// Values set on this copy while `vars` was shared (the row id a write
    /// inserted, `timed_out`): kept beside, not by copying every value.
    own: Vars,
    /// Statement results, by name.
    results: Arc<Results>,
}

/// The empty lists every new scope starts from (shared: no allocation).
static NO_VARS: std::sync::LazyLock<Arc<Vars>> = std::sync::LazyLock::new(|| Arc::new(Vec::new()));
static NO_RESULTS: std::sync::LazyLock<Arc<Results>> =
    std::sync::LazyLock::new(|| Arc::new(Vec::new()));

impl Default for Scope {
    fn default() -> Scope {
        Scope {
            vars: Arc::clone(&NO_VARS),
            own: Vec::new(),
            results: Arc::clone(&NO_RESULTS),
        }
    }
}

impl Scope {
    /// An empty scope with room for `vars` named values.
    pub fn with_capacity(vars: usize) -> Scope {
        Scope {
            vars: Arc::new(Vec::with_capacity(vars)),
            own: Vec::new(),
            results: Arc::clone(&NO_RESULTS),
        }
    }

    /// A named value.
    pub fn var(&self, name: &str) -> Option<&Value> {
        self.own
            .iter()
            .chain(self.vars.iter())
            .find(|(n, _)| n == name)
            .map(|(_, v)| v)
    }

    /// Sets a named value.
    pub fn set(&mut self, name: &str, v: Value) {
        if self.var(name) == Some(&v) {
            return;
        }
        if let Some(slot) = self.own.iter_mut().find(|(n, _)| n == name) {
            slot.1 = v;
            return;
        }
        match Arc::get_mut(&mut self.vars) {
            Some(vars) => match vars.iter_mut().find(|(n, _)| n == name) {
                Some(slot) => slot.1 = v,
                None => vars.push((Name::from(name), v)),
            },
            // Shared with other copies: this one's own value, in front.
            None => self.own.push((Name::from(name), v)),
        }
    }

    /// Sets a result.
    pub fn set_result(&mut self, name: &str, rows: Arc<Rows>) {
        let results = Arc::make_mut(&mut self.results);
        match results.iter_mut().find(|(n, _)| n == name) {
            Some(slot) => slot.1 = rows,
            None => results.push((Name::from(name), rows)),
        }
    }

    /// A result.
    pub fn result(&self, name: &str) -> Option<&Arc<Rows>> {
        self.results.iter().find(|(n, _)| n == name).map(|(_, r)| r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_set_on_a_copy_is_seen_by_that_copy_alone() {
        let mut first = Scope::with_capacity(2);
        first.set("user", Value::Text("ana".into()));
        first.set("insert_id", Value::Null);
        let mut second = first.clone();
        second.set("insert_id", Value::Int(7));
        second.set("insert_id", Value::Int(8));
        second.set("timed_out", Value::Int(1));
        assert_eq!(second.var("insert_id"), Some(&Value::Int(8)));
        assert_eq!(second.var("timed_out"), Some(&Value::Int(1)));
        assert_eq!(second.var("user"), Some(&Value::Text("ana".into())));
        assert_eq!(first.var("insert_id"), Some(&Value::Null));
        assert_eq!(first.var("timed_out"), None);
        // Templates see the copy's value, each name once.
        let mut env = environment(jiff::tz::TimeZone::UTC);
        env.add_template("t", "{{ insert_id }}/{{ user }}").unwrap();
        assert_eq!(render(&env, "t", &second).unwrap(), "8/ana");
        assert_eq!(render(&env, "t", &first).unwrap(), "/ana");
    }

    #[test]
    fn simple_templates_and_conditions_skip_the_engine_with_the_same_result() {
        let mut scope = Scope::default();
        scope.set("id", Value::Int(7));
        scope.set("user", Value::Text("ana".into()));
        scope.set("none", Value::Null);
        scope.set_result("rows", Arc::new(Rows::default()));
        let env = environment(jiff::tz::TimeZone::UTC);
        let cases = [
            (r#"{"id":{{ id }},"u":"{{user}}"}"#, true),
            ("{{ none }}|{{ id }}", true),
            ("{{ id|json }}", false),
            ("{% if id %}x{% endif %}", false),
        ];
        for (src, fast) in cases {
            let f = Fast::of_template(src);
            assert_eq!(f.is_some(), fast, "{src}");
            if let Some(f) = f {
                let got = f.render(&scope).unwrap();
                let want = env
                    .render_str(src, J::from_object(ScopeObj(scope.clone())))
                    .unwrap();
                assert_eq!(got, want, "{src}");
            }
        }
        for (expr, want) in [
            ("user", "1"),
            ("not user", ""),
            ("none", ""),
            ("not rows", "1"),
            ("rows", ""),
        ] {
            let f = Fast::of_condition(expr).unwrap();
            assert_eq!(f.render(&scope).as_deref(), Some(want), "{expr}");
        }
        assert!(Fast::of_condition("lastId > 0").is_none());
        assert!(
            Fast::of_condition("nope").unwrap().render(&scope).is_none(),
            "unknown names go to the engine"
        );
    }

    #[test]
    fn floats_echo_as_php() {
        // php -r 'echo 0.1+0.2, " ", 1e25, " ", 1.5, " ", 100.0, " ", 0.00001;'
        assert_eq!(php_float(0.1 + 0.2), "0.3");
        assert_eq!(php_float(1e25), "1.0E+25");
        assert_eq!(php_float(1.5), "1.5");
        assert_eq!(php_float(100.0), "100");
        assert_eq!(php_float(0.00001), "1.0E-5");
        assert_eq!(php_float(-2.5e-7), "-2.5E-7");
    }
}

#[derive(Debug)]
struct ScopeObj(Scope);

impl Object for ScopeObj {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Map
    }

    fn get_value(self: &Arc<Self>, key: &J) -> Option<J> {
        let k = key.as_str()?;
        if let Some(rows) = self.0.result(k) {
            return Some(J::from_object(RowsObj(rows.clone())));
        }
        self.0.var(k).map(to_j)
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        let own = &self.0.own;
        let keys: Vec<J> = own
            .iter()
            .chain(
                self.0
                    .vars
                    .iter()
                    .filter(|(n, _)| !own.iter().any(|(o, _)| o == n)),
            )
            .map(|(n, _)| J::from(n.as_str()))
            .chain(self.0.results.iter().map(|(n, _)| J::from(n.as_str())))
            .collect();
        Enumerator::Values(keys)
    }
}

#[derive(Debug)]
struct RowsObj(Arc<Rows>);

impl Object for RowsObj {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Seq
    }

    fn get_value(self: &Arc<Self>, key: &J) -> Option<J> {
        let i = usize::try_from(key.as_i64()?).ok()?;
        (i < self.0.rows.len()).then(|| J::from_object(RowObj(self.0.clone(), i)))
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Seq(self.0.rows.len())
    }
}

#[derive(Debug)]
struct RowObj(Arc<Rows>, usize);

impl Object for RowObj {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Map
    }

    fn get_value(self: &Arc<Self>, key: &J) -> Option<J> {
        let k = key.as_str()?;
        let c = self.0.columns.iter().position(|c| c == k)?;
        Some(to_j(&self.0.rows[self.1][c]))
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Values(self.0.columns.iter().map(|c| J::from(c.as_str())).collect())
    }
}

/// A template or condition simple enough to evaluate without minijinja:
/// literal text with `{{ name }}` holes, or a condition `name` / `not name`.
/// Most of a profile's conditions and many answers are this simple, and
/// they run for every request.
#[derive(Debug, Clone)]
pub enum Fast {
    /// Literal pieces and names, alternating as written.
    Text(Vec<Piece>),
    /// The truth of a name (`negate`: `not name`).
    Cond {
        /// The name.
        name: String,
        /// `not name`.
        negate: bool,
    },
}

/// One piece of a [`Fast::Text`].
#[derive(Debug, Clone)]
pub enum Piece {
    /// Bytes as written.
    Lit(String),
    /// A name, printed as PHP's `echo`.
    Var(String),
}

fn ident(s: &str) -> Option<&str> {
    let s = s.trim();
    let mut b = s.bytes();
    let first = b.next()?;
    ((first.is_ascii_alphabetic() || first == b'_')
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_'))
    .then_some(s)
}

impl Fast {
    /// The fast form of a template source, if it has one.
    pub fn of_template(src: &str) -> Option<Fast> {
        if src.contains("{%") || src.contains("{#") {
            return None;
        }
        let mut pieces = Vec::new();
        let mut rest = src;
        while let Some(open) = rest.find("{{") {
            let close = rest[open..].find("}}")? + open;
            if open > 0 {
                pieces.push(Piece::Lit(rest[..open].to_owned()));
            }
            pieces.push(Piece::Var(ident(&rest[open + 2..close])?.to_owned()));
            rest = &rest[close + 2..];
        }
        if rest.contains("}}") {
            return None;
        }
        if !rest.is_empty() {
            pieces.push(Piece::Lit(rest.to_owned()));
        }
        Some(Fast::Text(pieces))
    }

    /// The fast form of a condition, if it has one.
    pub fn of_condition(expr: &str) -> Option<Fast> {
        let e = expr.trim();
        match e.strip_prefix("not ") {
            Some(rest) => ident(rest).map(|n| Fast::Cond {
                name: n.to_owned(),
                negate: true,
            }),
            None => ident(e).map(|n| Fast::Cond {
                name: n.to_owned(),
                negate: false,
            }),
        }
    }

    /// Renders over `scope`; `None` when a name is not a plain value (the
    /// template engine then decides, errors included).
    pub fn render(&self, scope: &Scope) -> Option<String> {
        match self {
            Fast::Text(pieces) => {
                let mut out = String::new();
                for p in pieces {
                    match p {
                        Piece::Lit(l) => out.push_str(l),
                        Piece::Var(n) => match scope.var(n)? {
                            Value::Null => {}
                            Value::Int(i) => out.push_str(&i.to_string()),
                            Value::Real(r) => out.push_str(&php_float(*r)),
                            Value::Text(t) => out.push_str(t),
                        },
                    }
                }
                Some(out)
            }
            Fast::Cond { name, negate } => {
                let truth = match (scope.var(name), scope.result(name)) {
                    (Some(v), _) => match v {
                        Value::Null => false,
                        Value::Int(i) => *i != 0,
                        Value::Real(r) => *r != 0.0,
                        Value::Text(t) => !t.is_empty(),
                    },
                    (None, Some(rows)) => !rows.rows.is_empty(),
                    (None, None) => return None,
                };
                Some(if truth != *negate {
                    "1".into()
                } else {
                    String::new()
                })
            }
        }
    }
}

/// Renders template `name` over `scope`.
pub fn render(env: &Environment<'static>, name: &str, scope: &Scope) -> Result<String, String> {
    let t = env.get_template(name).map_err(|e| e.to_string())?;
    t.render(J::from_object(ScopeObj(scope.clone())))
        .map_err(|e| format!("{name}: {e}"))
}

/// Evaluates the condition template `name` over `scope`.
pub fn truthy(env: &Environment<'static>, name: &str, scope: &Scope) -> Result<bool, String> {
    render(env, name, scope).map(|s| s == "1")
}

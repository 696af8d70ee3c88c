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
    match v.as_str() {
        Some(s) => timestamp_of(s).map_err(|e| Error::new(ErrorKind::InvalidOperation, e)),
        None => Ok(int_of(v)),
    }
}

/// [`timestamp`] of text.
fn timestamp_of(s: &str) -> Result<i64, String> {
    let s = s.trim();
    if let Ok(i) = s.parse::<i64>() {
        return Ok(i);
    }
    jiff::civil::DateTime::strptime("%Y-%m-%d %H:%M:%S", s)
        .or_else(|_| s.parse::<jiff::civil::DateTime>())
        .and_then(|dt| dt.to_zoned_datetime(jiff::tz::TimeZone::UTC))
        .map(|z| z.timestamp().as_second())
        .map_err(|e| format!("date: {s:?} is not a time: {e}"))
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

/// `json_encode` of a float: serialize_precision = -1, the shortest text
/// that reads back.
fn push_json_float(out: &mut String, f: f64) {
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
            _ => push_json_float(out, f64::try_from(v.clone()).unwrap_or(0.0)),
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
            .find(|(n, _)| n.len() == name.len() && n == name)
            .map(|(_, v)| v)
    }

    /// Adds a value under a name this scope does not have yet (a route's
    /// parameters and the built-ins, each set once: no search first).
    pub fn push_new(&mut self, name: &str, v: Value) {
        match Arc::get_mut(&mut self.vars) {
            Some(vars) => vars.push((Name::from(name), v)),
            None => self.own.push((Name::from(name), v)),
        }
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
            ("{{ id|json }}", true),
            ("{% if id %}x{% endif %}", false),
        ];
        for (src, fast) in cases {
            let f = Fast::of_template(src, &jiff::tz::TimeZone::UTC);
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
        assert!(Fast::of_condition("a > 0 and b or c").is_none());
        assert!(
            Fast::of_condition("nope").unwrap().render(&scope).is_none(),
            "unknown names go to the engine"
        );
    }

    /// Fast and engine, side by side over values of every kind: where the fast
    /// form answers, the engine gives the same bytes; where the engine fails,
    /// the fast form leaves it to the engine.
    #[test]
    fn loops_filters_and_comparisons_skip_the_engine_with_the_same_result() {
        let tz = jiff::tz::TimeZone::get("Europe/Madrid").unwrap();
        let env = environment(tz.clone());
        let pool = [
            Value::Null,
            Value::Int(0),
            Value::Int(-5),
            Value::Int(i64::MAX),
            Value::Real(1.5),
            Value::Real(3.0),
            Value::Real(1e25),
            Value::Real(-0.00001),
            Value::Text(String::new()),
            Value::Text("ana".into()),
            Value::Text("<b>&'\"é😀 x".into()),
            Value::Text("2024-01-02 03:04:05".into()),
            Value::Text("1700000000".into()),
            Value::Text(" 42 ".into()),
            Value::Text("not a time".into()),
            Value::Text("\u{0}tab\there\nline\u{7f}".into()),
        ];
        let classic = "[{% for m in rows %}{% if not loop.first %},{% endif %}{\"id\":{{ m.id }},\"user\":{{ m.user|h|json }},\"message\":{{ m.message|h|json }},\"time\":{{ m.created_at|date(\"Y-m-d H:i:s\")|json }}}{% endfor %}]";
        let typing = "[{% for t in rows %}{% if not loop.first %},{% endif %}{{ t.user|h|json }}{% endfor %}]";
        let templates = [
            classic,
            typing,
            "{% for a in rows %}{% for b in rows %}{{ a.id }}-{{ b.id }}{% if not loop.last %};{% endif %}{% endfor %}{% if loop.last %}.{% endif %}|{{ v }}{% endfor %}",
            "{{ v|json }} {{ v|h }} {{ v|htmlspecialchars|json }} {{ v|date('Y-m-d') }} {{ v }}",
            "{{ v|date(\"D, d M Y H:i:s O\")|json }}",
            "{{ rows }}",
            "{% for m in rows %}{{ m }}{% endfor %}",
            "{% for m in rows %}{{ m.nope }}{% endfor %}",
            "{{ rows[0].id }}|{{ rows[1].user|h|json }}|{{ rows[2].created_at|date('H:i') }}",
            "{{ rows[0].nope }}",
            "{{ v[0].id }}",
        ];
        let conditions = [
            "v",
            "not v",
            "v > 0",
            "v <= 3",
            "v == -5",
            "v != 0 and rows",
            "v or rows",
            "not rows or v",
            "v >= 0 and v < 10 and not rows",
        ];
        let mut fast_used = 0;
        for (n, _) in pool.iter().enumerate() {
            let mut scope = Scope::default();
            scope.set("v", pool[n].clone());
            let rows: Vec<Vec<Value>> = (0..n % 4)
                .map(|r| {
                    (0..4)
                        .map(|c| pool[(n * 7 + r * 5 + c * 3) % pool.len()].clone())
                        .collect()
                })
                .collect();
            let columns: Arc<[String]> = ["id", "user", "message", "created_at"]
                .map(String::from)
                .into();
            scope.set_result("rows", Arc::new(Rows { columns, rows }));
            for src in templates {
                let fast = Fast::of_template(src, &tz);
                let want = env.render_str(src, J::from_object(ScopeObj(scope.clone())));
                match (fast.and_then(|f| f.render(&scope)), want) {
                    (Some(got), Ok(want)) => {
                        fast_used += 1;
                        assert_eq!(got, want, "{src} over {scope:?}");
                    }
                    (Some(got), Err(e)) => panic!("{src}: fast {got:?}, engine {e}"),
                    (None, _) => {}
                }
            }
            for expr in conditions {
                let src = format!("{{% if {expr} %}}1{{% endif %}}");
                let want = env.render_str(&src, J::from_object(ScopeObj(scope.clone())));
                let fast = Fast::of_condition(expr).expect(expr).render(&scope);
                match (fast, want) {
                    (Some(got), Ok(want)) => {
                        fast_used += 1;
                        assert_eq!(got, want, "{expr} over {scope:?}");
                    }
                    (Some(got), Err(e)) => panic!("{expr}: fast {got:?}, engine {e}"),
                    (None, _) => {}
                }
            }
        }
        // The classic chat's answers and conditions take the fast way.
        let mut scope = Scope::default();
        scope.set("lastId", Value::Int(3));
        scope.set_result(
            "rows",
            Arc::new(Rows {
                columns: ["id", "user", "message", "created_at"]
                    .map(String::from)
                    .into(),
                rows: vec![vec![
                    Value::Int(4),
                    Value::Text("ana".into()),
                    Value::Text("hi <b>".into()),
                    Value::Int(1_700_000_000),
                ]],
            }),
        );
        for src in [classic, typing, "{{ rows[0].id }}"] {
            assert!(
                Fast::of_template(src, &tz)
                    .unwrap()
                    .render(&scope)
                    .is_some(),
                "{src}"
            );
        }
        for expr in ["lastId > 0 and not rows", "lastId <= 0"] {
            assert!(
                Fast::of_condition(expr).unwrap().render(&scope).is_some(),
                "{expr}"
            );
        }
        assert!(fast_used > 100, "{fast_used}");
        for src in [
            "{% if id %}x{% endif %}",
            "{{- v }}",
            "{{ v|int }}",
            "{# c #}",
            "{% for m in rows %}",
            "{{ v|date(\"a\\b\") }}",
        ] {
            assert!(Fast::of_template(src, &tz).is_none(), "{src}");
        }
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

/// A template or condition simple enough to evaluate without minijinja, to
/// the same bytes: literal text; `{{ name }}` and `{{ item.column }}` holes,
/// through the filters `h` (`htmlspecialchars`, no flags), `json` and
/// `date("…")`; `{% for item in result %}` loops, and inside them
/// `{% if [not] loop.first %}` / `{% if [not] loop.last %}`. Or a condition:
/// terms `[not] name` or `name OP integer` (`==`, `!=`, `<`, `<=`, `>`, `>=`),
/// joined by `and` or by `or`. Most of a profile's answers and conditions are
/// this simple, and they run for every request and every woken waiter.
/// Anything else, or a value they do not cover (a name that is not a plain
/// value, a comparison of text), goes to minijinja: [`Fast::render`] gives
/// `None`, and the engine decides, errors included.
#[derive(Debug, Clone)]
pub enum Fast {
    /// Pieces, as written.
    Text(Vec<Piece>),
    /// Terms, all true (`and`) or any true (`or`).
    Cond {
        /// Joined by `or`.
        any: bool,
        /// The terms.
        terms: Vec<Term>,
    },
}

/// One piece of a [`Fast::Text`].
#[derive(Debug, Clone)]
pub enum Piece {
    /// Bytes as written.
    Lit(String),
    /// A value through its filters, printed as PHP's `echo`.
    Out(Expr),
    /// `{% for item in rows %}body{% endfor %}`.
    For {
        /// The loop variable.
        item: String,
        /// The result looped over.
        rows: String,
        /// What each row prints.
        body: Vec<Piece>,
    },
    /// `{% if [not] loop.first|loop.last %}body{% endif %}`, in a loop.
    IfLoop {
        /// `loop.last` (else `loop.first`).
        last: bool,
        /// `not`.
        negate: bool,
        /// What it prints when true.
        body: Vec<Piece>,
    },
}

/// `name`, `item.column` or `result[N].column`, and its filters.
#[derive(Debug, Clone)]
pub struct Expr {
    name: String,
    index: Option<usize>,
    field: Option<String>,
    filters: Vec<Filter>,
}

#[derive(Debug, Clone)]
enum Filter {
    /// `h` / `htmlspecialchars`: ENT_QUOTES.
    Html,
    /// `json`.
    Json,
    /// `date(format)`, in the profile's zone.
    Date(String, jiff::tz::TimeZone),
}

/// One term of a [`Fast::Cond`].
#[derive(Debug, Clone)]
pub struct Term {
    name: String,
    negate: bool,
    cmp: Option<(Cmp, i64)>,
}

#[derive(Debug, Clone, Copy)]
enum Cmp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

fn ident(s: &str) -> Option<&str> {
    let s = s.trim();
    let mut b = s.bytes();
    let first = b.next()?;
    ((first.is_ascii_alphabetic() || first == b'_')
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_'))
    .then_some(s)
}

/// `"text"` or `'text'` without escapes: the text.
fn quoted(s: &str) -> Option<&str> {
    let s = s.trim();
    let q = s.chars().next().filter(|c| matches!(c, '"' | '\''))?;
    let inner = s.strip_prefix(q)?.strip_suffix(q)?;
    (!inner.contains(q) && !inner.contains('\\')).then_some(inner)
}

/// `{{ … }}`'s inside: a name or `item.column`, then filters.
fn expr(inner: &str, tz: &jiff::tz::TimeZone) -> Option<Expr> {
    // Split at the `|` outside quotes.
    let mut parts = Vec::new();
    let (mut start, mut quote) = (0, None);
    for (i, c) in inner.char_indices() {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, '|') => {
                parts.push(&inner[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if quote.is_some() {
        return None;
    }
    parts.push(&inner[start..]);
    let (head, filters) = parts.split_first()?;
    let (name, field) = match head.split_once('.') {
        Some((n, f)) => (n, Some(ident(f)?.to_owned())),
        None => (*head, None),
    };
    // `result[N].column`: a row of a result by its index.
    let (name, index) = match name.trim().strip_suffix(']') {
        Some(n) => {
            let (n, i) = n.split_once('[')?;
            if field.is_none() || !i.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            (ident(n)?, Some(i.parse().ok()?))
        }
        None => (ident(name)?, None),
    };
    let filters = filters
        .iter()
        .map(|f| match f.trim() {
            "h" | "htmlspecialchars" => Some(Filter::Html),
            "json" => Some(Filter::Json),
            f => {
                let arg = f
                    .strip_prefix("date")?
                    .trim_start()
                    .strip_prefix('(')?
                    .strip_suffix(')')?;
                Some(Filter::Date(quoted(arg)?.to_owned(), tz.clone()))
            }
        })
        .collect::<Option<Vec<_>>>()?;
    Some(Expr {
        name: name.to_owned(),
        index,
        field,
        filters,
    })
}

/// An open block while parsing.
enum Open {
    For { item: String, rows: String },
    If { last: bool, negate: bool },
}

impl Fast {
    /// The fast form of a template source, if it has one; `tz`: `date`'s zone.
    pub fn of_template(src: &str, tz: &jiff::tz::TimeZone) -> Option<Fast> {
        if src.contains("{#") {
            return None;
        }
        let mut open: Vec<(Open, Vec<Piece>)> = Vec::new();
        let mut cur: Vec<Piece> = Vec::new();
        let mut rest = src;
        let lit = |cur: &mut Vec<Piece>, text: &str| {
            // Stray closers are the engine's to judge.
            if text.contains("}}") || text.contains("%}") {
                return None;
            }
            if !text.is_empty() {
                cur.push(Piece::Lit(text.to_owned()));
            }
            Some(())
        };
        while let Some(at) = [rest.find("{{"), rest.find("{%")]
            .into_iter()
            .flatten()
            .min()
        {
            lit(&mut cur, &rest[..at])?;
            let out = rest[at..].starts_with("{{");
            let end = if out { "}}" } else { "%}" };
            let close = rest[at + 2..].find(end)? + at + 2;
            let inner = &rest[at + 2..close];
            rest = &rest[close + 2..];
            // Whitespace control changes the literal text around: the engine's.
            if inner.starts_with(['-', '+']) || inner.ends_with(['-', '+']) {
                return None;
            }
            if out {
                cur.push(Piece::Out(expr(inner, tz)?));
                continue;
            }
            let words: Vec<&str> = inner.split_whitespace().collect();
            match words.as_slice() {
                ["for", item, "in", rows] => {
                    let block = Open::For {
                        item: ident(item)?.to_owned(),
                        rows: ident(rows)?.to_owned(),
                    };
                    open.push((block, std::mem::take(&mut cur)));
                }
                ["if", cond @ ..] => {
                    let (negate, what) = match cond {
                        ["not", what] => (true, *what),
                        [what] => (false, *what),
                        _ => return None,
                    };
                    let last = match what {
                        "loop.first" => false,
                        "loop.last" => true,
                        _ => return None,
                    };
                    if !open.iter().any(|(o, _)| matches!(o, Open::For { .. })) {
                        return None;
                    }
                    open.push((Open::If { last, negate }, std::mem::take(&mut cur)));
                }
                ["endfor"] => match open.pop()? {
                    (Open::For { item, rows }, outer) => {
                        let body = std::mem::replace(&mut cur, outer);
                        cur.push(Piece::For { item, rows, body });
                    }
                    _ => return None,
                },
                ["endif"] => match open.pop()? {
                    (Open::If { last, negate }, outer) => {
                        let body = std::mem::replace(&mut cur, outer);
                        cur.push(Piece::IfLoop { last, negate, body });
                    }
                    _ => return None,
                },
                _ => return None,
            }
        }
        lit(&mut cur, rest)?;
        open.is_empty().then_some(Fast::Text(cur))
    }

    /// The fast form of a condition, if it has one.
    pub fn of_condition(expr: &str) -> Option<Fast> {
        let e = expr.trim();
        let any = e.contains(" or ");
        if any && e.contains(" and ") {
            return None;
        }
        let terms = e
            .split(if any { " or " } else { " and " })
            .map(term)
            .collect::<Option<Vec<_>>>()?;
        Some(Fast::Cond { any, terms })
    }

    /// Renders over `scope`; `None` when a name is not a plain value (the
    /// template engine then decides, errors included).
    pub fn render(&self, scope: &Scope) -> Option<String> {
        match self {
            Fast::Text(pieces) => {
                let mut out = String::with_capacity(64);
                render_pieces(pieces, scope, &mut Vec::new(), &mut out)?;
                Some(out)
            }
            Fast::Cond { any, terms } => {
                let mut truth = !*any;
                for t in terms {
                    if eval(t, scope)? == *any {
                        truth = *any;
                    }
                }
                Some(if truth { "1".into() } else { String::new() })
            }
        }
    }
}

/// `[not] name` or `name OP integer`.
fn term(s: &str) -> Option<Term> {
    let s = s.trim();
    if let Some(rest) = s.strip_prefix("not ") {
        return Some(Term {
            name: ident(rest)?.to_owned(),
            negate: true,
            cmp: None,
        });
    }
    for (tok, cmp) in [
        ("==", Cmp::Eq),
        ("!=", Cmp::Ne),
        ("<=", Cmp::Le),
        (">=", Cmp::Ge),
        ("<", Cmp::Lt),
        (">", Cmp::Gt),
    ] {
        if let Some((l, r)) = s.split_once(tok) {
            let r = r.trim();
            if !r.bytes().all(|b| b.is_ascii_digit() || b == b'-') {
                return None;
            }
            return Some(Term {
                name: ident(l)?.to_owned(),
                negate: false,
                cmp: Some((cmp, r.parse().ok()?)),
            });
        }
    }
    Some(Term {
        name: ident(s)?.to_owned(),
        negate: false,
        cmp: None,
    })
}

/// A term's truth; `None`: not a plain value (or not an integer to compare).
fn eval(t: &Term, scope: &Scope) -> Option<bool> {
    if let Some((cmp, n)) = t.cmp {
        let Some(Value::Int(i)) = scope.var(&t.name) else {
            return None;
        };
        return Some(match cmp {
            Cmp::Eq => *i == n,
            Cmp::Ne => *i != n,
            Cmp::Lt => *i < n,
            Cmp::Le => *i <= n,
            Cmp::Gt => *i > n,
            Cmp::Ge => *i >= n,
        });
    }
    let truth = match (scope.var(&t.name), scope.result(&t.name)) {
        (Some(v), _) => match v {
            Value::Null => false,
            Value::Int(i) => *i != 0,
            Value::Real(r) => *r != 0.0,
            Value::Text(t) => !t.is_empty(),
        },
        (None, Some(rows)) => !rows.rows.is_empty(),
        (None, None) => return None,
    };
    Some(truth != t.negate)
}

/// The loop a piece is in.
struct Loop<'a> {
    item: &'a str,
    columns: &'a [String],
    row: &'a [Value],
    first: bool,
    last: bool,
}

/// A value on its way through filters.
enum V<'a> {
    Null,
    Int(i64),
    Real(f64),
    Text(std::borrow::Cow<'a, str>),
}

impl<'a> From<&'a Value> for V<'a> {
    fn from(v: &'a Value) -> V<'a> {
        match v {
            Value::Null => V::Null,
            Value::Int(i) => V::Int(*i),
            Value::Real(r) => V::Real(*r),
            Value::Text(t) => V::Text(t.as_str().into()),
        }
    }
}

impl V<'_> {
    /// PHP's `echo`, as [`echo`] prints it.
    fn echo(&self, out: &mut String) {
        use std::fmt::Write as _;
        match self {
            V::Null => {}
            V::Int(i) => {
                let _ = write!(out, "{i}");
            }
            V::Real(r) => out.push_str(&php_float(*r)),
            V::Text(t) => out.push_str(t),
        }
    }
}

fn render_pieces<'a>(
    pieces: &'a [Piece],
    scope: &'a Scope,
    loops: &mut Vec<Loop<'a>>,
    out: &mut String,
) -> Option<()> {
    for p in pieces {
        match p {
            Piece::Lit(l) => out.push_str(l),
            Piece::Out(e) => {
                let mut v = lookup(e, scope, loops)?;
                for f in &e.filters {
                    v = filter(f, v)?;
                }
                v.echo(out);
            }
            Piece::For { item, rows, body } => {
                let r = scope.result(rows)?;
                let n = r.rows.len();
                for (i, row) in r.rows.iter().enumerate() {
                    loops.push(Loop {
                        item,
                        columns: &r.columns,
                        row,
                        first: i == 0,
                        last: i + 1 == n,
                    });
                    render_pieces(body, scope, loops, out)?;
                    loops.pop();
                }
            }
            Piece::IfLoop { last, negate, body } => {
                let l = loops.last()?;
                if (if *last { l.last } else { l.first }) != *negate {
                    render_pieces(body, scope, loops, out)?;
                }
            }
        }
    }
    Some(())
}

/// The value an expression names, as the engine finds it: the innermost loop
/// item of that name, else the scope (a result there is the engine's, but for
/// one of its rows' columns).
fn lookup<'a>(e: &Expr, scope: &'a Scope, loops: &[Loop<'a>]) -> Option<V<'a>> {
    if let Some(i) = e.index {
        if loops.iter().any(|l| l.item == e.name) {
            return None;
        }
        let rows = scope.result(&e.name)?;
        let c = rows
            .columns
            .iter()
            .position(|c| Some(c) == e.field.as_ref())?;
        return rows.rows.get(i).map(|row| V::from(&row[c]));
    }
    if let Some(l) = loops.iter().rev().find(|l| l.item == e.name) {
        let c = l.columns.iter().position(|c| Some(c) == e.field.as_ref())?;
        return Some(V::from(&l.row[c]));
    }
    if e.field.is_some() || scope.result(&e.name).is_some() {
        return None;
    }
    scope.var(&e.name).map(V::from)
}

/// One filter, as the environment's (see [`environment`]).
fn filter<'a>(f: &Filter, v: V<'a>) -> Option<V<'a>> {
    Some(match f {
        Filter::Html => {
            let mut s = String::new();
            v.echo(&mut s);
            let mut out = String::with_capacity(s.len() + 8);
            php::push_htmlspecialchars(&mut out, &s);
            V::Text(out.into())
        }
        Filter::Json => {
            let mut out = String::new();
            match &v {
                V::Null => out.push_str("null"),
                V::Int(i) => out.push_str(&i.to_string()),
                V::Real(r) => push_json_float(&mut out, *r),
                V::Text(t) => php::push_json_string(&mut out, t),
            }
            V::Text(out.into())
        }
        Filter::Date(format, tz) => {
            let t = match &v {
                V::Null => 0,
                V::Int(i) => *i,
                V::Real(r) => *r as i64,
                V::Text(t) => timestamp_of(t).ok()?,
            };
            V::Text(php::date(format, t, tz).into())
        }
    })
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

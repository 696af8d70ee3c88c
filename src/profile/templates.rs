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

/// What templates see: named values (parameters and built-ins) and results.
#[derive(Debug, Default, Clone)]
pub struct Scope {
    /// Parameters and built-ins, by name.
    pub vars: Vec<(String, Value)>,
    /// Statement results, by name.
    pub results: Vec<(String, Arc<Rows>)>,
}

impl Scope {
    /// A named value.
    pub fn var(&self, name: &str) -> Option<&Value> {
        self.vars
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v)
    }

    /// Sets a named value.
    pub fn set(&mut self, name: &str, v: Value) {
        match self.vars.iter_mut().find(|(n, _)| n == name) {
            Some(slot) => slot.1 = v,
            None => self.vars.push((name.to_owned(), v)),
        }
    }

    /// Sets a result.
    pub fn set_result(&mut self, name: &str, rows: Arc<Rows>) {
        match self.results.iter_mut().find(|(n, _)| n == name) {
            Some(slot) => slot.1 = rows,
            None => self.results.push((name.to_owned(), rows)),
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
        let keys: Vec<J> = self
            .0
            .vars
            .iter()
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

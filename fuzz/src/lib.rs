//! The fuzz targets of cometa's PHP layer (`src/php.rs`), each a function of
//! the fuzzer's bytes that panics on a crash or on a mismatch with a simple
//! model. `fuzz_targets/*.rs` hand them to libFuzzer (`cargo fuzz run NAME`);
//! the main crate's `tests/fuzz_smoke.rs` includes this very file and drives
//! the same functions with a deterministic generator on the stable toolchain.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use cometa::php::{self, Param};

/// A target: it panics on a crash or a mismatch.
pub type Target = fn(&[u8]);

/// The targets by name.
pub const TARGETS: &[(&str, Target)] = &[
    ("php_params", php_params),
    ("int_cast", int_cast),
    ("json_string", json_string),
    ("htmlspecialchars", htmlspecialchars),
    ("profile_load", profile_load),
];

/// The profile loader and renderer: any text as a profile file never panics
/// the loader, the check against its schema, or the rendering of its
/// answers over parameters made of the same bytes; a profile that loads has
/// its errors named by file. (The classic answer against a model of
/// `json_encode(htmlspecialchars(…))`: `tests/profile_fuzz.rs`.)
pub fn profile_load(data: &[u8]) {
    use cometa::profile::templates::Scope;
    use cometa::profile::{self, Profile, Value};
    let source = text(data);
    let tz = jiff::tz::TimeZone::UTC;
    match Profile::parse_text("fuzz.toml", &source, &tz) {
        Err(e) => assert_eq!(e.file, "fuzz.toml"),
        Ok(mut p) => {
            if let Ok(checker) = cometa::store::Checker::memory(cometa::store::Schema {
                app: &p.schema,
                extra: &p.extra_sql,
                topics: &p.topics,
            }) {
                let _ = p.check_sql(|sql| checker.prepare(sql));
            }
            let mut scope = Scope::default();
            for (i, prm) in p.params.iter().enumerate() {
                let v = match data.get(i) {
                    Some(b) if b % 2 == 0 => Value::Int(i64::from(*b)),
                    _ => Value::Text(source.chars().take(i * 3).collect()),
                };
                scope.set(&prm.name, v);
            }
            for b in profile::BUILTIN_VARS {
                scope.set(b, Value::Int(1));
            }
            for a in &p.answers {
                let _ = p.render(&a.template, &scope);
            }
        }
    }
}

/// The bytes as text: as they are when they are UTF-8, else lossily.
fn text(data: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(data)
}

// ---------------------------------------------------------------------------
// $_REQUEST
// ---------------------------------------------------------------------------

/// Names the structured half picks from: plain names PHP does not mangle.
const NAMES: &[&str] = &["user", "message", "room", "lastId", "a", "typing"];

/// `$_REQUEST` from a query string and a form body.
///
/// Any bytes, as query and as body: no panic, and every lookup answers. Then
/// a structured request decoded from the same bytes (pieces of a known name,
/// source and value, each value percent-encoded) against the model: the last
/// piece of a name wins, the body over the query, a value is its decoded
/// bytes as text, or invalid when they are not UTF-8, and pieces past PHP's
/// `max_input_vars` are not read.
pub fn php_params(data: &[u8]) {
    let raw = text(data);
    let req = php::Request::parse(Some(&raw), Some(data));
    for name in NAMES {
        let _ = req.get(name);
    }
    if let Some(split) = data.iter().position(|&b| b == b'?') {
        let query = text(&data[..split]);
        let req = php::Request::parse(Some(&query), Some(&data[split + 1..]));
        let _ = req.get("user");
    }

    let mut query = Vec::new();
    let mut body = Vec::new();
    let mut model_query: BTreeMap<&str, Vec<u8>> = BTreeMap::new();
    let mut model_body: BTreeMap<&str, Vec<u8>> = BTreeMap::new();
    let mut rest = data;
    // PHP's max_input_vars (1000): the query's first 1,000 pieces count, the
    // body's first 1,001 (its check runs after a piece is registered).
    let (mut in_query, mut in_body) = (0, 0);
    while let [head, len, tail @ ..] = rest {
        let name = NAMES[usize::from(head % NAMES.len() as u8)];
        let n = usize::from(len % 24).min(tail.len());
        let (value, after) = tail.split_at(n);
        rest = after;
        let piece = format!("{name}={}", encode(value, head & 0x40 != 0));
        if head & 0x80 != 0 {
            body.push(piece);
            in_body += 1;
            if in_body <= 1001 {
                model_body.insert(name, value.to_vec());
            }
        } else {
            query.push(piece);
            in_query += 1;
            if in_query <= 1000 {
                model_query.insert(name, value.to_vec());
            }
        }
    }
    let query = query.join("&");
    let body = body.join("&");
    let req = php::Request::parse(Some(&query), Some(body.as_bytes()));
    for name in NAMES {
        let want = match model_body.get(name).or_else(|| model_query.get(name)) {
            None => Param::Absent,
            Some(v) => match String::from_utf8(v.clone()) {
                Ok(s) => Param::Text(s),
                Err(e) => Param::InvalidUtf8(String::from_utf8_lossy(e.as_bytes()).into_owned()),
            },
        };
        assert_eq!(
            *req.get(name),
            want,
            "{name:?} of query {query:?} and body {body:?}"
        );
    }
}

/// Percent-encodes every byte but letters and digits; a space as `+` when `plus`.
fn encode(value: &[u8], plus: bool) -> String {
    let mut out = String::new();
    for &b in value {
        if b.is_ascii_alphanumeric() {
            out.push(char::from(b));
        } else if b == b' ' && plus {
            out.push('+');
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

// ---------------------------------------------------------------------------
// (int)
// ---------------------------------------------------------------------------

/// PHP's `(int)` of a string, against a model written from PHP's grammar of a
/// numeric prefix; plus: every `i64` round-trips through its decimal text,
/// and a letter after the number changes nothing.
pub fn int_cast(data: &[u8]) {
    let s = text(data);
    let got = php::int_cast(&s);
    assert_eq!(got, int_model(&s), "(int) {s:?}");
    assert_eq!(php::int_cast(&format!("{s}x")), got, "(int) {s:?} . 'x'");
    if let Some(bytes) = data.get(..8) {
        let n = i64::from_le_bytes(bytes.try_into().unwrap_or_default());
        assert_eq!(php::int_cast(&n.to_string()), n);
        assert_eq!(php::int_cast(&format!(" \t\n{n}  ")), n);
    }
}

/// `(int)$s`: leading white space, then the longest prefix of the form
/// `[+-]? (D+ ('.' D*)? | '.' D+) ([eE] [+-]? D+)?`; a fraction or an
/// exponent makes it a float, cast with saturation (infinity is 0); an
/// integer saturates; no numeric prefix is 0.
fn int_model(s: &str) -> i64 {
    let t = s.trim_start_matches([' ', '\t', '\n', '\r', '\x0b', '\x0c']);
    let b = t.as_bytes();
    let digits = |from: usize| b[from..].iter().take_while(|c| c.is_ascii_digit()).count();
    let mut i = usize::from(matches!(b.first(), Some(b'+' | b'-')));
    let int_start = i;
    let int_len = digits(i);
    i += int_len;
    let mut float = false;
    if b.get(i) == Some(&b'.') {
        let frac = digits(i + 1);
        if int_len + frac > 0 {
            float = true;
            i += 1 + frac;
        }
    }
    if int_len == 0 && !float {
        return 0;
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        let sign = usize::from(matches!(b.get(i + 1), Some(b'+' | b'-')));
        let exp = digits(i + 1 + sign);
        if exp > 0 {
            float = true;
            i += 1 + sign + exp;
        }
    }
    if float {
        let f: f64 = t[..i].parse().expect("a float literal");
        return if f.is_finite() { f as i64 } else { 0 };
    }
    let mut v: i128 = 0;
    for d in &b[int_start..int_start + int_len] {
        v = (v * 10 + i128::from(d - b'0')).min(i128::from(u64::MAX));
    }
    if b[0] == b'-' {
        v = -v;
    }
    v.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
}

// ---------------------------------------------------------------------------
// json_encode, htmlspecialchars
// ---------------------------------------------------------------------------

/// `json_encode` of a string, against a per-character model; and the answer is
/// ASCII without control characters, and decodes back to the string.
pub fn json_string(data: &[u8]) {
    let s = text(data);
    let mut got = String::from("prefix:");
    php::push_json_string(&mut got, &s);
    let got = got.strip_prefix("prefix:").expect("appended");
    assert_eq!(got, json_model(&s), "json_encode({s:?})");
    assert!(
        got.is_ascii() && !got.contains(|c: char| c < ' '),
        "{got:?}"
    );
    assert_eq!(
        json_decode(got).as_deref(),
        Some(&*s),
        "round trip of {got:?}"
    );
}

/// `json_encode($s)` with default flags, one character at a time.
fn json_model(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '/' => out.push_str("\\/"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            ' '..='\u{7f}' => out.push(c),
            _ => {
                for unit in c.encode_utf16(&mut [0; 2]) {
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
        }
    }
    out.push('"');
    out
}

/// A JSON string literal's value; `None` when it is not one.
fn json_decode(lit: &str) -> Option<String> {
    let inner = lit.strip_prefix('"')?.strip_suffix('"')?;
    let mut units: Vec<u16> = Vec::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            units.extend(c.encode_utf16(&mut [0; 2]).iter());
            continue;
        }
        let unit = match chars.next()? {
            '"' => 0x22,
            '\\' => 0x5c,
            '/' => 0x2f,
            'b' => 8,
            'f' => 0xc,
            'n' => 0xa,
            'r' => 0xd,
            't' => 9,
            'u' => {
                let hex: String = chars.by_ref().take(4).collect();
                u16::from_str_radix(&hex, 16).ok()?
            }
            _ => return None,
        };
        units.push(unit);
    }
    String::from_utf16(&units).ok()
}

/// `htmlspecialchars($s, ENT_QUOTES, 'UTF-8')` against chained replacements
/// (`&` first, so that no entity is escaped twice).
pub fn htmlspecialchars(data: &[u8]) {
    let s = text(data);
    let mut got = String::from("<kept>");
    php::push_htmlspecialchars(&mut got, &s);
    let want = s
        .replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('\'', "&#039;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    assert_eq!(
        got.strip_prefix("<kept>"),
        Some(&*want),
        "htmlspecialchars({s:?})"
    );
}

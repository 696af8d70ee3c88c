//! PHP 8.2 behaviour the legacy chat relies on, reproduced byte for byte:
//! `$_REQUEST` parsing, `trim()`, `(int)` casts, `mb_strlen()`,
//! `htmlspecialchars(ENT_QUOTES)`, `json_encode()` of strings and
//! `date('Y-m-d H:i:s')`. Every expectation in the tests was checked against
//! the PHP 8.2 CLI and its built-in web server (`php -S`) with the default
//! `php.ini-production` settings (`request_order = "GP"`,
//! `max_input_vars = 1000`, `max_input_nesting_level = 64`).

use std::fmt::Write as _;

use jiff::Timestamp;
use jiff::tz::TimeZone;
use percent_encoding::percent_decode;

/// PHP's default `max_input_vars`.
const MAX_INPUT_VARS: usize = 1000;
/// PHP's default `max_input_nesting_level`.
const MAX_INPUT_NESTING_LEVEL: usize = 64;

/// One parameter as PHP's $_REQUEST would hold it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Param {
    /// Not in the request (or dropped by PHP's input limits).
    Absent,
    /// A scalar value: percent-decoded, valid UTF-8, not trimmed.
    Text(String),
    /// `name[]=…` / `name[key]=…`: PHP made it an array (its contents are not kept).
    Array,
    /// A scalar value whose percent-decoded bytes are not valid UTF-8; kept
    /// as text with U+FFFD for each bad sequence (for readers that do not refuse it).
    InvalidUtf8(String),
}

/// What a lookup of a name nobody sent finds.
static ABSENT: Param = Param::Absent;

/// One registered variable of one source; `Param::Absent` marks a deletion
/// (PHP removes a variable whose brackets nest too deep).
#[derive(Debug, Clone)]
struct Entry {
    name: String,
    value: Param,
}

/// PHP's $_REQUEST: query string plus urlencoded body (body wins; last duplicate wins).
#[derive(Debug, Default, Clone)]
pub struct Request {
    /// `$_GET`, in registration order (later entries override earlier ones).
    query: Vec<Entry>,
    /// `$_POST`, in registration order (later entries override earlier ones).
    body: Vec<Entry>,
}

impl Request {
    /// `query`: raw query string without '?'; `form_body`: raw body bytes, only passed when the Content-Type is application/x-www-form-urlencoded.
    ///
    /// PHP itself only reads a form body on `POST`; passing the body of any
    /// other method is the caller's decision.
    pub fn parse(query: Option<&str>, form_body: Option<&[u8]>) -> Request {
        let mut req = Request::default();
        if let Some(q) = query {
            // php_default_treat_data: strtok() skips empty pieces; the
            // 1001st piece stops the parse.
            for piece in q
                .as_bytes()
                .split(|&b| b == b'&')
                .filter(|p| !p.is_empty())
                .take(MAX_INPUT_VARS)
            {
                register(&mut req.query, piece);
            }
        }
        if let Some(body) = form_body {
            // php_std_post_handler: every piece counts, empty ones too, a
            // trailing '&' opens no piece, and the check runs *after* a
            // piece is registered, so 1001 pieces get in.
            if !body.is_empty() {
                let body = body.strip_suffix(b"&").unwrap_or(body);
                for piece in body.split(|&b| b == b'&').take(MAX_INPUT_VARS + 1) {
                    register(&mut req.body, piece);
                }
            }
        }
        req
    }

    /// `$_COOKIE` from a `Cookie` header: `;`-separated pieces, leading
    /// spaces skipped, names and values decoded as in a query string.
    pub fn parse_cookies(header: &[u8]) -> Request {
        let mut req = Request::default();
        for piece in header.split(|&b| b == b';').take(MAX_INPUT_VARS) {
            let start = piece.iter().take_while(|&&b| b == b' ').count();
            if start < piece.len() {
                register(&mut req.query, &piece[start..]);
            }
        }
        req
    }

    /// `$_GET[name]`.
    pub fn from_query(&self, name: &str) -> &Param {
        find(&self.query, name).unwrap_or(&ABSENT)
    }

    /// `$_POST[name]`.
    pub fn from_body(&self, name: &str) -> &Param {
        find(&self.body, name).unwrap_or(&ABSENT)
    }

    /// `$_REQUEST[name]`: looks up a parameter by its exact name.
    pub fn get(&self, name: &str) -> &Param {
        match find(&self.body, name) {
            Some(p @ (Param::Text(_) | Param::Array | Param::InvalidUtf8(_))) => p,
            // Not in the body, or deleted from $_POST only: $_GET's value stays.
            Some(Param::Absent) | None => find(&self.query, name).unwrap_or(&ABSENT),
        }
    }
}

/// The last entry registered under `name` in one source.
fn find<'a>(entries: &'a [Entry], name: &str) -> Option<&'a Param> {
    entries
        .iter()
        .rev()
        .find(|e| e.name == name)
        .map(|e| &e.value)
}

/// PHP's `php_url_decode`: `+` is a space, `%XX` a byte, a malformed `%` stays.
fn url_decode(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len());
    for (i, part) in raw.split(|&b| b == b'+').enumerate() {
        if i > 0 {
            out.push(b' ');
        }
        out.extend(percent_decode(part));
    }
    out
}

/// What a decoded variable name registers, after PHP's name mangling.
enum Target {
    /// A scalar under this (mangled) name.
    Plain(Vec<u8>),
    /// The base name becomes an array.
    Array(Vec<u8>),
    /// Nesting deeper than `max_input_nesting_level`: the base name is removed.
    Delete(Vec<u8>),
}

/// Whether `b` is one of the bytes PHP turns into `_` in a variable name.
fn mangled(b: u8) -> bool {
    b == b' ' || b == b'.'
}

/// PHP's `php_register_variable_ex` name handling, on a decoded name.
fn target(mut name: Vec<u8>) -> Option<Target> {
    // C string: the name ends at the first NUL.
    if let Some(nul) = name.iter().position(|&b| b == 0) {
        name.truncate(nul);
    }
    let lead = name.iter().take_while(|&&b| b == b' ').count();
    name.drain(..lead);
    let open = name.iter().position(|&b| b == b'[');
    let base_len = open.unwrap_or(name.len());
    if base_len == 0 {
        return None;
    }
    for b in &mut name[..base_len] {
        if mangled(*b) {
            *b = b'_';
        }
    }
    let Some(open) = open else {
        return Some(Target::Plain(name));
    };
    let mut bracket = open;
    let mut level = 0;
    loop {
        level += 1;
        if level > MAX_INPUT_NESTING_LEVEL {
            name.truncate(base_len);
            return Some(Target::Delete(name));
        }
        match name[bracket + 1..].iter().position(|&b| b == b']') {
            None if level == 1 => {
                // Not an index: the '[' and every later ' ', '.', '[' become '_'.
                for b in &mut name[open..] {
                    if mangled(*b) || *b == b'[' {
                        *b = b'_';
                    }
                }
                return Some(Target::Plain(name));
            }
            None => break,
            Some(close) => {
                let next = bracket + 1 + close + 1;
                if name.get(next) == Some(&b'[') {
                    bracket = next;
                } else {
                    break;
                }
            }
        }
    }
    name.truncate(base_len);
    Some(Target::Array(name))
}

/// Registers one `name=value` piece into one source, as PHP does.
fn register(entries: &mut Vec<Entry>, piece: &[u8]) {
    let (raw_name, raw_value) = match piece.iter().position(|&b| b == b'=') {
        Some(eq) => (&piece[..eq], &piece[eq + 1..]),
        None => (piece, &[][..]),
    };
    let Some(target) = target(url_decode(raw_name)) else {
        return;
    };
    let (name, value) = match target {
        Target::Plain(name) => {
            let value = match String::from_utf8(url_decode(raw_value)) {
                Ok(text) => Param::Text(text),
                Err(e) => Param::InvalidUtf8(String::from_utf8_lossy(e.as_bytes()).into_owned()),
            };
            (name, value)
        }
        Target::Array(name) => (name, Param::Array),
        Target::Delete(name) => (name, Param::Absent),
    };
    let name = match String::from_utf8(name) {
        Ok(name) => name,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    };
    entries.push(Entry { name, value });
}

/// Whether PHP reads a POST body with this `Content-Type` into `$_POST` (and so
/// `$_REQUEST`): SAPI lower-cases the value, cuts it at the first `;`, `,` or
/// space, and compares the rest with `application/x-www-form-urlencoded` (a tab
/// is not a cut, so `…urlencoded\t;charset=x` is not a form).
pub fn is_form_content_type(value: &[u8]) -> bool {
    let media_type = value
        .split(|&b| matches!(b, b';' | b',' | b' '))
        .next()
        .unwrap_or_default();
    media_type.eq_ignore_ascii_case(b"application/x-www-form-urlencoded")
}

/// PHP's trim(): strips " \t\n\r\0\x0B" from both ends.
pub fn trim(s: &str) -> &str {
    s.trim_matches(|c| matches!(c, ' ' | '\t' | '\n' | '\r' | '\0' | '\x0B'))
}

/// PHP's (int) cast of a string (PHP 8 rules: leading whitespace, numeric prefix, exponent, saturation on overflow, "abc" -> 0).
pub fn int_cast(s: &str) -> i64 {
    let b = s.as_bytes();
    let digit_at = |i: usize| b.get(i).is_some_and(u8::is_ascii_digit);
    let skip_digits = |mut i: usize| {
        while digit_at(i) {
            i += 1;
        }
        i
    };
    // is_numeric_string: leading " \t\n\r\v\f".
    let start = b
        .iter()
        .position(|&c| !matches!(c, b' ' | b'\t' | b'\n' | b'\r' | 0x0B | 0x0C))
        .unwrap_or(b.len());
    let mut i = start;
    let negative = b.get(i) == Some(&b'-');
    if matches!(b.get(i), Some(b'-' | b'+')) {
        i += 1;
    }
    let int_start = i;
    let mut is_float = false;
    if digit_at(i) {
        i = skip_digits(i);
        if b.get(i) == Some(&b'.') {
            is_float = true;
            i = skip_digits(i + 1);
        }
    } else if b.get(i) == Some(&b'.') && digit_at(i + 1) {
        is_float = true;
        i = skip_digits(i + 1);
    } else {
        return 0;
    }
    let int_end = if is_float { int_start } else { i };
    // An exponent counts only when a digit follows `e`, `e+` or `e-`.
    if matches!(b.get(i), Some(b'e' | b'E')) {
        let exp_digits = if matches!(b.get(i + 1), Some(b'+' | b'-')) {
            i + 2
        } else {
            i + 1
        };
        if digit_at(exp_digits) {
            is_float = true;
            i = skip_digits(exp_digits);
        }
    }
    if is_float {
        // zend_strtod (correctly rounded, as is Rust's parser), then
        // zend_dval_to_lval_cap: infinity is 0, out of range saturates.
        let value: f64 = s[start..i].parse().unwrap_or(0.0);
        return if value.is_finite() { value as i64 } else { 0 };
    }
    // An integer: too many digits goes through a double in PHP, which
    // always lands out of range, so plain saturation is the same answer.
    let magnitude = b[int_start..int_end].iter().fold(0u64, |acc, &d| {
        acc.saturating_mul(10).saturating_add(u64::from(d - b'0'))
    });
    if negative {
        0i64.checked_sub_unsigned(magnitude).unwrap_or(i64::MIN)
    } else {
        i64::try_from(magnitude).unwrap_or(i64::MAX)
    }
}

/// mb_strlen in UTF-8: code points.
pub fn mb_strlen(s: &str) -> usize {
    s.chars().count()
}

/// htmlspecialchars($s, ENT_QUOTES, 'UTF-8'), appended to out.
pub fn push_htmlspecialchars(out: &mut String, s: &str) {
    let mut start = 0;
    for (i, b) in s.bytes().enumerate() {
        let entity = match b {
            b'&' => "&amp;",
            b'"' => "&quot;",
            b'\'' => "&#039;",
            b'<' => "&lt;",
            b'>' => "&gt;",
            _ => continue,
        };
        out.push_str(&s[start..i]);
        out.push_str(entity);
        start = i + 1;
    }
    out.push_str(&s[start..]);
}

/// Appends `\uXXXX` with lowercase hex digits, as PHP's JSON encoder writes it.
fn push_u_escape(out: &mut String, unit: u16) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push_str("\\u");
    for shift in [12, 8, 4, 0] {
        out.push(char::from(HEX[usize::from((unit >> shift) & 0xF)]));
    }
}

/// json_encode of a string with default flags (quotes included), appended to out: `/` as `\/`, non-ASCII as lowercase \uXXXX, astral chars as surrogate pairs, control chars as PHP writes them.
pub fn push_json_string(out: &mut String, s: &str) {
    out.reserve(s.len() + 2);
    out.push('"');
    let mut start = 0;
    for (i, c) in s.char_indices() {
        let short = match c {
            '"' => "\\\"",
            '\\' => "\\\\",
            '/' => "\\/",
            '\u{8}' => "\\b",
            '\u{c}' => "\\f",
            '\n' => "\\n",
            '\r' => "\\r",
            '\t' => "\\t",
            // Everything else printable in ASCII, DEL included, goes as is.
            ' '..='\u{7f}' => continue,
            _ => "",
        };
        out.push_str(&s[start..i]);
        start = i + c.len_utf8();
        if short.is_empty() {
            let mut units = [0u16; 2];
            for &unit in c.encode_utf16(&mut units).iter() {
                push_u_escape(out, unit);
            }
        } else {
            out.push_str(short);
        }
    }
    out.push_str(&s[start..]);
    out.push('"');
}

/// Seconds in 400 Gregorian years, the period of both the calendar and of
/// the POSIX rules that time zones follow past their last transition.
const GREGORIAN_CYCLE_SECONDS: i128 = 146_097 * 86_400;

/// The zone's UTC offset in seconds at `unix_seconds`, for any `i64`.
///
/// Instants outside jiff's range are moved by whole 400-year cycles into it:
/// far in the future that keeps the zone's DST rule (as PHP applies it), far
/// in the past every zone is on its constant first offset (LMT) anyway.
fn utc_offset(unix_seconds: i64, tz: &TimeZone) -> i64 {
    let min = i128::from(Timestamp::MIN.as_second());
    let max = i128::from(Timestamp::MAX.as_second());
    let t = i128::from(unix_seconds);
    let shifted = if t > max {
        t - (t - max + GREGORIAN_CYCLE_SECONDS - 1) / GREGORIAN_CYCLE_SECONDS
            * GREGORIAN_CYCLE_SECONDS
    } else if t < min {
        t + (min - t + GREGORIAN_CYCLE_SECONDS - 1) / GREGORIAN_CYCLE_SECONDS
            * GREGORIAN_CYCLE_SECONDS
    } else {
        t
    };
    i64::try_from(shifted)
        .ok()
        .and_then(|s| Timestamp::from_second(s).ok())
        .map_or(0, |ts| i64::from(tz.to_offset(ts).seconds()))
}

/// Proleptic Gregorian (year, month, day) of a day count from 1970-01-01,
/// with a year 0 (astronomical numbering, as PHP prints it).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    // Both are small and positive by construction.
    (year, month as u32, day as u32)
}

/// date('Y-m-d H:i:s', $unix_seconds) in the given zone.
pub fn date_ymd_his(unix_seconds: i64, tz: &TimeZone) -> String {
    let local = i128::from(unix_seconds) + i128::from(utc_offset(unix_seconds, tz));
    // |local| < 2^64, so the day count fits an i64 with room to spare.
    let days = local.div_euclid(86_400) as i64;
    let secs = local.rem_euclid(86_400) as u32;
    let (year, month, day) = civil_from_days(days);
    let mut out = String::with_capacity(20);
    // 'Y': at least four digits, '-' before years before year 0.
    let sign = if year < 0 { "-" } else { "" };
    let _ = write!(
        out,
        "{sign}{:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        year.unsigned_abs(),
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    );
    out
}

/// PHP's `date($format, $unix_seconds)` in the given zone: every format
/// character of PHP 8.2 except `B` (Swatch time) and `X`/`x`; a backslash
/// escapes the next character; anything else is copied.
pub fn date(format: &str, unix_seconds: i64, tz: &TimeZone) -> String {
    if format == "Y-m-d H:i:s" {
        return date_ymd_his(unix_seconds, tz);
    }
    let Ok(ts) = Timestamp::from_second(unix_seconds) else {
        return date_ymd_his(unix_seconds, tz);
    };
    let z = ts.to_zoned_datetime(tz.clone());
    let mut out = String::with_capacity(format.len() * 2);
    const DAYS: [&str; 7] = [
        "Monday",
        "Tuesday",
        "Wednesday",
        "Thursday",
        "Friday",
        "Saturday",
        "Sunday",
    ];
    const MONTHS: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    let dow = z.weekday().to_monday_zero_offset() as usize;
    let month = z.month() as usize;
    let hour = z.hour();
    let offset = z.offset().seconds();
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        let _ = match c {
            'd' => write!(out, "{:02}", z.day()),
            'D' => write!(out, "{}", &DAYS[dow][..3]),
            'j' => write!(out, "{}", z.day()),
            'l' => write!(out, "{}", DAYS[dow]),
            'N' => write!(out, "{}", dow + 1),
            'S' => write!(
                out,
                "{}",
                match z.day() {
                    1 | 21 | 31 => "st",
                    2 | 22 => "nd",
                    3 | 23 => "rd",
                    _ => "th",
                }
            ),
            'w' => write!(out, "{}", (dow + 1) % 7),
            'z' => write!(out, "{}", z.day_of_year() - 1),
            'W' => write!(out, "{:02}", z.date().iso_week_date().week()),
            'o' => write!(out, "{}", z.date().iso_week_date().year()),
            'F' => write!(out, "{}", MONTHS[month - 1]),
            'M' => write!(out, "{}", &MONTHS[month - 1][..3]),
            'm' => write!(out, "{month:02}"),
            'n' => write!(out, "{month}"),
            't' => write!(out, "{}", z.days_in_month()),
            'L' => write!(out, "{}", u8::from(z.in_leap_year())),
            'Y' => write!(out, "{:04}", z.year()),
            'y' => write!(out, "{:02}", z.year().rem_euclid(100)),
            'a' => write!(out, "{}", if hour < 12 { "am" } else { "pm" }),
            'A' => write!(out, "{}", if hour < 12 { "AM" } else { "PM" }),
            'g' => write!(out, "{}", (hour + 11) % 12 + 1),
            'G' => write!(out, "{hour}"),
            'h' => write!(out, "{:02}", (hour + 11) % 12 + 1),
            'H' => write!(out, "{hour:02}"),
            'i' => write!(out, "{:02}", z.minute()),
            's' => write!(out, "{:02}", z.second()),
            'u' => write!(out, "000000"),
            'v' => write!(out, "000"),
            'e' => write!(out, "{}", tz.iana_name().unwrap_or("UTC")),
            'I' => write!(out, "{}", u8::from(tz.to_offset_info(ts).dst().is_dst())),
            'O' | 'P' | 'p' => {
                if c == 'p' && offset == 0 {
                    write!(out, "Z")
                } else {
                    let sign = if offset < 0 { '-' } else { '+' };
                    let a = offset.unsigned_abs();
                    let sep = if c == 'O' { "" } else { ":" };
                    write!(out, "{sign}{:02}{sep}{:02}", a / 3600, a / 60 % 60)
                }
            }
            'T' => write!(out, "{}", tz.to_offset_info(ts).abbreviation()),
            'Z' => write!(out, "{offset}"),
            'U' => write!(out, "{unix_seconds}"),
            'c' => write!(out, "{}", date("Y-m-d\\TH:i:sP", unix_seconds, tz)),
            'r' => write!(out, "{}", date("D, d M Y H:i:s O", unix_seconds, tz)),
            '\\' => {
                if let Some(next) = chars.next() {
                    out.push(next);
                }
                Ok(())
            }
            other => {
                out.push(other);
                Ok(())
            }
        };
    }
    out
}

/// PHP's `substr($s, $start, $length)` on bytes; a cut inside a character
/// leaves U+FFFD, as a browser shows PHP's broken byte.
pub fn substr(s: &str, start: i64, length: Option<i64>) -> String {
    let n = i64::try_from(s.len()).unwrap_or(i64::MAX);
    let from = if start < 0 {
        (n + start).max(0)
    } else {
        start.min(n)
    };
    let to = match length {
        None => n,
        Some(l) if l < 0 => (n + l).max(from),
        Some(l) => from.saturating_add(l).min(n),
    };
    if to <= from {
        return String::new();
    }
    String::from_utf8_lossy(&s.as_bytes()[from as usize..to as usize]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> Param {
        Param::Text(s.to_owned())
    }

    fn query(q: &str) -> Request {
        Request::parse(Some(q), None)
    }

    fn json(s: &str) -> String {
        let mut out = String::new();
        push_json_string(&mut out, s);
        out
    }

    fn html(s: &str) -> String {
        let mut out = String::new();
        push_htmlspecialchars(&mut out, s);
        out
    }

    fn zone(name: &str) -> TimeZone {
        TimeZone::get(name).unwrap()
    }

    // ---- $_REQUEST ----------------------------------------------------------

    #[test]
    fn form_content_types() {
        // php -S, POST user=a: which of these fill $_POST.
        for ct in [
            "application/x-www-form-urlencoded",
            "APPLICATION/X-WWW-FORM-URLENCODED",
            "application/x-www-form-urlencoded; charset=UTF-8",
            "application/x-www-form-urlencoded;charset=UTF-8",
            "application/x-www-form-urlencoded,text/plain",
            "application/x-www-form-urlencoded charset=UTF-8",
            "application/x-www-form-urlencoded ",
        ] {
            assert!(is_form_content_type(ct.as_bytes()), "{ct:?}");
        }
        for ct in [
            "",
            "application/x-www-form-urlencoded\t;charset=UTF-8",
            "application/x-www-form-urlencodedx",
            "application/x-www-form",
            " application/x-www-form-urlencoded",
            "text/plain",
            "multipart/form-data; boundary=x",
        ] {
            assert!(!is_form_content_type(ct.as_bytes()), "{ct:?}");
        }
    }

    #[test]
    fn request_empty() {
        let r = Request::default();
        assert_eq!(*r.get("user"), Param::Absent);
        let r = Request::parse(None, None);
        assert_eq!(*r.get("user"), Param::Absent);
        let r = Request::parse(Some(""), Some(b""));
        assert_eq!(*r.get(""), Param::Absent);
    }

    #[test]
    fn request_basic_pairs() {
        // php: ?a=1&b&c=x+y%20z&a=b=c -> a='b=c', b='', c='x y z'
        let r = query("a=1&b&c=x+y%20z&d=b=c&e=");
        assert_eq!(*r.get("a"), text("1"));
        assert_eq!(*r.get("b"), text(""));
        assert_eq!(*r.get("c"), text("x y z"));
        assert_eq!(*r.get("d"), text("b=c"));
        assert_eq!(*r.get("e"), text(""));
        assert_eq!(*r.get("f"), Param::Absent);
        assert_eq!(*r.get("A"), Param::Absent);
    }

    #[test]
    fn request_percent_decoding() {
        // php: b%2Bc=%2B+%26%3d -> 'b+c' => '+ &='; c=%c3%a9%C3%A9 -> 'éé';
        // w=%zz%4 -> '%zz%4'
        let r = query("b%2Bc=%2B+%26%3d&c=%c3%a9%C3%A9&w=%zz%4&x=%C3%A9&t=u%00v");
        assert_eq!(*r.get("b+c"), text("+ &="));
        assert_eq!(*r.get("c"), text("éé"));
        assert_eq!(*r.get("w"), text("%zz%4"));
        assert_eq!(*r.get("x"), text("é"));
        assert_eq!(*r.get("t"), text("u\0v"));
    }

    #[test]
    fn request_invalid_utf8_values() {
        // php keeps the bytes; the chat refuses them.
        let r = query("y=%FF&d=%E2%82&s=%ED%A0%80&o=%C0%AF&ok=%F0%9F%98%80");
        assert!(matches!(r.get("y"), Param::InvalidUtf8(_)));
        assert!(matches!(r.get("d"), Param::InvalidUtf8(_)));
        assert!(matches!(r.get("s"), Param::InvalidUtf8(_))); // surrogate
        assert!(matches!(r.get("o"), Param::InvalidUtf8(_))); // overlong
        assert_eq!(*r.get("ok"), text("😀"));
    }

    #[test]
    fn request_name_mangling() {
        // php: %20%20i=10&+j=11&e.f=2&g%20h=3&.=2 -> i, j, e_f, g_h, _
        let r = query("%20%20i=10&+j=11&e.f=2&g%20h=3&.=2&%09a=1");
        assert_eq!(*r.get("i"), text("10"));
        assert_eq!(*r.get("j"), text("11"));
        assert_eq!(*r.get("e_f"), text("2"));
        assert_eq!(*r.get("e.f"), Param::Absent);
        assert_eq!(*r.get("g_h"), text("3"));
        assert_eq!(*r.get("_"), text("2"));
        // Only spaces are dropped in front, a tab stays.
        assert_eq!(*r.get("\ta"), text("1"));
        assert_eq!(*r.get("a"), Param::Absent);
        // php: %20.=3 -> '_'
        assert_eq!(*query("%20.=3").get("_"), text("3"));
    }

    #[test]
    fn request_empty_names_ignored() {
        // php: =8, [g]=7, [g=1, %5Bh=2, %20=1, %20[x]=1 register nothing.
        let r = query("=8&[g]=7&[g=1&%5Bh=2&%20=1&%20[x]=1&&&ok=1");
        assert_eq!(r.query.len(), 1);
        assert_eq!(*r.get("ok"), text("1"));
        assert_eq!(*r.get(""), Param::Absent);
        assert_eq!(*r.get("_g"), Param::Absent);
    }

    #[test]
    fn request_nul_ends_a_name() {
        // php: r%00s=15 -> 'r'; a%00%5B%5D=3 -> 'a' (scalar); b%5B%00%5D=4 -> 'b_'
        let r = query("r%00s=15&a%00%5B%5D=3&b%5B%00%5D=4&c[%00=5&%00z=1");
        assert_eq!(*r.get("r"), text("15"));
        assert_eq!(*r.get("a"), text("3"));
        assert_eq!(*r.get("b_"), text("4"));
        assert_eq!(*r.get("c_"), text("5"));
        assert_eq!(r.query.len(), 4);
    }

    #[test]
    fn request_arrays() {
        // php: a[]=1, b[x]=2, k%5Bz%5D=12, l.m[n.o]=13, p[%20q]=14,
        // a[b]c=1, f[x][y=6, l[a[b]=1, o[]x[=1, k[]]=1 all make arrays.
        let r = query(
            "a[]=1&b[x]=2&k%5Bz%5D=12&l.m[n.o]=13&p[%20q]=14&q[b]c=1&f[x][y=6&g[a[b]=1&o[]x[=1&h[]]=1&s[%20]=1",
        );
        for name in ["a", "b", "k", "l_m", "p", "q", "f", "g", "o", "h", "s"] {
            assert_eq!(*r.get(name), Param::Array, "{name}");
        }
        // php: b%20%5Bc%5D=6 -> 'b_' array
        assert_eq!(*query("b%20%5Bc%5D=6").get("b_"), Param::Array);
        // An array's value is never checked.
        assert_eq!(*query("u[]=%FF").get("u"), Param::Array);
    }

    #[test]
    fn request_unterminated_brackets() {
        // php: c[=3 -> c_; d[x=4 -> d_x; e]=5 -> 'e]'; g+[x=1 -> g__x;
        // h.+[=1 -> h___; j[[=1 -> j__; m[a.b=1 -> m_a_b
        let r = query("c[=3&d[x=4&e]=5&g+[x=1&h.+[=1&j[[=1&m[a.b=1&n[+x=1");
        assert_eq!(*r.get("c_"), text("3"));
        assert_eq!(*r.get("d_x"), text("4"));
        assert_eq!(*r.get("e]"), text("5"));
        assert_eq!(*r.get("g__x"), text("1"));
        assert_eq!(*r.get("h___"), text("1"));
        assert_eq!(*r.get("j__"), text("1"));
        assert_eq!(*r.get("m_a_b"), text("1"));
        assert_eq!(*r.get("n__x"), text("1"));
        assert_eq!(*r.get("c"), Param::Absent);
        assert_eq!(*r.get("d"), Param::Absent);
    }

    #[test]
    fn request_last_duplicate_wins() {
        // php: a=1&a[]=2&b[]=1&b=2&c[x][y]=1&c[x]=2 -> a array, b '2', c array
        let r = query("a=1&a[]=2&b[]=1&b=2&c[x][y]=1&c[x]=2&d=1&d=2");
        assert_eq!(*r.get("a"), Param::Array);
        assert_eq!(*r.get("b"), text("2"));
        assert_eq!(*r.get("c"), Param::Array);
        assert_eq!(*r.get("d"), text("2"));
        assert_eq!(*query("v=%FF&v=ok").get("v"), text("ok"));
        assert!(matches!(
            query("v=ok&v=%FF").get("v"),
            Param::InvalidUtf8(_)
        ));
    }

    #[test]
    fn request_body_wins() {
        // php: ?a=q&b=q&c[]=q with body a=p&c=p&d[]=p -> a 'p', b 'q', c 'p', d array
        let r = Request::parse(Some("a=q&b=q&c[]=q"), Some(b"a=p&c=p&d[]=p"));
        assert_eq!(*r.get("a"), text("p"));
        assert_eq!(*r.get("b"), text("q"));
        assert_eq!(*r.get("c"), text("p"));
        assert_eq!(*r.get("d"), Param::Array);
        // php: ?a[]=q body a=p -> 'p'; ?a=q body a[x]=p -> array
        assert_eq!(
            *Request::parse(Some("a[]=q"), Some(b"a=p")).get("a"),
            text("p")
        );
        assert_eq!(
            *Request::parse(Some("a=q"), Some(b"a[x]=p")).get("a"),
            Param::Array
        );
        // Body only.
        let r = Request::parse(None, Some(b"user=ana&message=hola+%C3%A9"));
        assert_eq!(*r.get("user"), text("ana"));
        assert_eq!(*r.get("message"), text("hola é"));
        // A body of "" registers nothing.
        assert_eq!(*Request::parse(Some("a=q"), Some(b"")).get("a"), text("q"));
    }

    #[test]
    fn request_body_is_binary() {
        // php, raw body "x=1&y=a\0b&z\0w=1&\xffk=\xff":
        // 'x'=>'1', 'y'=>"a\0b", 'z'=>'1', "\xffk"=>"\xff"
        let r = Request::parse(None, Some(b"x=1&y=a\x00b&z\x00w=1&\xffk=\xff"));
        assert_eq!(*r.get("x"), text("1"));
        assert_eq!(*r.get("y"), text("a\0b"));
        assert_eq!(*r.get("z"), text("1"));
        assert!(matches!(r.get("\u{fffd}k"), Param::InvalidUtf8(_)));
    }

    fn levels(n: usize) -> String {
        "[x]".repeat(n)
    }

    #[test]
    fn request_nesting_limit() {
        // php: a=1&b=1&a+64 levels=2&b+65 levels=2&c+65 levels=1&c=3&e[]+63&f[]+64
        // -> a array, b gone (deleted), c '3', e array, f gone.
        let q = format!(
            "a=1&b=1&a{}=2&b{}=2&c{}=1&c=3&e[]{}=1&f[]{}=1",
            levels(64),
            levels(65),
            levels(65),
            levels(63),
            levels(64)
        );
        let r = query(&q);
        assert_eq!(*r.get("a"), Param::Array);
        assert_eq!(*r.get("b"), Param::Absent);
        assert_eq!(*r.get("c"), text("3"));
        assert_eq!(*r.get("e"), Param::Array);
        assert_eq!(*r.get("f"), Param::Absent);
        // The 65th group is counted before its ']' is looked for.
        assert_eq!(
            *query(&format!("g=1&g{}[y=1", levels(64))).get("g"),
            Param::Absent
        );
        assert_eq!(
            *query(&format!("g=1&g{}[y=1", levels(63))).get("g"),
            Param::Array
        );
    }

    #[test]
    fn request_nesting_limit_deletes_in_one_source_only() {
        // php: ?a=q&b=1 body a+65 levels=2&c=1 -> $_REQUEST a 'q', c '1'
        let body = format!("a{}=2&c=1", levels(65));
        let r = Request::parse(Some("a=q&b=1"), Some(body.as_bytes()));
        assert_eq!(*r.get("a"), text("q"));
        assert_eq!(*r.get("c"), text("1"));
        // Deleted in the query, absent from the body: gone.
        let q = format!("a=q&a{}=2", levels(65));
        assert_eq!(
            *Request::parse(Some(&q), Some(b"c=1")).get("a"),
            Param::Absent
        );
    }

    fn filler(n: usize) -> String {
        (1..=n).map(|i| format!("v{i}=1&")).collect()
    }

    #[test]
    fn request_max_input_vars_query() {
        // php: 999 vars then a, b, c -> a kept, b and c dropped.
        let r = query(&format!("{}a=1&b=1&c=1", filler(999)));
        assert_eq!(*r.get("a"), text("1"));
        assert_eq!(*r.get("b"), Param::Absent);
        assert_eq!(*r.get("c"), Param::Absent);
        // php: empty pieces do not count in a query string.
        let r = query(&format!("{}&&&a=1&b=1", filler(999)));
        assert_eq!(*r.get("a"), text("1"));
        assert_eq!(*r.get("b"), Param::Absent);
        // php: a piece with an empty name counts.
        let r = query(&format!("{}=1&a=1&b=1", filler(998)));
        assert_eq!(*r.get("a"), text("1"));
        assert_eq!(*r.get("b"), Param::Absent);
    }

    #[test]
    fn request_max_input_vars_body() {
        // php: 999 vars then a, b, c -> a and b kept (1001 pieces), c dropped.
        let r = Request::parse(None, Some(format!("{}a=1&b=1&c=1", filler(999)).as_bytes()));
        assert_eq!(*r.get("a"), text("1"));
        assert_eq!(*r.get("b"), text("1"));
        assert_eq!(*r.get("c"), Param::Absent);
        // php: in a body empty pieces count.
        let r = Request::parse(
            None,
            Some(format!("{}&&a=1&b=1&c=1", filler(997)).as_bytes()),
        );
        assert_eq!(*r.get("a"), text("1"));
        assert_eq!(*r.get("b"), text("1"));
        assert_eq!(*r.get("c"), Param::Absent);
        // php: the limits are per source; the query still counts.
        let r = Request::parse(
            Some("q=1&a=9&c=9"),
            Some(format!("{}a=1&b=1&c=1", filler(999)).as_bytes()),
        );
        assert_eq!(*r.get("q"), text("1"));
        assert_eq!(*r.get("a"), text("1"));
        assert_eq!(*r.get("b"), text("1"));
        assert_eq!(*r.get("c"), text("9"));
        // A lone '&' is one (empty) piece; a trailing '&' opens none.
        let r = Request::parse(None, Some(format!("&{}a=1&b=1", filler(999)).as_bytes()));
        assert_eq!(*r.get("a"), text("1"));
        assert_eq!(*r.get("b"), Param::Absent);
    }

    #[test]
    fn deviation_invalid_utf8_names_are_lossy() {
        // PHP keeps name bytes as they are ("z\xffz" and "z\xfez" are two
        // variables); here names are decoded lossily, so both read as
        // "z\u{fffd}z" and the last one wins. The chat only looks up ASCII
        // names, which this never affects.
        let r = query("z%FFz=1&z%FEz=2");
        assert_eq!(*r.get("z\u{fffd}z"), text("2"));
    }

    // ---- trim, mb_strlen ----------------------------------------------------

    #[test]
    fn trim_php_set() {
        assert_eq!(trim(" \t\n\r\0\x0Bx \x0B\0\r\n\t "), "x");
        // php: trim(" \t\n\r\0\x0Bx \x0c\u{a0} \t\n\r\0\x0B") is "x \x0c\u{a0}"
        assert_eq!(
            trim(" \t\n\r\0\x0Bx \x0c\u{a0} \t\n\r\0\x0B"),
            "x \x0c\u{a0}"
        );
        // php: bin2hex(trim("\x0c x \x0c")) is 0c2078200c
        assert_eq!(trim("\x0c x \x0c"), "\x0c x \x0c");
        assert_eq!(trim(""), "");
        assert_eq!(trim(" \0 "), "");
        assert_eq!(trim("a b"), "a b");
        assert_eq!(trim("\u{3000}a\u{2003}"), "\u{3000}a\u{2003}");
    }

    #[test]
    fn mb_strlen_code_points() {
        // php: mb_strlen("aé😀\u{301}") is 4
        assert_eq!(mb_strlen("aé😀\u{301}"), 4);
        assert_eq!(mb_strlen(""), 0);
        assert_eq!(mb_strlen("abc"), 3);
        assert_eq!(mb_strlen(&"é".repeat(32)), 32);
    }

    // ---- (int) ----------------------------------------------------------------

    #[test]
    fn int_cast_matches_php() {
        // Every pair printed by php 8.2: var_export((int)$s).
        let cases: &[(&str, i64)] = &[
            ("12abc", 12),
            ("abc", 0),
            (" 7", 7),
            ("7 ", 7),
            ("1e3", 1000),
            ("1.9", 1),
            ("-3", -3),
            ("+5", 5),
            ("0x1A", 0),
            (" \t\n12", 12),
            ("99999999999999999999", i64::MAX),
            ("-99999999999999999999", i64::MIN),
            ("1e30", i64::MAX),
            ("-1e30", i64::MIN),
            ("1e999", 0),
            ("-1e999", 0),
            (".5", 0),
            ("5.", 5),
            ("", 0),
            ("   ", 0),
            ("\x0B5", 5),
            ("\x0C5", 5),
            ("\r\n5\r\n", 5),
            ("5\x0B", 5),
            ("5\x0C", 5),
            ("\x005", 0),
            ("1e", 1),
            ("1e+", 1),
            ("1e-", 1),
            ("1e+3", 1000),
            ("1E3", 1000),
            ("1e-3", 0),
            ("-1e-3", 0),
            ("-0", 0),
            ("+0", 0),
            ("-.5", 0),
            ("-.5e1", -5),
            (".", 0),
            ("-", 0),
            ("+", 0),
            ("+-5", 0),
            ("- 5", 0),
            ("0005", 5),
            ("1_000", 1),
            ("1.9999999999999999999", 2),
            ("9223372036854775807", i64::MAX),
            ("9223372036854775808", i64::MAX),
            ("-9223372036854775808", i64::MIN),
            ("-9223372036854775809", i64::MIN),
            ("9223372036854775807 ", i64::MAX),
            ("9223372036854775807x", i64::MAX),
            ("9223372036854775808x", i64::MAX),
            ("-9223372036854775808x", i64::MIN),
            ("-9223372036854775808 ", i64::MIN),
            ("00009223372036854775807", i64::MAX),
            ("0009223372036854775806", 9223372036854775806),
            ("9223372036854775806", 9223372036854775806),
            ("-0009223372036854775807", -9223372036854775807),
            (
                "00000000000000000009223372036854775000",
                9223372036854775000,
            ),
            ("000000000000000000000000001", 1),
            ("100000000000000000000e-10", 10000000000),
            ("9223372036854775807.0", i64::MAX),
            ("9223372036854774784.0", 9223372036854774784),
            ("9223372036854775295", 9223372036854775295),
            ("9.2233720368547758e18", i64::MAX),
            ("1.e5", 100000),
            ("5.e", 5),
            ("1e1000000000000000000000", 0),
            ("0.0000000000000000000000000000001e40", 1000000000),
            ("12345678901234567890123", i64::MAX),
            ("-1e-999", 0),
            ("1e308", i64::MAX),
            ("2e308", 0),
            ("0b11", 0),
            ("0o7", 0),
            ("07", 7),
            ("1 2", 1),
            ("\u{ff11}", 0),
            ("12.5abc", 12),
            ("3e2.5", 300),
            ("\u{a0}5", 0),
            (" +7", 7),
            (" -7", -7),
            ("\t-7.9", -7),
            (".5e1", 5),
            ("1.5e3x", 1500),
            ("99999999999999999999.5", i64::MAX),
            ("1e-1e5", 0),
            ("4e", 4),
            ("4e-", 4),
            ("4ex", 4),
            ("1.2.3", 1),
            ("--1", 0),
            ("1e01", 10),
            ("0e5", 0),
            ("0x", 0),
            ("[g", 0),
            ("x", 0),
        ];
        for &(s, want) in cases {
            assert_eq!(int_cast(s), want, "(int){s:?}");
        }
    }

    // ---- htmlspecialchars ---------------------------------------------------

    #[test]
    fn htmlspecialchars_ent_quotes() {
        assert_eq!(html(""), "");
        assert_eq!(html("hola"), "hola");
        // php: htmlspecialchars("&amp; &lt; &#039; &#x27; <b>\"x\"</b> 'y' ", ENT_QUOTES, 'UTF-8')
        assert_eq!(
            html("&amp; &lt; &#039; &#x27; <b>\"x\"</b> 'y' "),
            "&amp;amp; &amp;lt; &amp;#039; &amp;#x27; &lt;b&gt;&quot;x&quot;&lt;/b&gt; &#039;y&#039; "
        );
        // php: bin2hex of "\x00\x01\x7f\u{fffe}\u{ffff}\u{1fffe}" comes back unchanged.
        assert_eq!(
            html("\0\x01\x7f\u{fffe}\u{ffff}\u{1fffe}"),
            "\0\x01\x7f\u{fffe}\u{ffff}\u{1fffe}"
        );
        assert_eq!(html("é😀<"), "é😀&lt;");
        let mut out = String::from("x");
        push_htmlspecialchars(&mut out, ">");
        assert_eq!(out, "x&gt;");
    }

    // ---- json_encode --------------------------------------------------------

    #[test]
    fn json_all_ascii() {
        // php: json_encode of chr(0) .. chr(127).
        let all: String = (0u8..0x80).map(char::from).collect();
        let want = concat!(
            r#""\u0000\u0001\u0002\u0003\u0004\u0005\u0006\u0007\b\t\n\u000b\f\r\u000e\u000f"#,
            r#"\u0010\u0011\u0012\u0013\u0014\u0015\u0016\u0017\u0018\u0019\u001a\u001b\u001c\u001d\u001e\u001f"#,
            r##" !\"#$%&'()*+,-.\/0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefghijklmnopqrstuvwxyz{|}~"##,
            "\x7f\""
        );
        assert_eq!(json(&all), want);
    }

    #[test]
    fn json_unicode() {
        assert_eq!(json(""), r#""""#);
        // php: json_encode("a/é😀<'\"&")
        assert_eq!(json("a/é😀<'\"&"), r#""a\/\u00e9\ud83d\ude00<'\"&""#);
        // php: json_encode("\u{80}\u{7ff}\u{800}\u{ffff}\u{10000}\u{10ffff}\u{2028}\u{2029}\u{feff}\u{fffe}\u{d7ff}\u{e000}")
        assert_eq!(
            json(
                "\u{80}\u{7ff}\u{800}\u{ffff}\u{10000}\u{10ffff}\u{2028}\u{2029}\u{feff}\u{fffe}\u{d7ff}\u{e000}"
            ),
            r#""\u0080\u07ff\u0800\uffff\ud800\udc00\udbff\udfff\u2028\u2029\ufeff\ufffe\ud7ff\ue000""#
        );
        // php: json_encode("\\/") and json_encode("ÿ€")
        assert_eq!(json("\\/"), r#""\\\/""#);
        assert_eq!(json("ÿ€"), r#""\u00ff\u20ac""#);
    }

    #[test]
    fn json_of_escaped_html() {
        // php: json_encode(htmlspecialchars("a/é😀<'\"&", ENT_QUOTES, "UTF-8"))
        let mut escaped = String::new();
        push_htmlspecialchars(&mut escaped, "a/é😀<'\"&");
        assert_eq!(
            json(&escaped),
            r#""a\/\u00e9\ud83d\ude00&lt;&#039;&quot;&amp;""#
        );
        let mut out = String::from("[");
        push_json_string(&mut out, "x");
        out.push(',');
        push_json_string(&mut out, "y");
        out.push(']');
        assert_eq!(out, r#"["x","y"]"#);
    }

    // ---- date ---------------------------------------------------------------

    #[test]
    fn date_matches_php() {
        // php -d date.timezone=$TZ -r "echo date('Y-m-d H:i:s', $T);"
        let cases: &[(&str, i64, &str)] = &[
            ("UTC", 1782403200, "2026-06-25 16:00:00"),
            ("UTC", 1798761600, "2027-01-01 00:00:00"),
            ("UTC", 0, "1970-01-01 00:00:00"),
            ("UTC", -1, "1969-12-31 23:59:59"),
            ("UTC", -62135596800, "0001-01-01 00:00:00"),
            ("UTC", -62135596801, "0000-12-31 23:59:59"),
            ("UTC", -62167219200, "0000-01-01 00:00:00"),
            ("UTC", -62167219201, "-0001-12-31 23:59:59"),
            ("UTC", -63902000000, "-0055-01-10 12:26:40"),
            ("UTC", -91000000000, "-0914-04-29 06:13:20"),
            ("UTC", -377705116800, "-9999-01-01 00:00:00"),
            ("UTC", -400000000000, "-10706-07-03 08:53:20"),
            ("UTC", 253402207200, "9999-12-30 22:00:00"),
            ("UTC", 253402300799, "9999-12-31 23:59:59"),
            ("UTC", 253402300800, "10000-01-01 00:00:00"),
            ("UTC", -2208988800, "1900-01-01 00:00:00"),
            ("UTC", -5000000000, "1811-07-23 15:06:40"),
            ("UTC", 1000000000000, "33658-09-27 01:46:40"),
            ("UTC", -1000000000000, "-29719-04-05 22:13:20"),
            ("UTC", 1000000000000000000, "31688740476-10-23 01:46:40"),
            ("UTC", -1000000000000000000, "-31688736537-03-10 22:13:20"),
            ("UTC", i64::MAX, "292277026596-12-04 15:30:07"),
            ("UTC", -i64::MAX, "-292277022657-01-27 08:29:53"),
            // Europe/Madrid: CEST in summer, CET in winter, LMT long ago.
            ("Europe/Madrid", 1782403200, "2026-06-25 18:00:00"),
            ("Europe/Madrid", 1798761600, "2027-01-01 01:00:00"),
            ("Europe/Madrid", 0, "1970-01-01 01:00:00"),
            ("Europe/Madrid", -1, "1970-01-01 00:59:59"),
            ("Europe/Madrid", 1711846799, "2024-03-31 01:59:59"),
            ("Europe/Madrid", 1711846800, "2024-03-31 03:00:00"),
            ("Europe/Madrid", 1730595600, "2024-11-03 02:00:00"),
            ("Europe/Madrid", 1730599200, "2024-11-03 03:00:00"),
            ("Europe/Madrid", -62135596800, "0000-12-31 23:45:16"),
            ("Europe/Madrid", -2208988800, "1899-12-31 23:45:16"),
            ("Europe/Madrid", -5000000000, "1811-07-23 14:51:56"),
            ("Europe/Madrid", -377705116800, "-10000-12-31 23:45:16"),
            ("Europe/Madrid", -400000000000, "-10706-07-03 08:38:36"),
            ("Europe/Madrid", 253402207200, "9999-12-30 23:00:00"),
            ("Europe/Madrid", 253402300799, "10000-01-01 00:59:59"),
            ("Europe/Madrid", 300000000000, "11476-08-15 07:20:00"),
            ("Europe/Madrid", 1000000000000, "33658-09-27 03:46:40"),
            (
                "Europe/Madrid",
                10000000000000000,
                "316889355-01-25 18:46:40",
            ),
            (
                "Europe/Madrid",
                100000000000000000,
                "3168875820-09-06 11:46:40",
            ),
            (
                "Europe/Madrid",
                1000000000000000000,
                "31688740476-10-23 03:46:40",
            ),
            (
                "Europe/Madrid",
                -1000000000000000000,
                "-31688736537-03-10 21:58:36",
            ),
            // America/New_York: EDT / EST.
            ("America/New_York", 1782403200, "2026-06-25 12:00:00"),
            ("America/New_York", 1798761600, "2026-12-31 19:00:00"),
            ("America/New_York", 0, "1969-12-31 19:00:00"),
            ("America/New_York", 1711846800, "2024-03-30 21:00:00"),
            ("America/New_York", 1730595600, "2024-11-02 21:00:00"),
            ("America/New_York", 1730599200, "2024-11-02 22:00:00"),
            ("America/New_York", -62167219200, "-0001-12-31 19:03:58"),
            ("America/New_York", -5000000000, "1811-07-23 10:10:38"),
            ("America/New_York", 253402300800, "9999-12-31 19:00:00"),
            ("America/New_York", 1000000000000, "33658-09-26 21:46:40"),
            (
                "America/New_York",
                1000000000000000,
                "31690708-07-04 21:46:40",
            ),
            (
                "America/New_York",
                -1000000000000000,
                "-31686769-06-29 17:17:18",
            ),
            // Half-hour and odd offsets.
            ("Asia/Kolkata", 1782403200, "2026-06-25 21:30:00"),
            ("Asia/Kolkata", -2208988800, "1900-01-01 05:21:10"),
            ("Asia/Kolkata", -62135596800, "0001-01-01 05:53:28"),
            ("Asia/Kolkata", 253402300799, "10000-01-01 05:29:59"),
            ("Asia/Kolkata", -1000000000000, "-29719-04-06 04:06:48"),
            ("Australia/Lord_Howe", 1782403200, "2026-06-26 02:30:00"),
            ("Australia/Lord_Howe", 1798761600, "2027-01-01 11:00:00"),
            ("Australia/Lord_Howe", 253402300799, "10000-01-01 10:59:59"),
            ("Australia/Lord_Howe", -5000000000, "1811-07-24 01:43:00"),
        ];
        for &(tz, t, want) in cases {
            assert_eq!(date_ymd_his(t, &zone(tz)), want, "{tz} {t}");
        }
    }

    #[test]
    fn date_agrees_with_jiff_in_range() {
        let tz = zone("Europe/Madrid");
        let mut t = -2_000_000_000_i64;
        while t < 5_000_000_000 {
            let want = Timestamp::from_second(t)
                .unwrap()
                .to_zoned_datetime(tz.clone())
                .strftime("%Y-%m-%d %H:%M:%S")
                .to_string();
            assert_eq!(date_ymd_his(t, &tz), want, "{t}");
            t += 7_654_321;
        }
    }

    #[test]
    fn deviation_date_near_i64_limits() {
        // PHP's own arithmetic overflows within a zone offset of the i64
        // limits and for some zones drops the offset there: php prints
        // Europe/Madrid i64::MAX as "292277026596-12-04 15:30:07" (no offset),
        // Asia/Kolkata i64::MAX as "-292277022657-01-27 13:59:51" (wrapped)
        // and Europe/Madrid -i64::MAX as "292277026596-12-04 15:15:25"
        // (wrapped). Here the zone's offset is always applied, without
        // wrapping. No stored `time()` gets near these values.
        assert_eq!(
            date_ymd_his(i64::MAX, &zone("Europe/Madrid")),
            "292277026596-12-04 16:30:07"
        );
        assert_eq!(
            date_ymd_his(i64::MAX, &zone("Asia/Kolkata")),
            "292277026596-12-04 21:00:07"
        );
        assert_eq!(
            date_ymd_his(-i64::MAX, &zone("Europe/Madrid")),
            "-292277022657-01-27 08:15:09"
        );
        assert_eq!(
            date_ymd_his(i64::MIN, &zone("UTC")),
            "-292277022657-01-27 08:29:52"
        );
    }

    #[test]
    fn date_formats_as_php() {
        // php -d date.timezone=Europe/Madrid -r 'echo date(FMT, 1700000000);'
        let tz = zone("Europe/Madrid");
        let t = 1_700_000_000;
        assert_eq!(date("Y-m-d H:i:s", t, &tz), "2023-11-14 23:13:20");
        assert_eq!(date("D, d M Y", t, &tz), "Tue, 14 Nov 2023");
        assert_eq!(
            date("l jS \\of F y, g:i a", t, &tz),
            "Tuesday 14th of November 23, 11:13 pm"
        );
        assert_eq!(date("H:i", t, &tz), "23:13");
        assert_eq!(date("c", t, &tz), "2023-11-14T23:13:20+01:00");
        assert_eq!(date("N w z t L W o", t, &tz), "2 2 317 30 0 46 2023");
        assert_eq!(date("O P T U", t, &tz), "+0100 +01:00 CET 1700000000");
    }

    #[test]
    fn substr_is_bytewise_as_php() {
        assert_eq!(substr("hello", 1, Some(3)), "ell");
        assert_eq!(substr("hello", -3, None), "llo");
        assert_eq!(substr("hello", 1, Some(-1)), "ell");
        assert_eq!(substr("hello", 9, None), "");
        assert_eq!(substr("é", 0, Some(1)), "\u{FFFD}");
    }
}

//! Fuzzing the profile loader and renderer on the stable toolchain (issue 9,
//! item 14): mutated profiles never panic the loader, the checker or the
//! renderer; and the classic answer, rendered by its template, equals a model
//! built from the PHP primitives (`htmlspecialchars`, `json_encode`, `date`)
//! for random messages. `PROFILE_FUZZ_RUNS` sets the number of inputs
//! (default 1000 each); `benches/fuzz.sh` runs it with millions.

use std::sync::Arc;

use cometa::php;
use cometa::profile::templates::Scope;
use cometa::profile::{self, Profile, Value};
use cometa::store::{Checker, Rows, Schema};

/// xorshift64*: the same inputs on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn runs() -> usize {
    std::env::var("PROFILE_FUZZ_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000)
}

const TOKENS: &[&str] = &[
    "{{",
    "}}",
    "{%",
    "%}",
    "{#",
    "\"",
    "'",
    "'''",
    "\"\"\"",
    "[",
    "]",
    "[[",
    "]]",
    "=",
    "\n",
    ":",
    ":x",
    "::",
    "__",
    "$",
    "@",
    "?",
    "--",
    "/*",
    "NEW.",
    "OLD.",
    "é",
    "😀",
    "\0",
    "\\",
    "|json",
    "|h",
    "|date(\"Y\")",
    "|substr(-1, 2)",
    "|int",
    "loop.first",
    "rows[0]",
    "route",
    "sql",
    "when",
    "hold",
    "wake",
    "answer",
    "use",
    "errors",
    "params",
    "topics",
    "SELECT",
    "DELETE",
    "INSERT",
    "(",
    ")",
    ",",
    "0",
    "-1",
    "1e999",
    "not ",
    " and ",
];

fn mutate(rng: &mut Rng, base: &str) -> String {
    let mut b: Vec<u8> = base.as_bytes().to_vec();
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(b.len() + 1).min(b.len());
        match rng.below(4) {
            0 => {
                let end = (at + rng.below(40)).min(b.len());
                b.drain(at..end);
            }
            1 => {
                let t = TOKENS[rng.below(TOKENS.len())].as_bytes();
                b.splice(at..at, t.iter().copied());
            }
            2 => {
                let from = rng.below(b.len());
                let end = (from + rng.below(80)).min(b.len());
                let piece: Vec<u8> = b[from..end].to_vec();
                b.splice(at..at, piece);
            }
            _ => {
                if at < b.len() {
                    b[at] = (rng.next() & 0x7f) as u8;
                }
            }
        }
    }
    String::from_utf8_lossy(&b).into_owned()
}

fn random_text(rng: &mut Rng) -> String {
    const PIECES: &[&str] = &[
        "a",
        "Z",
        " ",
        "<",
        ">",
        "&",
        "\"",
        "'",
        "/",
        "\\",
        "\n",
        "\t",
        "\u{7f}",
        "\u{1}",
        "é",
        "€",
        "😀",
        "\u{2028}",
        "&amp;",
        "<b>",
        "</script>",
        "\u{FFFD}",
        "%",
        "+",
        "#",
    ];
    (0..rng.below(12))
        .map(|_| PIECES[rng.below(PIECES.len())])
        .collect()
}

#[test]
fn mutated_profiles_never_panic_the_loader_checker_or_renderer() {
    let tz = jiff::tz::TimeZone::UTC;
    let bases = [
        (
            include_str!("../profiles/classic.toml"),
            include_str!("../profiles/classic.schema.sql"),
        ),
        (
            include_str!("../profiles/omegle.toml"),
            include_str!("../profiles/omegle.schema.sql"),
        ),
    ];
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let (mut loaded, mut refused) = (0, 0);
    for _ in 0..runs() {
        let (base, schema) = bases[rng.below(bases.len())];
        // The schema is named in the file; the text is loaded without files.
        let text = mutate(&mut rng, base).replace("schema = ", "# schema = ");
        match Profile::parse_text("fuzz.toml", &text, &tz) {
            Err(e) => {
                refused += 1;
                assert!(!e.message.is_empty());
            }
            Ok(mut p) => {
                loaded += 1;
                if let Ok(checker) = Checker::memory(Schema {
                    app: schema,
                    extra: &p.extra_sql,
                    topics: &p.topics,
                }) {
                    let _ = p.check_sql(|sql| checker.prepare(sql));
                }
                let mut scope = Scope::default();
                for prm in &p.params {
                    scope.set(&prm.name, Value::Text(random_text(&mut rng)));
                }
                for b in profile::BUILTIN_VARS {
                    scope.set(b, Value::Int(rng.below(3) as i64));
                }
                for a in &p.answers {
                    let _ = profile::render(&p.env, &a.template, &scope);
                }
            }
        }
    }
    assert!(
        loaded > 0 && refused > 0,
        "loaded {loaded}, refused {refused}"
    );
}

/// The classic answer as the PHP endpoint builds it.
fn model(rows: &[(i64, String, String, i64)], tz: &jiff::tz::TimeZone) -> String {
    let mut out = String::from("[");
    for (i, (id, user, message, at)) in rows.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&format!(r#"{{"id":{id},"user":"#));
        let mut h = String::new();
        php::push_htmlspecialchars(&mut h, user);
        php::push_json_string(&mut out, &h);
        out.push_str(r#","message":"#);
        let mut h = String::new();
        php::push_htmlspecialchars(&mut h, message);
        php::push_json_string(&mut out, &h);
        out.push_str(r#","time":"#);
        php::push_json_string(&mut out, &php::date_ymd_his(*at, tz));
        out.push('}');
    }
    out.push(']');
    out
}

#[test]
fn the_classic_answer_template_equals_the_php_model() {
    let tz = jiff::tz::TimeZone::get("Europe/Madrid").unwrap();
    let p = Profile::load("classic", &tz).unwrap();
    let answer = p
        .answers
        .iter()
        .find(|a| a.template.ends_with("answers.messages"))
        .expect("the messages answer");
    let mut rng = Rng(42);
    for _ in 0..runs() {
        let rows: Vec<(i64, String, String, i64)> = (0..rng.below(5))
            .map(|i| {
                let at = (rng.next() % 4_000_000_000) as i64;
                (
                    i as i64 + 1,
                    random_text(&mut rng),
                    random_text(&mut rng),
                    at,
                )
            })
            .collect();
        let mut scope = Scope::default();
        scope.set_result(
            "rows",
            Arc::new(Rows {
                columns: ["id", "user", "message", "created_at"]
                    .map(String::from)
                    .into(),
                rows: rows
                    .iter()
                    .map(|(id, u, m, at)| {
                        vec![
                            Value::Int(*id),
                            Value::Text(u.clone()),
                            Value::Text(m.clone()),
                            Value::Int(*at),
                        ]
                    })
                    .collect(),
            }),
        );
        let got = profile::render(&p.env, &answer.template, &scope).unwrap();
        assert_eq!(got, model(&rows, &tz), "{rows:?}");
    }
}

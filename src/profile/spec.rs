//! The profile file as written: TOML, every table closed to unknown keys, with
//! spans on the values that are checked later (SQL, templates, expressions) so
//! an error can name the file, line and key.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

/// A whole profile file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileSpec {
    pub(crate) profile: MetaSpec,
    #[serde(default)]
    pub(crate) params: BTreeMap<String, Spanned<ParamSpec>>,
    #[serde(default)]
    pub(crate) topics: BTreeMap<String, Spanned<TopicSpec>>,
    #[serde(default)]
    pub(crate) answers: BTreeMap<String, Spanned<AnswerSpec>>,
    #[serde(default)]
    pub(crate) errors: BTreeMap<String, Spanned<String>>,
    #[serde(default, rename = "route")]
    pub(crate) routes: Vec<Spanned<RouteSpec>>,
    #[serde(default, rename = "maintenance")]
    pub(crate) maintenance: Vec<Spanned<MaintenanceSpec>>,
    #[serde(default)]
    pub(crate) retention: RetentionSpec,
}

/// `[retention]`: how old rows are deleted when the operator asks for it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RetentionSpec {
    pub(crate) by_age: Option<Spanned<String>>,
    pub(crate) by_count: Option<Spanned<String>>,
}

/// `[profile]`: the app as a whole.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct MetaSpec {
    pub(crate) name: String,
    #[serde(default)]
    pub(crate) description: String,
    /// The app's own tables: a SQL file beside the profile, `CREATE … IF NOT EXISTS`.
    pub(crate) schema: Option<Spanned<String>>,
    /// What cometa adds beside the app's tables (indexes), `IF NOT EXISTS`.
    #[serde(default)]
    pub(crate) extra_sql: Vec<Spanned<String>>,
}

/// Where PHP read a parameter from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// `$_GET`: the query string.
    Get,
    /// `$_POST`: a form-encoded POST body.
    Post,
    /// `$_REQUEST`: both, the body winning.
    #[default]
    Request,
    /// `$_COOKIE`.
    Cookie,
}

/// How PHP read the value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A string.
    #[default]
    Text,
    /// `(int)` / `intval()` of the string.
    Int,
}

/// `[params.NAME]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ParamSpec {
    #[serde(default)]
    pub(crate) from: Source,
    #[serde(default, rename = "type")]
    pub(crate) kind: Kind,
    #[serde(default)]
    pub(crate) trim: bool,
    #[serde(default)]
    pub(crate) empty_is_absent: bool,
    pub(crate) default: Option<toml::Value>,
    pub(crate) max_chars: Option<usize>,
    pub(crate) max_bytes: Option<usize>,
    pub(crate) pattern: Option<Spanned<String>>,
    pub(crate) one_of: Option<Vec<i64>>,
    #[serde(default)]
    pub(crate) errors: ParamErrorsSpec,
}

/// `[params.NAME.errors]`: the reason given for each way a value can be bad.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ParamErrorsSpec {
    pub(crate) invalid: Option<String>,
    pub(crate) missing: Option<String>,
    pub(crate) too_long: Option<String>,
}

/// `[topics.NAME]`: a change to a table that wakes held requests.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TopicSpec {
    pub(crate) table: String,
    pub(crate) on: Vec<String>,
    pub(crate) key: Spanned<String>,
}

/// `[answers.NAME]`, or the inline part of a `[[route.answer]]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AnswerSpec {
    pub(crate) status: Option<u16>,
    pub(crate) content_type: Option<String>,
    #[serde(default)]
    pub(crate) headers: BTreeMap<String, String>,
    pub(crate) body: Option<Spanned<String>>,
    pub(crate) file: Option<Spanned<String>>,
}

/// `[[route]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RouteSpec {
    pub(crate) path: String,
    #[serde(default = "get_and_post")]
    pub(crate) methods: Vec<String>,
    #[serde(default, rename = "match")]
    pub(crate) matches: BTreeMap<String, String>,
    #[serde(default)]
    pub(crate) params: Vec<String>,
    #[serde(default)]
    pub(crate) required: Vec<String>,
    #[serde(default)]
    pub(crate) sql: Vec<Spanned<SqlSpec>>,
    pub(crate) hold: Option<Spanned<HoldSpec>>,
    #[serde(default)]
    pub(crate) answer: Vec<Spanned<CaseSpec>>,
    #[serde(default)]
    pub(crate) rate_limited: bool,
}

fn get_and_post() -> Vec<String> {
    vec!["GET".into(), "POST".into()]
}

/// `[[route.sql]]`: one statement.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SqlSpec {
    pub(crate) name: Option<String>,
    pub(crate) sql: Spanned<String>,
    pub(crate) when: Option<Spanned<String>>,
    #[serde(default)]
    pub(crate) detached: bool,
    pub(crate) throttle: Option<f64>,
}

/// `[route.hold]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct HoldSpec {
    #[serde(rename = "while")]
    pub(crate) while_: Spanned<String>,
    pub(crate) wake: Vec<WakeSpec>,
}

/// One `[[route.hold.wake]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct WakeSpec {
    pub(crate) topic: String,
    pub(crate) key: Spanned<String>,
}

/// `[[route.answer]]`: a case, by name (`use`) or inline.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CaseSpec {
    pub(crate) when: Option<Spanned<String>>,
    #[serde(rename = "use")]
    pub(crate) use_: Option<String>,
    pub(crate) status: Option<u16>,
    pub(crate) content_type: Option<String>,
    #[serde(default)]
    pub(crate) headers: BTreeMap<String, String>,
    pub(crate) body: Option<Spanned<String>>,
    pub(crate) file: Option<Spanned<String>>,
}

/// `[[maintenance]]`: a statement the writer runs now and then.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct MaintenanceSpec {
    pub(crate) sql: Spanned<String>,
    pub(crate) every: f64,
}

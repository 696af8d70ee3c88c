//! The legacy chat's endpoints: each reads its parameters as PHP's `$_REQUEST`
//! would, validates them as `docs/wire.md` says, calls the core (`chat`), and
//! writes the bytes PHP wrote.

mod get_number_of_users;
mod is_typing;
mod listen_to_recive;
mod send_message;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Response, StatusCode};

use crate::chat::Chat;
use crate::error::{ApiError, text};
use crate::php::{self, Param};

/// A legacy endpoint, named by its path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `sendMessage.php`
    SendMessage,
    /// `listenToRecive.php` (the long-poll; the spelling is the legacy one)
    ListenToRecive,
    /// `getNumberOfUsers.php`
    GetNumberOfUsers,
    /// `isTyping.php`
    IsTyping,
}

impl Endpoint {
    /// The endpoint served at `path` (relative to the app's base path), if any.
    pub fn from_path(path: &str) -> Option<Endpoint> {
        Some(match path {
            "/sendMessage.php" => Endpoint::SendMessage,
            "/listenToRecive.php" => Endpoint::ListenToRecive,
            "/getNumberOfUsers.php" => Endpoint::GetNumberOfUsers,
            "/isTyping.php" => Endpoint::IsTyping,
            _ => return None,
        })
    }

    /// Answers one request with parameters `req`.
    pub async fn call(
        self,
        chat: &Chat,
        tz: &jiff::tz::TimeZone,
        req: &php::Request,
    ) -> Result<Response<Full<Bytes>>, ApiError> {
        match self {
            Endpoint::SendMessage => send_message::handle(chat, req).await,
            Endpoint::ListenToRecive => listen_to_recive::handle(chat, tz, req).await,
            Endpoint::GetNumberOfUsers => get_number_of_users::handle(chat, req).await,
            Endpoint::IsTyping => is_typing::handle(chat, req).await,
        }
    }
}

/// Longest user name, in code points.
const MAX_USER: usize = 32;
/// Longest message, in code points.
const MAX_MESSAGE: usize = 1000;
/// Longest room name.
const MAX_ROOM: usize = 64;

/// A text parameter, trimmed; `None` when absent. Arrays and invalid UTF-8 are `invalid`.
fn text_param(
    req: &php::Request,
    name: &str,
    invalid: &'static str,
) -> Result<Option<String>, ApiError> {
    match req.get(name) {
        Param::Absent => Ok(None),
        Param::Text(s) => Ok(Some(php::trim(&s).to_owned())),
        Param::Array | Param::InvalidUtf8 => Err(ApiError::BadRequest(invalid)),
    }
}

/// `room`: absent means `main`; otherwise 1 to 64 of `A-Z a-z 0-9 _ -`.
fn room(req: &php::Request) -> Result<String, ApiError> {
    match text_param(req, "room", "invalid room")? {
        None => Ok("main".to_owned()),
        Some(r)
            if (1..=MAX_ROOM).contains(&r.len())
                && r.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') =>
        {
            Ok(r)
        }
        Some(_) => Err(ApiError::BadRequest("invalid room")),
    }
}

/// `user`, which may be absent (or empty) where it is optional.
fn optional_user(req: &php::Request) -> Result<Option<String>, ApiError> {
    match text_param(req, "user", "invalid user")? {
        None => Ok(None),
        Some(u) if u.is_empty() => Ok(None),
        Some(u) if php::mb_strlen(&u) > MAX_USER => Err(ApiError::BadRequest("user too long")),
        Some(u) => Ok(Some(u)),
    }
}

/// `user` where it is required.
fn required_user(req: &php::Request) -> Result<String, ApiError> {
    optional_user(req)?.ok_or(ApiError::BadRequest("missing user"))
}

/// An integer parameter, trimmed then read as PHP's `(int)`; `None` when absent.
fn int_param(
    req: &php::Request,
    name: &str,
    invalid: &'static str,
) -> Result<Option<i64>, ApiError> {
    Ok(text_param(req, name, invalid)?.map(|s| php::int_cast(&s)))
}

/// 200 with a JSON body.
fn json(body: String) -> Response<Full<Bytes>> {
    text(StatusCode::OK, "application/json", body)
}

/// Appends `s` as PHP's `json_encode(htmlspecialchars($s, ENT_QUOTES, 'UTF-8'))` writes it.
fn push_escaped(out: &mut String, s: &str) {
    let mut html = String::with_capacity(s.len() + 8);
    php::push_htmlspecialchars(&mut html, s);
    php::push_json_string(out, &html);
}

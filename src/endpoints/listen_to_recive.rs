//! `listenToRecive.php`: the long-poll; a JSON array of messages.

use std::fmt::Write;

use bytes::Bytes;
use http_body_util::Full;
use hyper::Response;

use super::{int_param, json, optional_user, push_escaped, room};
use crate::chat::Chat;
use crate::error::ApiError;
use crate::php;
use crate::store::Message;

pub(super) async fn handle(
    chat: &Chat,
    tz: &jiff::tz::TimeZone,
    req: &php::Request,
) -> Result<Response<Full<Bytes>>, ApiError> {
    let room = room(req)?;
    let user = optional_user(req)?;
    let last_id = int_param(req, "lastId", "invalid lastId")?.unwrap_or(0);
    let messages = chat.listen(&room, last_id, user.as_deref()).await?;
    Ok(json(encode(&messages, tz)))
}

/// `json_encode` of the messages as the PHP endpoint builds them.
pub(crate) fn encode(messages: &[Message], tz: &jiff::tz::TimeZone) -> String {
    let mut out = String::with_capacity(2 + messages.len() * 96);
    out.push('[');
    for (i, m) in messages.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, r#"{{"id":{},"user":"#, m.id);
        push_escaped(&mut out, &m.user);
        out.push_str(r#","message":"#);
        push_escaped(&mut out, &m.message);
        out.push_str(r#","time":"#);
        php::push_json_string(&mut out, &php::date_ymd_his(m.created_at, tz));
        out.push('}');
    }
    out.push(']');
    out
}

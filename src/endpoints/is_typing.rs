//! `isTyping.php`: sets or clears the caller's typing flag; lists the others typing.

use bytes::Bytes;
use http_body_util::Full;
use hyper::Response;

use super::{int_param, json, push_escaped, required_user, room};
use crate::chat::Chat;
use crate::error::ApiError;
use crate::php;
use crate::store::Typing;

pub(super) async fn handle(
    chat: &Chat,
    req: &php::Request,
) -> Result<Response<Full<Bytes>>, ApiError> {
    let room = room(req)?;
    let user = required_user(req)?;
    let change = match int_param(req, "typing", "invalid typing")? {
        None => None,
        Some(1) => Some(Typing::Start),
        Some(0) => Some(Typing::Stop),
        Some(_) => return Err(ApiError::BadRequest("invalid typing")),
    };
    let names = chat.typing(&room, &user, change).await?;
    let mut out = String::from("[");
    for (i, name) in names.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_escaped(&mut out, name);
    }
    out.push(']');
    Ok(json(out))
}

//! `sendMessage.php`: stores a message; `{"status":"ok","id":N}`.

use bytes::Bytes;
use http_body_util::Full;
use hyper::Response;

use super::{MAX_MESSAGE, json, required_user, room, text_param};
use crate::chat::Chat;
use crate::error::ApiError;
use crate::php;

pub(super) async fn handle(
    chat: &Chat,
    req: &php::Request,
) -> Result<Response<Full<Bytes>>, ApiError> {
    let room = room(req)?;
    let user = required_user(req)?;
    let message = match text_param(req, "message", "invalid message")? {
        None => return Err(ApiError::BadRequest("missing message")),
        Some(m) if m.is_empty() => return Err(ApiError::BadRequest("missing message")),
        Some(m) if php::mb_strlen(&m) > MAX_MESSAGE => {
            return Err(ApiError::BadRequest("message too long"));
        }
        Some(m) => m,
    };
    let id = chat.send(&room, &user, &message).await?;
    Ok(json(format!(r#"{{"status":"ok","id":{id}}}"#)))
}

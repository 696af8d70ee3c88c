//! `getNumberOfUsers.php`: users present in the room, as PHP's default text/html.

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Response, StatusCode};

use super::room;
use crate::chat::Chat;
use crate::error::{ApiError, text};
use crate::php;

pub(super) async fn handle(
    chat: &Chat,
    req: &php::Request,
) -> Result<Response<Full<Bytes>>, ApiError> {
    let room = room(req)?;
    let n = chat.online(&room).await?;
    Ok(text(
        StatusCode::OK,
        "text/html; charset=UTF-8",
        n.to_string(),
    ))
}

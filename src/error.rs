//! Error types, and the one place that maps them to HTTP answers.

use std::path::PathBuf;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Response, StatusCode, header};

/// Failures of the SQLite store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite said no.
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A file or folder could not be created.
    #[error("{0}: {1}")]
    Io(PathBuf, std::io::Error),
    /// The database cannot be written by this process.
    #[error("{0}: cometa needs {1}: {2}")]
    Permission(PathBuf, String, std::io::Error),
    /// The file at the path is not the one open (deleted or replaced).
    #[error(
        "the database file was deleted or replaced; not writing until a valid database is at the path"
    )]
    Replaced,
    /// The store is shutting down.
    #[error("store closed")]
    Closed,
    /// Another process held the write lock past `busy_timeout`: nothing stored.
    #[error("database busy")]
    Busy,
    /// The transaction failed as a whole: nothing stored.
    #[error("transaction failed: {0}")]
    Failed(String),
    /// A profile's template or condition failed while answering.
    #[error("profile: {0}")]
    Profile(String),
}

/// Why a request is answered with something other than success.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A parameter breaks the contract's rules (400); the reason is the contract's.
    #[error("{0}")]
    BadRequest(&'static str),
    /// The body is over the configured cap (413).
    #[error("request body too large")]
    TooLarge,
    /// Not GET or POST on an endpoint (405).
    #[error("method not allowed")]
    MethodNotAllowed,
    /// Not GET or HEAD on a static file (405).
    #[error("method not allowed")]
    StaticMethodNotAllowed,
    /// The body did not arrive within the body timeout (408; the connection is closed).
    #[error("request timeout")]
    BodyTimeout,
    /// No such path (404).
    #[error("not found")]
    NotFound,
    /// The store failed (500); logged, never shown to the client.
    #[error("internal error: {0}")]
    Store(#[from] StoreError),
}

impl ApiError {
    /// The HTTP answer for this error.
    pub fn into_response(self) -> Response<Full<Bytes>> {
        let status = match &self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            ApiError::MethodNotAllowed | ApiError::StaticMethodNotAllowed => {
                StatusCode::METHOD_NOT_ALLOWED
            }
            ApiError::NotFound => {
                return text(
                    StatusCode::NOT_FOUND,
                    "text/plain; charset=utf-8",
                    "Not Found",
                );
            }
            ApiError::Store(e) => {
                tracing::error!(error = %e, "request failed in the store");
                StatusCode::INTERNAL_SERVER_ERROR
            }
        };
        let reason = match &self {
            ApiError::Store(_) => "internal error".to_owned(),
            other => other.to_string(),
        };
        let allow = match &self {
            ApiError::MethodNotAllowed => Some("GET, POST"),
            ApiError::StaticMethodNotAllowed => Some("GET, HEAD"),
            _ => None,
        };
        let mut res = json_error(status, &reason);
        if let Some(allow) = allow {
            res.headers_mut()
                .insert(header::ALLOW, header::HeaderValue::from_static(allow));
        }
        if matches!(self, ApiError::BodyTimeout) {
            // The rest of the body may still come: nothing after it can be read.
            res.headers_mut().insert(
                header::CONNECTION,
                header::HeaderValue::from_static("close"),
            );
        }
        res
    }
}

/// `{"status":"error","error":"<reason>"}` with the given status.
pub fn json_error(status: StatusCode, reason: &str) -> Response<Full<Bytes>> {
    let mut body = String::from(r#"{"status":"error","error":"#);
    crate::php::push_json_string(&mut body, reason);
    body.push('}');
    text(status, "application/json", body)
}

/// A response with a body and a `Content-Type`.
pub fn text(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<Full<Bytes>> {
    let mut res = Response::new(Full::new(body.into()));
    *res.status_mut() = status;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    res
}

//! The static front end. Only plain files under the folder are served: no
//! `..`, no dotfiles, never a `.php` source.

use std::path::{Component, Path, PathBuf};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Response, StatusCode, header};

use crate::error::ApiError;

/// Serves `path` (URL path below the base path, starting with `/`) from `dir`.
pub async fn serve(dir: &Path, path: &str, head: bool) -> Result<Response<Full<Bytes>>, ApiError> {
    let file = resolve(dir, path).ok_or(ApiError::NotFound)?;
    let body = match tokio::fs::read(&file).await {
        Ok(b) => b,
        Err(_) => return Err(ApiError::NotFound),
    };
    let mime = mime_guess::from_path(&file).first_or_octet_stream();
    let content_type = if mime.type_() == mime_guess::mime::TEXT
        || mime.essence_str() == "application/javascript"
    {
        format!("{}; charset=utf-8", mime.essence_str())
    } else {
        mime.essence_str().to_owned()
    };
    let len = body.len();
    let mut res = Response::new(Full::new(if head {
        Bytes::new()
    } else {
        Bytes::from(body)
    }));
    *res.status_mut() = StatusCode::OK;
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_str(&content_type).map_err(|_| ApiError::NotFound)?,
    );
    h.insert(header::CONTENT_LENGTH, header::HeaderValue::from(len));
    h.insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-cache"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        header::HeaderValue::from_static("nosniff"),
    );
    Ok(res)
}

/// The file for `path`, or `None` when it is not one we serve.
fn resolve(dir: &Path, path: &str) -> Option<PathBuf> {
    let decoded = percent_encoding::percent_decode_str(path)
        .decode_utf8()
        .ok()?;
    let mut file = dir.to_path_buf();
    let rel = decoded.trim_start_matches('/');
    for part in Path::new(rel).components() {
        match part {
            Component::Normal(p) => {
                let p = p.to_str()?;
                if p.starts_with('.') || p.contains('\\') || p.contains('\0') {
                    return None;
                }
                file.push(p);
            }
            _ => return None,
        }
    }
    if decoded.ends_with('/') || rel.is_empty() {
        file.push("index.html");
    }
    if file
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("php"))
    {
        return None;
    }
    // Not a directory, and no symlink that leads out of the folder.
    let real = file.canonicalize().ok()?;
    let root = dir.canonicalize().ok()?;
    (real.starts_with(&root) && real.is_file()).then_some(real)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_what_must_not_be_served() {
        let dir = std::env::temp_dir().join(format!("cometa-static-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        for f in ["index.html", "a.js", "x.php", ".env", "sub/index.html"] {
            std::fs::write(dir.join(f), "x").unwrap();
        }
        assert!(resolve(&dir, "/").is_some());
        assert!(resolve(&dir, "/a.js").is_some());
        assert!(resolve(&dir, "/sub/").is_some());
        for bad in [
            "/x.php",
            "/X.PHP",
            "/.env",
            "/../etc/passwd",
            "/%2e%2e/etc/passwd",
            "/sub",
            "/nope.js",
            "/a.js%00",
        ] {
            assert!(resolve(&dir, bad).is_none(), "{bad} must not be served");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

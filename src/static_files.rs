//! The static front end. Only plain files under the folder are served, and
//! only front-end types ([`SERVED`]): no `..`, no dotfiles, never a PHP source
//! (`.php`, `.phtml`, `.php.bak`, `.inc`, …), not even through a symlink whose
//! own name looks harmless: the resolved file's name is checked too.

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

/// The extensions served (case-insensitive): pages, styles, scripts, source
/// maps, JSON, text, images and fonts. Anything else is 404.
pub const SERVED: &[&str] = &[
    "html", "htm", "css", "js", "mjs", "map", "json", "txt", "png", "jpg", "jpeg", "gif", "svg",
    "webp", "avif", "ico", "bmp", "woff", "woff2", "ttf", "otf", "eot",
];

/// Whether the file name's extension is one we serve (a dotfile never is).
fn servable(name: &Path) -> bool {
    let Some(file) = name.file_name().and_then(|f| f.to_str()) else {
        return false;
    };
    !file.starts_with('.')
        && name
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| SERVED.iter().any(|s| s.eq_ignore_ascii_case(e)))
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
    if !servable(&file) {
        return None;
    }
    // Not a directory, no symlink that leads out of the folder, and a symlink
    // is judged by the file it leads to.
    let real = file.canonicalize().ok()?;
    let root = dir.canonicalize().ok()?;
    let inside = real.strip_prefix(&root).ok()?;
    let hidden = inside
        .components()
        .any(|c| c.as_os_str().to_str().is_none_or(|p| p.starts_with('.')));
    (!hidden && servable(&real) && real.is_file()).then_some(real)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_what_must_not_be_served() {
        let dir = std::env::temp_dir().join(format!("cometa-static-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        for f in [
            "index.html",
            "a.js",
            "x.php",
            ".env",
            "sub/index.html",
            "y.phtml",
            "y.php.bak",
            "y.inc",
            "y.PHP5",
            "noext",
        ] {
            std::fs::write(dir.join(f), "x").unwrap();
        }
        std::os::unix::fs::symlink(dir.join("x.php"), dir.join("looks.js")).unwrap();
        std::os::unix::fs::symlink(dir.join("y.inc"), dir.join("looks.css")).unwrap();
        std::os::unix::fs::symlink(dir.join("a.js"), dir.join("fine.js")).unwrap();
        std::fs::create_dir_all(dir.join(".git")).unwrap();
        std::fs::write(dir.join(".git/HEAD.txt"), "x").unwrap();
        std::os::unix::fs::symlink(dir.join(".git/HEAD.txt"), dir.join("head.txt")).unwrap();
        assert!(
            resolve(&dir, "/fine.js").is_some(),
            "a symlink to a served type"
        );
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
            "/y.phtml",
            "/y.php.bak",
            "/y.inc",
            "/y.PHP5",
            "/noext",
            "/looks.js",
            "/looks.css",
            "/head.txt",
        ] {
            assert!(resolve(&dir, bad).is_none(), "{bad} must not be served");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

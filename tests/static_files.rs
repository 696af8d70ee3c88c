//! The static front end: index, MIME types, no PHP sources or dotfiles, no traversal,
//! and the whole app under `--base-path`.

mod common;

use common::{APP_JS, INDEX_HTML, STYLE_CSS, SUB_TXT, Server};

#[track_caller]
fn assert_served(r: &common::Response, body: &str, ct_prefixes: &[&str]) {
    assert_eq!(r.status, 200, "{r}");
    assert_eq!(r.body, body.as_bytes(), "{r}");
    let ct = r.header("content-type").unwrap_or_default();
    assert!(
        ct_prefixes.iter().any(|p| ct.starts_with(p)),
        "Content-Type {ct:?}, wanted one of {ct_prefixes:?}"
    );
}

#[track_caller]
fn assert_not_found(r: &common::Response) {
    assert_eq!(r.status, 404, "{r}");
    assert_eq!(r.text(), "Not Found", "{r}");
    let ct = r.header("content-type").unwrap_or_default();
    assert!(ct.starts_with("text/plain"), "404 Content-Type {ct:?}");
}

#[track_caller]
fn assert_refused(path: &str, r: &common::Response) {
    assert!(r.status == 404 || r.status == 400, "{path}: {r}");
    let t = r.text();
    assert!(
        !t.contains("SECRET") && !t.contains("root:"),
        "{path} leaked a file: {r}"
    );
}

#[test]
fn index_and_assets_are_served_with_their_types() {
    let s = Server::start();
    assert_served(&s.get("/"), INDEX_HTML, &["text/html"]);
    assert_served(&s.get("/index.html"), INDEX_HTML, &["text/html"]);
    assert_served(&s.get("/?_=123"), INDEX_HTML, &["text/html"]);
    assert_served(
        &s.get("/app.js"),
        APP_JS,
        &["application/javascript", "text/javascript"],
    );
    assert_served(
        &s.get("/app.js?v=2"),
        APP_JS,
        &["application/javascript", "text/javascript"],
    );
    assert_served(&s.get("/style.css"), STYLE_CSS, &["text/css"]);
    assert_served(&s.get("/sub/page.txt"), SUB_TXT, &["text/plain"]);
}

#[test]
fn head_gives_the_headers_without_a_body() {
    let s = Server::start();
    let r = s.request("HEAD", "/", &[], b"");
    assert_eq!(r.status, 200, "{r}");
    assert!(
        r.header("content-type")
            .unwrap_or_default()
            .starts_with("text/html"),
        "{r}"
    );
    if let Some(len) = r.header("content-length") {
        assert_eq!(len, INDEX_HTML.len().to_string());
    }
    // The connection carries nothing after the head.
    let mut c = common::Conn::open(s.addr).unwrap();
    c.write(&common::request_bytes(s.addr, "HEAD", "/app.js", &[], b""))
        .unwrap();
    let r = c.read_response(true).unwrap();
    assert_eq!(r.status, 200);
    let mut rest = Vec::new();
    std::io::Read::read_to_end(&mut c.stream().try_clone().unwrap(), &mut rest).unwrap();
    assert!(
        rest.is_empty(),
        "HEAD sent a body: {:?}",
        String::from_utf8_lossy(&rest)
    );
}

#[test]
fn php_sources_and_dotfiles_are_never_served() {
    let s = Server::start();
    for path in [
        "/secret.php",
        "/sub/inner.php",
        "/secret.php?x=1",
        "/secret%2ephp",
        "/secret%2Ephp",
        "/.hidden",
        "/%2ehidden",
        "/.git/config",
        "/.git/",
        "/sub/.env",
    ] {
        let r = s.get(path);
        assert_refused(path, &r);
        if !path.contains('%') {
            assert_not_found(&r);
        }
    }
}

#[test]
fn unknown_paths_are_404_not_found() {
    let s = Server::start();
    for path in [
        "/nope.html",
        "/nope.php",
        "/sub/nope.txt",
        "/SendMessage.php",
        "/listenToReceive.php",
    ] {
        assert_not_found(&s.get(path));
    }
}

#[test]
fn path_traversal_is_impossible() {
    let s = Server::start();
    // outside.txt sits next to the static dir; /etc/passwd is the classic.
    for path in [
        "/../outside.txt",
        "/%2e%2e/outside.txt",
        "/%2E%2E%2Foutside.txt",
        "/..%2foutside.txt",
        "/sub/../../outside.txt",
        "/sub/%2e%2e/%2e%2e/outside.txt",
        "/sub/..%2f..%2foutside.txt",
        "/./../outside.txt",
        "//../outside.txt",
        "/..\\outside.txt",
        "/..%5coutside.txt",
        "/../../../../../../etc/passwd",
        "/%2e%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
        "//etc/passwd",
        "/%2Fetc%2Fpasswd",
        "/static/../outside.txt",
        "/index.html%00.txt",
    ] {
        let raw = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            s.addr
        );
        match common::raw(s.addr, raw.as_bytes()) {
            Ok(r) => assert_refused(path, &r),
            // Closing the connection on a malformed target is fine too.
            Err(e) => eprintln!("{path}: connection error {e} (accepted)"),
        }
    }
}

#[test]
fn base_path_mode_serves_everything_under_the_prefix() {
    let s = Server::builder().base_path("/chat").start();
    assert_served(&s.get("/chat/"), INDEX_HTML, &["text/html"]);
    assert_served(&s.get("/chat/index.html"), INDEX_HTML, &["text/html"]);
    assert_served(
        &s.get("/chat/app.js"),
        APP_JS,
        &["application/javascript", "text/javascript"],
    );

    s.post("/chat/sendMessage.php", "user=ana&message=hi")
        .assert_json(r#"{"status":"ok","id":1}"#);
    let r = s.get("/chat/listenToRecive.php?lastId=0");
    let m = common::parse_messages(&r);
    r.assert_json(&format!(
        "[{}]",
        common::msg_json(1, "ana", "hi", &m[0].time)
    ));
    s.get("/chat/getNumberOfUsers.php")
        .assert(200, "text/html; charset=UTF-8", "1");
    s.post("/chat/isTyping.php", "user=bob&typing=1")
        .assert_json("[]");
    let r = s.get("/chat/_cometa/stats");
    assert_eq!(r.status, 200, "{r}");
    assert_eq!(r.header("content-type"), Some("application/json"));

    // Outside the prefix: nothing.
    for path in [
        "/",
        "/index.html",
        "/app.js",
        "/sendMessage.php?user=eve&message=outside",
        "/listenToRecive.php",
        "/getNumberOfUsers.php",
        "/isTyping.php?user=eve",
        "/chatx/sendMessage.php?user=eve&message=x",
        "/chat/secret.php",
        "/chat/.hidden",
    ] {
        assert_not_found(&s.get(path));
    }
    let r = s.post("/sendMessage.php", "user=eve&message=outside");
    assert_not_found(&r);
    assert_eq!(s.counts().0, 1, "nothing stored outside the prefix");
    let r = s.get("/chat/../outside.txt");
    assert_refused("/chat/../outside.txt", &r);
}

#[test]
fn php_sources_are_never_served_even_through_a_symlink_or_another_extension() {
    let s = Server::start();
    let dir = &s.static_dir;
    for f in [
        "old.php.bak",
        "view.phtml",
        "config.inc",
        "run.PHP7",
        "Makefile",
    ] {
        std::fs::write(dir.join(f), common::SECRET_PHP).unwrap();
    }
    // Harmless names that resolve to a PHP source.
    std::os::unix::fs::symlink(dir.join("secret.php"), dir.join("lib.js")).unwrap();
    std::os::unix::fs::symlink(dir.join("config.inc"), dir.join("site.css")).unwrap();
    std::os::unix::fs::symlink(dir.join("sub/inner.php"), dir.join("sub/notes.txt")).unwrap();
    std::os::unix::fs::symlink(dir.join("sub/.env"), dir.join("env.txt")).unwrap();
    for path in [
        "/old.php.bak",
        "/view.phtml",
        "/config.inc",
        "/run.PHP7",
        "/Makefile",
        "/lib.js",
        "/site.css",
        "/sub/notes.txt",
        "/env.txt",
    ] {
        assert_refused(path, &s.get(path));
    }
    // A symlink to a front-end file is still served.
    std::os::unix::fs::symlink(dir.join("app.js"), dir.join("app2.js")).unwrap();
    assert_served(
        &s.get("/app2.js"),
        APP_JS,
        &["application/javascript", "text/javascript"],
    );
}

//! The old front ends are frozen: the Rust server adapts to them, never the
//! other way round. Their files must keep the checksums recorded when their
//! browser tests passed against PHP: `legacy_php/frozen-client.sha256` for the
//! built-in chat, `legacy_php/omegle/frozen-client.sha256` for the
//! talk-to-a-stranger chat.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// A frozen front end: its folder (under the repository) and its checksum list.
struct Client {
    public: &'static str,
    sums: &'static str,
}

const CHAT: Client = Client {
    public: "legacy_php/public",
    sums: "legacy_php/frozen-client.sha256",
};

const OMEGLE: Client = Client {
    public: "legacy_php/omegle/public",
    sums: "legacy_php/omegle/frozen-client.sha256",
};

fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn recorded(client: &Client) -> Vec<(String, String)> {
    let list = std::fs::read_to_string(repo(client.sums))
        .unwrap_or_else(|e| panic!("{}: {e}", client.sums));
    list.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let (sum, name) = l.split_once("  ").expect("sha256sum format: SUM  NAME");
            (sum.to_owned(), name.to_owned())
        })
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn assert_unchanged(client: &Client) {
    for (sum, name) in recorded(client) {
        let bytes = std::fs::read(repo(client.public).join(&name))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            hex(&Sha256::digest(&bytes)),
            sum,
            "{}/{name} changed: the front end is frozen; adapt the server instead",
            client.public
        );
    }
}

fn assert_all_frozen(client: &Client) {
    let frozen: BTreeSet<String> = recorded(client).into_iter().map(|(_, n)| n).collect();
    let served: BTreeSet<String> = std::fs::read_dir(repo(client.public))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| !n.ends_with(".php"))
        .collect();
    assert_eq!(
        served, frozen,
        "a static file was added to or removed from the frozen front end in {}",
        client.public
    );
}

#[test]
fn front_end_files_are_unchanged() {
    assert_unchanged(&CHAT);
}

#[test]
fn every_front_end_file_is_under_the_freeze() {
    assert_all_frozen(&CHAT);
}

#[test]
fn omegle_front_end_files_are_unchanged() {
    assert_unchanged(&OMEGLE);
}

#[test]
fn every_omegle_front_end_file_is_under_the_freeze() {
    assert_all_frozen(&OMEGLE);
}

#[test]
fn jquery_is_the_published_npm_file() {
    let published = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/node_modules/jquery/dist/jquery.min.js"
    ));
    if !published.exists() {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "node_modules/jquery missing under CI: tests/run installs it with npm ci"
        );
        eprintln!("skipped: node_modules/jquery not installed (npm ci)");
        return;
    }
    assert_eq!(
        std::fs::read(published).unwrap(),
        std::fs::read(repo(CHAT.public).join("jquery-1.12.4.min.js")).unwrap(),
        "the vendored jQuery differs from jquery@1.12.4's dist/jquery.min.js"
    );
}

//! The old front end is frozen: the Rust server adapts to it, never the other
//! way round. Its files must keep the checksums recorded in
//! `legacy_php/frozen-client.sha256` when its browser tests passed against PHP.

use std::collections::BTreeSet;
use std::path::Path;

use sha2::{Digest, Sha256};

fn public() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/legacy_php/public"))
}

fn recorded() -> Vec<(String, String)> {
    let list = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/legacy_php/frozen-client.sha256"
    ))
    .expect("legacy_php/frozen-client.sha256");
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

#[test]
fn front_end_files_are_unchanged() {
    for (sum, name) in recorded() {
        let bytes = std::fs::read(public().join(&name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            hex(&Sha256::digest(&bytes)),
            sum,
            "legacy_php/public/{name} changed: the front end is frozen; adapt the server instead"
        );
    }
}

#[test]
fn every_front_end_file_is_under_the_freeze() {
    let frozen: BTreeSet<String> = recorded().into_iter().map(|(_, n)| n).collect();
    let served: BTreeSet<String> = std::fs::read_dir(public())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| !n.ends_with(".php"))
        .collect();
    assert_eq!(
        served, frozen,
        "a static file was added to or removed from the frozen front end"
    );
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
        std::fs::read(public().join("jquery-1.12.4.min.js")).unwrap(),
        "the vendored jQuery differs from jquery@1.12.4's dist/jquery.min.js"
    );
}

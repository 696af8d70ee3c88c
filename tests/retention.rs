//! Retention (issue 9, item 13): off by default; by age and by count per room
//! when asked, applied by the writer in small batches between sends.

mod common;

use std::time::Duration;

use common::{Server, open_db, wait_for};

fn ids(s: &Server, room: &str) -> Vec<i64> {
    open_db(&s.db)
        .prepare("SELECT id FROM messages WHERE room = ?1 ORDER BY id")
        .unwrap()
        .query_map([room], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

#[test]
fn nothing_is_deleted_by_default() {
    let s = Server::start();
    open_db(&s.db)
        .execute(
            "INSERT INTO messages (room, user, message, created_at) VALUES ('main', 'old', 'from 1970', 0)",
            [],
        )
        .unwrap();
    for i in 0..5 {
        s.send("ana", &format!("m{i}"), "main");
    }
    // The writer has run its maintenance after these commits: still everything.
    assert_eq!(ids(&s, "main").len(), 6);
}

#[test]
fn per_room_retention_keeps_the_newest_of_each_room() {
    let s = Server::builder().arg("--retain-per-room").arg("3").start();
    for i in 0..10 {
        s.send("ana", &format!("a{i}"), "a");
    }
    s.send("bob", "b0", "b");
    s.send("bob", "b1", "b");
    wait_for(
        Duration::from_secs(15),
        "room a cut to its newest 3",
        || (ids(&s, "a") == [8, 9, 10]).then_some(()),
    );
    assert_eq!(ids(&s, "b"), [11, 12], "a room under the cap is untouched");
    // Polls keep working from where they were.
    let r = s.listen_q("room=a&lastId=9");
    assert!(r.text().contains("a9"), "{}", r.text());
}

#[test]
fn age_retention_deletes_old_messages_in_batches() {
    let s = Server::builder().arg("--retain-days").arg("1").start();
    let c = open_db(&s.db);
    c.execute_batch("BEGIN").unwrap();
    for i in 0..1200 {
        c.execute(
            "INSERT INTO messages (room, user, message, created_at) VALUES ('main', 'old', ?1, 1000)",
            [format!("old{i}")],
        )
        .unwrap();
    }
    c.execute_batch("COMMIT").unwrap();
    let fresh = s.send("ana", "fresh", "main");
    wait_for(Duration::from_secs(15), "old messages gone", || {
        (ids(&s, "main") == [fresh]).then_some(())
    });
}

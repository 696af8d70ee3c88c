//! The mixed deployment with the real parts: Debian's nginx in front, Debian's
//! php-fpm running the legacy endpoints, cometa on a unix socket, one SQLite
//! file. nginx runs the site of `deploy/nginx-cometa.conf` and php-fpm the pool
//! of `deploy/php-fpm-pool.conf`, rendered as an operator renders them (see
//! `tests/common/stack.rs`), twice: `site` as deployed (the long-poll on
//! cometa, the rest on php-fpm) and `inverse` (the long-poll on php-fpm, the
//! rest on cometa). Every answer says which back end made it (`X-Upstream`), and
//! every test checks that, so a routing mistake cannot pass unnoticed.
//!
//! - php-fpm's sends wake the polls cometa holds, and cometa's sends reach the
//!   legacy PHP long-poll, both through nginx, with byte-equal answers;
//! - presence and typing agree whichever side wrote them and whichever reads;
//! - restarting cometa (SIGTERM, start again) loses nothing for a client that
//!   follows its `lastId` and retries on 502;
//! - the site serves the front end, keeps `lib/` out, never compresses the
//!   poll, lets 4xx JSON through, and ends a quiet poll with `[]`;
//! - the deploy files keep hold < the page's timeout < nginx's read timeouts.
//!
//! Without nginx or php-fpm the tests say loudly that they are skipped; under
//! `CI=true` they fail.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::stack::{Stack, Upstream, deploy_file, stack_or_skip};
use common::{
    Conn, Msg, Response, form, http, parse_messages, parse_send_ok, parse_string_array, try_http,
    wait_for,
};

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

fn get(addr: SocketAddr, path: &str) -> Response {
    http(addr, "GET", path, &[], b"")
}

fn post(addr: SocketAddr, path: &str, body: &str) -> Response {
    http(
        addr,
        "POST",
        path,
        &[("Content-Type", "application/x-www-form-urlencoded")],
        body.as_bytes(),
    )
}

/// Asserts which back end answered.
#[track_caller]
fn from(s: &Stack, r: &Response, expected: Upstream) {
    assert_eq!(s.upstream(r), expected, "who answered: {r}");
}

/// Sends through `addr`'s `sendMessage.php`, checks that `by` answered; the id.
#[track_caller]
fn send(s: &Stack, addr: SocketAddr, by: Upstream, user: &str, message: &str, room: &str) -> i64 {
    let r = post(
        addr,
        "/sendMessage.php",
        &form(&[("user", user), ("message", message), ("room", room)]),
    );
    from(s, &r, by);
    parse_send_ok(&r)
}

fn listen_path(last_id: i64, room: &str, user: Option<&str>) -> String {
    let last = last_id.to_string();
    let mut q = vec![("lastId", last.as_str()), ("room", room)];
    if let Some(u) = user {
        q.push(("user", u));
    }
    format!("/listenToRecive.php?{}", form(&q))
}

/// cometa's waiter count, from its admin listener's `/_cometa/stats`.
fn waiters(s: &Stack) -> u64 {
    let r = get(s.cometa_admin, "/_cometa/stats");
    assert_eq!(r.status, 200, "stats: {r}");
    let t = r.text();
    let rest = t
        .strip_prefix(r#"{"waiters":"#)
        .unwrap_or_else(|| panic!("stats: {t}"));
    rest[..rest.find(',').unwrap_or_else(|| panic!("stats: {t}"))]
        .parse()
        .unwrap_or_else(|_| panic!("stats: {t}"))
}

/// Asserts that two answers of different back ends are the same on the wire
/// (status, `Content-Type`, body bytes).
#[track_caller]
fn same_answer(what: &str, a: &Response, b: &Response) {
    assert_eq!(
        (a.status, a.header("content-type"), &a.body),
        (b.status, b.header("content-type"), &b.body),
        "{what}: the two back ends answer differently\n--- one ---\n{a}\n--- other ---\n{b}"
    );
}

/// `getNumberOfUsers.php` from php-fpm (site) and from cometa (inverse): equal; the number.
#[track_caller]
fn users_both(s: &Stack, room: &str) -> u64 {
    let path = format!("/getNumberOfUsers.php?{}", form(&[("room", room)]));
    let php = get(s.site, &path);
    let cometa = get(s.inverse, &path);
    from(s, &php, Upstream::PhpFpm);
    from(s, &cometa, Upstream::Cometa);
    same_answer("getNumberOfUsers.php", &php, &cometa);
    assert_eq!(php.status, 200, "{php}");
    assert_eq!(php.header("content-type"), Some("text/html; charset=UTF-8"));
    php.text()
        .parse()
        .unwrap_or_else(|_| panic!("not a number: {php}"))
}

/// `isTyping.php` (without `typing`) asked by `user` of php-fpm and of cometa:
/// equal; the names.
#[track_caller]
fn typing_both(s: &Stack, room: &str, user: &str) -> Vec<String> {
    let body = form(&[("user", user), ("room", room)]);
    let php = post(s.site, "/isTyping.php", &body);
    let cometa = post(s.inverse, "/isTyping.php", &body);
    from(s, &php, Upstream::PhpFpm);
    from(s, &cometa, Upstream::Cometa);
    same_answer("isTyping.php", &php, &cometa);
    assert_eq!(php.status, 200, "{php}");
    assert_eq!(php.header("content-type"), Some("application/json"));
    parse_string_array(&php)
}

/// Sets (`"1"`) or clears (`"0"`) `user`'s typing flag through `addr`.
#[track_caller]
fn set_typing(s: &Stack, addr: SocketAddr, by: Upstream, room: &str, user: &str, typing: &str) {
    let r = post(
        addr,
        "/isTyping.php",
        &form(&[("user", user), ("room", room), ("typing", typing)]),
    );
    from(s, &r, by);
    assert_eq!(r.status, 200, "isTyping: {r}");
}

// ---------------------------------------------------------------------------
// Messages, both directions
// ---------------------------------------------------------------------------

#[test]
fn messages_sent_via_php_fpm_wake_the_polls_cometa_holds() {
    if !stack_or_skip("messages_sent_via_php_fpm_wake_the_polls_cometa_holds") {
        return;
    }
    let s = Stack::start("3");
    let room = "fpm-to-cometa";
    let id0 = send(&s, s.site, Upstream::PhpFpm, "ana", "first", room);

    for round in 0..3 {
        let mut conn = Conn::open(s.site).expect("connect to nginx");
        conn.send_get(s.site, &listen_path(id0 + round, room, None))
            .unwrap();
        wait_for(Duration::from_secs(5), "cometa to hold the poll", || {
            (waiters(&s) == 1).then_some(())
        });
        let text = format!("via php-fpm #{round} <b>\"&'");
        let sent_at = Instant::now();
        let id = send(&s, s.site, Upstream::PhpFpm, "bob", &text, room);
        let r = conn.read_response(false).expect("the held poll's answer");
        let took = sent_at.elapsed();
        from(&s, &r, Upstream::Cometa);
        let msgs = parse_messages(&r);
        assert_eq!(
            msgs.iter().map(|m| m.id).collect::<Vec<_>>(),
            vec![id],
            "round {round}: {r}"
        );
        assert_eq!(msgs[0].user, "bob");
        assert_eq!(
            msgs[0].message,
            format!("via php-fpm #{round} &lt;b&gt;&quot;&amp;&#039;")
        );
        // Woken by the commit, well before the 3 s hold.
        assert!(
            took < Duration::from_millis(1500),
            "round {round}: the held poll answered {took:?} after PHP's send"
        );

        // The legacy long-poll answers the same query with the same bytes.
        let php = get(s.inverse, &listen_path(id0 + round, room, None));
        from(&s, &php, Upstream::PhpFpm);
        same_answer("listenToRecive.php after a PHP send", &r, &php);
    }
}

#[test]
fn messages_sent_via_cometa_reach_the_legacy_php_long_poll() {
    if !stack_or_skip("messages_sent_via_cometa_reach_the_legacy_php_long_poll") {
        return;
    }
    let s = Stack::start("3");
    let room = "cometa-to-fpm";
    let id0 = send(&s, s.inverse, Upstream::Cometa, "ana", "first", room);
    assert_eq!(users_both(&s, room), 1, "ana, marked by her send");

    let mut last = id0;
    for (round, poller) in ["carl", "dora", "emil"].into_iter().enumerate() {
        let mut conn = Conn::open(s.inverse).expect("connect to nginx");
        conn.send_get(s.inverse, &listen_path(last, room, Some(poller)))
            .unwrap();
        // The PHP poll marks its user present before it starts waiting, so
        // cometa counting them means PHP is now holding the poll (ana sends).
        let present = 2 + round as u64;
        wait_for(Duration::from_secs(5), "the PHP poll to start", || {
            let r = get(s.inverse, &format!("/getNumberOfUsers.php?room={room}"));
            from(&s, &r, Upstream::Cometa);
            (r.text() == present.to_string()).then_some(())
        });
        assert_eq!(users_both(&s, room), present);
        let sent_at = Instant::now();
        let id = send(
            &s,
            s.inverse,
            Upstream::Cometa,
            "ana",
            "via cometa é😀",
            room,
        );
        let r = conn.read_response(false).expect("the held poll's answer");
        let took = sent_at.elapsed();
        from(&s, &r, Upstream::PhpFpm);
        let msgs = parse_messages(&r);
        assert_eq!(
            msgs.iter().map(|m| m.id).collect::<Vec<_>>(),
            vec![id],
            "round {round}: {r}"
        );
        assert_eq!(msgs[0].message, "via cometa é😀");
        // PHP looks every 250 ms: well before the 3 s hold.
        assert!(
            took < Duration::from_millis(2000),
            "round {round}: the PHP poll answered {took:?} after cometa's send"
        );

        // cometa answers the same query with the same bytes.
        let c = get(s.site, &listen_path(last, room, None));
        from(&s, &c, Upstream::Cometa);
        same_answer("listenToRecive.php after a cometa send", &r, &c);
        last = id;
    }
}

// ---------------------------------------------------------------------------
// Presence and typing
// ---------------------------------------------------------------------------

#[test]
fn presence_and_typing_agree_whichever_side_wrote_them() {
    if !stack_or_skip("presence_and_typing_agree_whichever_side_wrote_them") {
        return;
    }
    let s = Stack::start("1");
    let room = "presence";
    let eve = "<i>\"eve\"&'";
    let eve_json = "&lt;i&gt;&quot;eve&quot;&amp;&#039;";
    assert_eq!(users_both(&s, room), 0);

    // Typing set by PHP, seen by both.
    set_typing(&s, s.site, Upstream::PhpFpm, room, "ana", "1");
    assert_eq!(users_both(&s, room), 1, "ana, marked by PHP's isTyping");
    assert_eq!(typing_both(&s, room, "bob"), ["ana"]);
    assert_eq!(users_both(&s, room), 2, "bob, marked by both isTyping");

    // Typing set by cometa, seen by both; an escaped name, sorted as SQL sorts.
    set_typing(&s, s.inverse, Upstream::Cometa, room, eve, "1");
    let mut both = vec![eve_json.to_string(), "ana".to_string()];
    assert_eq!(typing_both(&s, room, "bob"), both);
    assert_eq!(typing_both(&s, room, "ana"), [eve_json]);
    assert_eq!(users_both(&s, room), 3);

    // Cleared by the other side.
    set_typing(&s, s.inverse, Upstream::Cometa, room, "ana", "0");
    both.retain(|n| n != "ana");
    assert_eq!(typing_both(&s, room, "bob"), both);

    // A send through PHP clears the flag cometa set.
    send(&s, s.site, Upstream::PhpFpm, eve, "sent", room);
    assert!(typing_both(&s, room, "bob").is_empty());

    // And a send through cometa clears the flag PHP set.
    set_typing(&s, s.site, Upstream::PhpFpm, room, "ana", "1");
    assert_eq!(typing_both(&s, room, "bob"), ["ana"]);
    send(&s, s.inverse, Upstream::Cometa, "ana", "sent too", room);
    assert!(typing_both(&s, room, "bob").is_empty());

    // Presence marked by either long-poll (history: answered at once).
    let r = get(s.site, &listen_path(0, room, Some("dave")));
    from(&s, &r, Upstream::Cometa);
    // cometa writes a poll's mark in the background (it never delays the poll).
    common::wait_for(
        Duration::from_secs(5),
        "dave, marked by cometa's poll",
        || (users_both(&s, room) == 4).then_some(()),
    );
    let r = get(s.inverse, &listen_path(0, room, Some("fred")));
    from(&s, &r, Upstream::PhpFpm);
    assert_eq!(users_both(&s, room), 5, "fred, marked by PHP's poll");
    same_answer("history", &r, &get(s.site, &listen_path(0, room, None)));

    // Other rooms are untouched.
    assert_eq!(users_both(&s, "other"), 0);
    assert!(typing_both(&s, "other", "bob").is_empty());
}

// ---------------------------------------------------------------------------
// Restart without loss
// ---------------------------------------------------------------------------

/// What the follower saw, in order.
#[derive(Default)]
struct Seen {
    msgs: Vec<Msg>,
    /// (when the answer arrived, status, messages in it)
    answers: Vec<(Instant, u16, usize)>,
}

/// A client like the old page: polls `listenToRecive.php` through the site
/// following `lastId`, again at once after an answer, after a short back-off
/// after a 502; stops after the message `"end"`.
fn follower(site: SocketAddr, room: String, seen: Arc<Mutex<Seen>>, stop: Arc<AtomicBool>) {
    let deadline = Instant::now() + Duration::from_secs(40);
    let mut last = 0;
    while !stop.load(Ordering::SeqCst) {
        assert!(Instant::now() < deadline, "the follower ran out of time");
        let r = try_http(
            site,
            "GET",
            &listen_path(last, &room, Some("follower")),
            &[],
            b"",
        )
        .unwrap_or_else(|e| panic!("nginx itself must always answer: {e}"));
        let now = Instant::now();
        match r.status {
            200 => {
                let msgs = parse_messages(&r);
                let mut seen = seen.lock().unwrap();
                seen.answers.push((now, 200, msgs.len()));
                for m in msgs {
                    assert!(m.id > last, "id {} after {last}: {r}", m.id);
                    last = m.id;
                    let end = m.message == "end";
                    seen.msgs.push(m);
                    if end {
                        return;
                    }
                }
            }
            502 => {
                seen.lock().unwrap().answers.push((now, 502, 0));
                // The old page waits 2 s; a test can be quicker.
                thread::sleep(Duration::from_millis(50));
            }
            _ => panic!("unexpected answer to the follower's poll: {r}"),
        }
    }
}

#[test]
fn restarting_cometa_behind_nginx_loses_nothing() {
    if !stack_or_skip("restarting_cometa_behind_nginx_loses_nothing") {
        return;
    }
    // A long hold: the poll held at SIGTERM cannot have ended by itself.
    let mut s = Stack::start("5");
    let room = "restart";
    let mut sent = vec![send(&s, s.site, Upstream::PhpFpm, "ana", "m0", room)];

    let seen = Arc::new(Mutex::new(Seen::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let handle = {
        let (seen, stop, room) = (seen.clone(), stop.clone(), room.to_string());
        let site = s.site;
        thread::spawn(move || follower(site, room, seen, stop))
    };
    // Make sure the follower is stopped if an assertion below fails.
    struct StopOnDrop(Arc<AtomicBool>);
    impl Drop for StopOnDrop {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }
    let _stop_guard = StopOnDrop(stop.clone());
    let received = |n: usize| seen.lock().unwrap().msgs.len() >= n;

    sent.push(send(&s, s.site, Upstream::PhpFpm, "ana", "m1", room));
    wait_for(Duration::from_secs(5), "the follower to get m0, m1", || {
        received(2).then_some(())
    });
    wait_for(
        Duration::from_secs(5),
        "cometa to hold the follower's poll",
        || (waiters(&s) == 1).then_some(()),
    );

    // SIGTERM: the held poll is answered [] and cometa exits cleanly.
    let term_at = Instant::now();
    let st = s.stop_cometa();
    assert!(st.success(), "cometa's exit status after SIGTERM: {st:?}");
    let after_term = |seen: &Seen| -> Vec<(u16, usize)> {
        seen.answers
            .iter()
            .filter(|a| a.0 >= term_at)
            .map(|a| (a.1, a.2))
            .collect()
    };
    wait_for(Duration::from_secs(5), "the follower to see a 502", || {
        after_term(&seen.lock().unwrap())
            .contains(&(502, 0))
            .then_some(())
    });
    assert_eq!(
        after_term(&seen.lock().unwrap())[0],
        (200, 0),
        "the poll held at SIGTERM is answered [] (then 502s)"
    );

    // cometa is down: nginx answers 502 for the poll, php-fpm still stores.
    let r = get(s.site, &listen_path(sent[1], room, None));
    from(&s, &r, Upstream::Cometa);
    assert_eq!(r.status, 502, "while cometa is down: {r}");
    for i in 2..7 {
        sent.push(send(
            &s,
            s.site,
            Upstream::PhpFpm,
            "bob",
            &format!("m{i}"),
            room,
        ));
    }
    let gap_502s = |seen: &Seen| seen.answers.iter().filter(|a| a.1 == 502).count();
    let before = gap_502s(&seen.lock().unwrap());
    wait_for(
        Duration::from_secs(5),
        "the follower to retry during the gap",
        || (gap_502s(&seen.lock().unwrap()) > before).then_some(()),
    );
    assert_eq!(
        seen.lock().unwrap().msgs.len(),
        2,
        "nothing arrives while cometa is down"
    );

    // Start again: the follower catches up from its lastId.
    s.start_cometa();
    wait_for(
        Duration::from_secs(10),
        "the follower to get m2..m6",
        || received(7).then_some(()),
    );
    sent.push(send(&s, s.site, Upstream::PhpFpm, "ana", "m7", room));
    sent.push(send(&s, s.inverse, Upstream::Cometa, "bob", "m8", room));
    sent.push(send(&s, s.site, Upstream::PhpFpm, "ana", "end", room));

    let deadline = Instant::now() + Duration::from_secs(15);
    while !handle.is_finished() {
        assert!(
            Instant::now() < deadline,
            "the follower did not get \"end\""
        );
        thread::sleep(Duration::from_millis(20));
    }
    if let Err(e) = handle.join() {
        std::panic::resume_unwind(e);
    }

    // Every message exactly once, in order.
    let seen = seen.lock().unwrap();
    let ids: Vec<i64> = seen.msgs.iter().map(|m| m.id).collect();
    assert_eq!(ids, sent, "ids the follower received vs ids sent");
    let texts: Vec<&str> = seen.msgs.iter().map(|m| m.message.as_str()).collect();
    assert_eq!(
        texts,
        ["m0", "m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "end"]
    );
    let bad_gateways = seen.answers.iter().filter(|a| a.1 == 502).count();
    eprintln!(
        "restart: {bad_gateways} answers 502 during the gap, {} polls in all",
        seen.answers.len()
    );
}

/// With socket activation (`deploy/cometa.socket`) the socket outlives
/// cometa: during a restart nginx's connections wait in its queue, so no poll
/// and no send gets a 502, and nothing is lost.
#[test]
fn a_socket_activated_restart_behind_nginx_fails_no_request() {
    if !stack_or_skip("a_socket_activated_restart_behind_nginx_fails_no_request") {
        return;
    }
    let mut s = Stack::start_socket_activated("5");
    let room = "activated";
    let mut sent = vec![send(&s, s.site, Upstream::PhpFpm, "ana", "m0", room)];
    let seen = Arc::new(Mutex::new(Seen::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let handle = {
        let (seen, stop, room) = (seen.clone(), stop.clone(), room.to_string());
        let site = s.site;
        thread::spawn(move || follower(site, room, seen, stop))
    };
    struct StopOnDrop(Arc<AtomicBool>);
    impl Drop for StopOnDrop {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }
    let _stop_guard = StopOnDrop(stop.clone());
    wait_for(Duration::from_secs(5), "cometa to hold the poll", || {
        (waiters(&s) == 1).then_some(())
    });

    // Restart; sends through cometa (the inverse site) go on meanwhile.
    let inverse = s.inverse;
    let sender = thread::spawn(move || {
        (1..=20)
            .map(|i| {
                let r = post(
                    inverse,
                    "/sendMessage.php",
                    &form(&[
                        ("user", "bob"),
                        ("message", &format!("m{i}")),
                        ("room", "activated"),
                    ]),
                );
                assert_eq!(r.status, 200, "a send during the restart: {r}");
                thread::sleep(Duration::from_millis(10));
                parse_send_ok(&r)
            })
            .collect::<Vec<i64>>()
    });
    thread::sleep(Duration::from_millis(50));
    let st = s.stop_cometa();
    assert!(st.success(), "cometa's exit status after SIGTERM: {st:?}");
    s.start_cometa();
    sent.extend(sender.join().expect("a send failed during the restart"));
    sent.push(send(&s, s.site, Upstream::PhpFpm, "ana", "end", room));

    let deadline = Instant::now() + Duration::from_secs(15);
    while !handle.is_finished() {
        assert!(
            Instant::now() < deadline,
            "the follower did not get \"end\""
        );
        thread::sleep(Duration::from_millis(20));
    }
    if let Err(e) = handle.join() {
        std::panic::resume_unwind(e);
    }
    let seen = seen.lock().unwrap();
    let ids: Vec<i64> = seen.msgs.iter().map(|m| m.id).collect();
    assert_eq!(ids, sent, "ids the follower received vs ids sent");
    let bad_gateways = seen.answers.iter().filter(|a| a.1 == 502).count();
    assert_eq!(bad_gateways, 0, "502s during a socket-activated restart");
}

// ---------------------------------------------------------------------------
// The site itself
// ---------------------------------------------------------------------------

#[test]
fn the_site_serves_the_front_end_and_passes_the_poll_untouched() {
    if !stack_or_skip("the_site_serves_the_front_end_and_passes_the_poll_untouched") {
        return;
    }
    let s = Stack::start("1");
    let gzip = [("Accept-Encoding", "gzip")];
    let public = common::php::web_root();

    // Static files by nginx itself; gzip is on in this nginx (as on Debian).
    let r = http(s.site, "GET", "/", &gzip, b"");
    from(&s, &r, Upstream::Nginx);
    assert_eq!(r.status, 200, "{r}");
    assert_eq!(r.header("content-encoding"), Some("gzip"), "{r}");
    for f in ["index.html", "chat.js", "chat.css", "jquery-1.12.4.min.js"] {
        let r = get(s.site, &format!("/{f}"));
        from(&s, &r, Upstream::Nginx);
        assert_eq!(r.status, 200, "{f}: {r}");
        assert_eq!(r.body, std::fs::read(public.join(f)).unwrap(), "{f}");
    }
    // lib/ is outside the web root; PHP source is never shown.
    for path in [
        "/lib/chat.php",
        "/../lib/chat.php",
        "/nothing.php",
        "/.git/config",
    ] {
        let r = get(s.site, path);
        assert!(matches!(r.status, 400 | 404), "{path}: {r}");
        assert!(!r.text().contains("<?php"), "{path}: {r}");
    }

    // JSON answers of both back ends, never compressed by the site.
    let room = "site";
    let mut last = 0;
    for i in 0..5 {
        last = send(
            &s,
            s.site,
            Upstream::PhpFpm,
            "ana",
            &format!("long enough to compress {i}"),
            room,
        );
    }
    for (addr, by) in [(s.site, Upstream::Cometa), (s.inverse, Upstream::PhpFpm)] {
        let r = http(addr, "GET", &listen_path(0, room, None), &gzip, b"");
        from(&s, &r, by);
        assert_eq!(r.header("content-encoding"), None, "{by:?}: {r}");
        assert_eq!(parse_messages(&r).len(), 5, "{by:?}: {r}");
    }

    // A quiet poll ends with [] from cometa after the hold, not with a 504.
    let t = Instant::now();
    let r = http(s.site, "GET", &listen_path(last, room, None), &gzip, b"");
    let took = t.elapsed();
    from(&s, &r, Upstream::Cometa);
    r.assert_json("[]");
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(5),
        "a quiet poll with a 1 s hold took {took:?}"
    );

    // Errors pass through unchanged (no nginx error page), the same from both.
    let bad = "/listenToRecive.php?room=no%20spaces";
    let c = get(s.site, bad);
    let p = get(s.inverse, bad);
    from(&s, &c, Upstream::Cometa);
    from(&s, &p, Upstream::PhpFpm);
    c.assert_400("invalid room");
    same_answer("a 400", &c, &p);
    let body = form(&[("user", ""), ("message", "x")]);
    let c = post(s.inverse, "/sendMessage.php", &body);
    let p = post(s.site, "/sendMessage.php", &body);
    from(&s, &c, Upstream::Cometa);
    from(&s, &p, Upstream::PhpFpm);
    c.assert_400("missing user");
    same_answer("a 400 to a POST", &c, &p);

    // The monitoring counters: on cometa's admin listener, never through the site.
    let r = get(s.site, "/_cometa/stats");
    assert_eq!(r.status, 404, "{r}");
    let r = get(s.cometa_admin, "/_cometa/stats");
    assert!(r.text().starts_with(r#"{"waiters":0,"#), "{r}");
}

// ---------------------------------------------------------------------------
// The deploy files keep the timing order
// ---------------------------------------------------------------------------

/// The number (seconds) after `key` in `text`: `--hold 25`, `proxy_read_timeout 60s;`.
fn seconds_after(text: &str, key: &str, file: &str) -> Vec<f64> {
    let found: Vec<f64> = text
        .lines()
        .filter(|l| !l.trim_start().starts_with(['#', ';']))
        .filter_map(|l| {
            let at = l.find(key)?;
            let rest = l[at + key.len()..].trim_start_matches([' ', '=']);
            let digits: String = rest
                .chars()
                .take_while(|c| c.is_ascii_digit() || *c == '.')
                .collect();
            digits.parse().ok()
        })
        .collect();
    assert!(!found.is_empty(), "no {key:?} with a number in {file}");
    found
}

/// Every `@NAME@` in `text` (upper case, digits, `_`).
fn placeholders(text: &str) -> Vec<String> {
    let mut out: Vec<String> = text
        .match_indices('@')
        .filter_map(|(at, _)| {
            let rest = &text[at + 1..];
            let len = rest
                .bytes()
                .take_while(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || *b == b'_')
                .count();
            (len > 0 && rest[len..].starts_with('@')).then(|| format!("@{}@", &rest[..len]))
        })
        .collect();
    out.sort();
    out.dedup();
    assert!(!out.is_empty(), "no placeholder found");
    out
}

#[test]
fn deploy_files_keep_hold_below_client_timeout_below_proxy_timeouts() {
    let read = |f: &str| std::fs::read_to_string(deploy_file(f)).unwrap();
    let service = read("cometa.service");
    let defaults = read("cometa.default");
    let socket = read("cometa.socket");
    let site = read("nginx-cometa.conf");
    let pool = read("php-fpm-pool.conf");
    let chat_js =
        std::fs::read_to_string(common::php::web_root().join("chat.js")).expect("chat.js");

    let hold = seconds_after(&defaults, "COMETA_HOLD", "cometa.default")[0];
    let client = seconds_after(&chat_js, "POLL_TIMEOUT_MS", "chat.js")[0] / 1000.0;
    let proxy = seconds_after(&site, "proxy_read_timeout", "nginx-cometa.conf");
    let fastcgi = seconds_after(&site, "fastcgi_read_timeout", "nginx-cometa.conf");
    let terminate = seconds_after(&pool, "request_terminate_timeout", "php-fpm-pool.conf")[0];
    let stop_grace = seconds_after(&defaults, "COMETA_SHUTDOWN_TIMEOUT", "cometa.default")[0];
    let stop_timeout = seconds_after(&service, "TimeoutStopSec", "cometa.service")[0];

    assert!(
        hold < client,
        "--hold {hold} must stay below the page's {client} s"
    );
    for p in proxy.iter().chain(&fastcgi) {
        assert!(
            client < *p,
            "the page's {client} s must stay below nginx's {p} s"
        );
    }
    assert!(
        fastcgi.iter().all(|f| terminate >= *f),
        "php-fpm's request_terminate_timeout {terminate} below fastcgi_read_timeout {fastcgi:?}"
    );
    assert!(
        stop_grace < stop_timeout,
        "systemd's TimeoutStopSec {stop_timeout} must leave cometa its --shutdown-timeout {stop_grace}"
    );
    for needed in [
        "proxy_buffering off;",
        "gzip off;",
        "X-Forwarded-For $proxy_add_x_forwarded_for",
        // Certificate renewals stay reachable despite the dotfile rule.
        "location ^~ /.well-known/acme-challenge/",
    ] {
        assert!(site.contains(needed), "nginx-cometa.conf lacks {needed:?}");
    }
    // The rendering commands of deploy/README.md fill every placeholder.
    let readme = read("README.md");
    for (file, text) in [("nginx-cometa.conf", &site), ("php-fpm-pool.conf", &pool)] {
        for name in placeholders(text) {
            assert!(
                readme.contains(&format!("s|{name}|")) || readme.contains(&format!("s/{name}/")),
                "deploy/README.md does not say how to fill {name} of {file}"
            );
        }
    }
    for needed in [
        "KillSignal=SIGTERM",
        "Restart=on-failure",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ReadWritePaths=/var/lib/chat",
        "UMask=0007",
        "Type=notify",
        "EnvironmentFile=/etc/default/cometa",
        "Requires=cometa.socket",
        "RuntimeDirectoryPreserve=yes",
        "ExecReload=/bin/kill -HUP $MAINPID",
    ] {
        assert!(service.contains(needed), "cometa.service lacks {needed:?}");
    }
    for needed in [
        "ListenStream=/run/cometa/cometa.sock",
        "SocketGroup=www-data",
    ] {
        assert!(socket.contains(needed), "cometa.socket lacks {needed:?}");
    }
    // The pool is rendered from the same file as cometa's settings.
    for needed in ["$COMETA_HOLD", "$COMETA_TIMEZONE", "$CHAT_DB"] {
        assert!(
            readme.contains(needed),
            "deploy/README.md does not render {needed}"
        );
    }
}

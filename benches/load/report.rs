//! `--report results.tsv`: the tables of BENCHMARKS.md from one run's results
//! (`label\tkey\tn\tvalue` lines), with the ratios cometa/nchan and cometa/PHP.

use std::collections::{BTreeMap, BTreeSet};

const LABELS: [&str; 3] = ["cometa", "nchan", "php-fpm"];

struct Results {
    values: BTreeMap<(String, String, usize), f64>,
    notes: Vec<(String, usize, String)>,
}

impl Results {
    fn get(&self, label: &str, key: &str, n: usize) -> Option<f64> {
        self.values
            .get(&(label.to_owned(), key.to_owned(), n))
            .copied()
            .filter(|v| v.is_finite())
    }

    fn ns(&self, key: &str) -> Vec<usize> {
        let set: BTreeSet<usize> = self
            .values
            .keys()
            .filter(|(_, k, _)| k == key)
            .map(|(_, _, n)| *n)
            .collect();
        set.into_iter().collect()
    }
}

fn f(v: Option<f64>, digits: usize) -> String {
    v.map_or("–".into(), |v| format!("{v:.digits$}"))
}

fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b != 0.0 => format!("{:.2}", a / b),
        _ => "–".into(),
    }
}

/// One row per N: each label's value of `key`, then cometa/nchan and cometa/php.
fn table(r: &Results, title: &str, key: &str, digits: usize) {
    println!("\n{title}\n");
    println!("| N | cometa | nchan | PHP-FPM | cometa/nchan | cometa/PHP |");
    println!("| --: | --: | --: | --: | --: | --: |");
    for n in r.ns(key) {
        let v: Vec<Option<f64>> = LABELS.iter().map(|l| r.get(l, key, n)).collect();
        println!(
            "| {n} | {} | {} | {} | {} | {} |",
            f(v[0], digits),
            f(v[1], digits),
            f(v[2], digits),
            ratio(v[0], v[1]),
            ratio(v[0], v[2]),
        );
    }
}

fn read(path: &str) -> Results {
    let text = std::fs::read_to_string(path).expect("--report FILE");
    let mut r = Results {
        values: BTreeMap::new(),
        notes: Vec::new(),
    };
    for line in text.lines() {
        let mut it = line.splitn(4, '\t');
        let (Some(label), Some(key), Some(n), Some(value)) =
            (it.next(), it.next(), it.next(), it.next())
        else {
            continue;
        };
        let n: usize = n.parse().unwrap_or(0);
        if key == "note" {
            r.notes.push((label.to_owned(), n, value.to_owned()));
        } else if let Ok(v) = value.parse::<f64>() {
            r.values.insert((label.to_owned(), key.to_owned(), n), v);
        }
    }
    r
}

pub(crate) fn print(path: &str) {
    let r = read(path);

    println!("## Memory: server RSS per idle waiter, KiB ((RSS with N − RSS with 0) / N)");
    table(
        &r,
        "RSS (VmRSS, summed over the process tree)",
        "rss_per_waiter_kib",
        2,
    );
    table(
        &r,
        "PSS (smaps_rollup, summed; fair for forked workers)",
        "pss_per_waiter_kib",
        2,
    );
    table(&r, "Total server RSS with N waiters, KiB", "rss_kib", 0);
    println!("\nWaiters per GiB of server RSS (1 GiB / RSS per waiter):\n");
    println!("| N | cometa | nchan | cometa/nchan |");
    println!("| --: | --: | --: | --: |");
    for n in r.ns("rss_per_waiter_kib") {
        let per = |l| {
            r.get(l, "rss_per_waiter_kib", n)
                .filter(|v| *v > 0.0)
                .map(|v| 1024.0 * 1024.0 / v)
        };
        let (c, x) = (per("cometa"), per("nchan"));
        println!("| {n} | {} | {} | {} |", f(c, 0), f(x, 0), ratio(c, x));
    }
    table(&r, "Waiters the server reported holding", "held", 0);

    println!("\n## Fan-out: one send to N waiters of one room, ms");
    table(&r, "p50 from the send's answer", "fanout_ack_p50_ms", 1);
    table(&r, "p99 from the send's answer", "fanout_ack_p99_ms", 1);
    table(&r, "max from the send's answer", "fanout_ack_max_ms", 1);
    table(&r, "p50 from the send's start", "fanout_start_p50_ms", 1);
    table(&r, "p99 from the send's start", "fanout_start_p99_ms", 1);
    table(
        &r,
        "the send's own answer time, p50",
        "fanout_send_answer_p50_ms",
        1,
    );
    table(
        &r,
        "waiters reached, % (worst round)",
        "fanout_delivered_pct_min",
        1,
    );
    table(
        &r,
        "failed sends (no answer within 40 s or an error)",
        "fanout_failed_sends",
        0,
    );

    println!(
        "\n## cometa: one event-loop thread (`--threads 1`, the default) against a multi-threaded runtime (`--threads 2`)\n"
    );
    println!("| N | figure | --threads 1 | --threads 2 | 1 / 2 |");
    println!("| --: | --- | --: | --: | --: |");
    for n in r.ns("fanout_ack_p99_ms") {
        for (name, key) in [
            ("fan-out p50 from the answer, ms", "fanout_ack_p50_ms"),
            ("fan-out p99 from the answer, ms", "fanout_ack_p99_ms"),
            ("fan-out p99 from the start, ms", "fanout_start_p99_ms"),
            ("RSS per idle waiter, KiB", "rss_per_waiter_kib"),
        ] {
            let (one, two) = (r.get("cometa", key, n), r.get("cometa-mt", key, n));
            if two.is_some() {
                println!(
                    "| {n} | {name} | {} | {} | {} |",
                    f(one, 1),
                    f(two, 1),
                    ratio(one, two)
                );
            }
        }
    }

    println!("\n## Idle: N parked waiters, nobody sends");
    table(&r, "server CPU, % of one core", "idle_cpu_pct", 2);
    table(
        &r,
        "SQL statements/s (cometa: counted; PHP: see below)",
        "idle_sql_per_s",
        2,
    );

    println!("\n## Sends: K concurrent senders (K = N column)");
    table(&r, "messages/s answered as committed", "sends_per_s", 0);
    table(&r, "send answer p50, ms", "send_answer_p50_ms", 2);
    table(&r, "send answer p99, ms", "send_answer_p99_ms", 2);
    table(
        &r,
        "end-to-end to one follower, p50 ms",
        "follower_p50_ms",
        1,
    );
    table(
        &r,
        "end-to-end to one follower, p99 ms",
        "follower_p99_ms",
        1,
    );
    table(&r, "messages the follower received", "follower_received", 0);

    println!("\n## Foreign-write wake-up: PHP (CLI, PDO) commits, the server answers, ms\n");
    println!("| server | rounds | missed | p50 | p99 | max |");
    println!("| --- | --: | --: | --: | --: | --: |");
    for l in ["cometa", "cometa-poll", "php-fpm"] {
        if r.get(l, "foreign_rounds", 1).is_none() {
            continue;
        }
        println!(
            "| {l} | {} | {} | {} | {} | {} |",
            f(r.get(l, "foreign_rounds", 1), 0),
            f(r.get(l, "foreign_missed", 1), 0),
            f(r.get(l, "foreign_p50_ms", 1), 2),
            f(r.get(l, "foreign_p99_ms", 1), 2),
            f(r.get(l, "foreign_max_ms", 1), 2),
        );
    }

    println!("\n## Client-side errors per N (timeouts at 40 s, non-200 answers)\n");
    println!("| server | N | errors | timeouts | not 200 |");
    println!("| --- | --: | --: | --: | --: |");
    for l in LABELS {
        for n in r.ns("client_errors") {
            if let Some(e) = r.get(l, "client_errors", n) {
                println!(
                    "| {l} | {n} | {e:.0} | {} | {} |",
                    f(r.get(l, "client_timeouts", n), 0),
                    f(r.get(l, "answers_not_ok", n), 0)
                );
            }
        }
    }
    if !r.notes.is_empty() {
        println!("\nNotes:\n");
        for (l, n, t) in &r.notes {
            println!("- {l}, N = {n}: {t}");
        }
    }
}

/// Values of `key` at `n` over the rounds of `label` (labels `LABEL@ROUND`), sorted.
fn rounds(r: &Results, label: &str, key: &str, n: usize) -> Vec<f64> {
    let mut v: Vec<f64> = r
        .values
        .iter()
        .filter(|((l, k, m), v)| {
            l.split_once('@').is_some_and(|(l, _)| l == label)
                && k == key
                && *m == n
                && v.is_finite()
        })
        .map(|(_, v)| *v)
        .collect();
    v.sort_by(f64::total_cmp);
    v
}

fn median(v: &[f64]) -> Option<f64> {
    match v.len() {
        0 => None,
        l if l % 2 == 1 => Some(v[l / 2]),
        l => Some((v[l / 2 - 1] + v[l / 2]) / 2.0),
    }
}

/// "median (min–max)" of the rounds.
fn spread(v: &[f64], digits: usize) -> String {
    match (median(v), v.first(), v.last()) {
        (Some(m), Some(lo), Some(hi)) if v.len() > 1 => {
            format!("{m:.digits$} ({lo:.digits$}–{hi:.digits$})")
        }
        (Some(m), _, _) => format!("{m:.digits$}"),
        _ => "–".into(),
    }
}

/// The figures of issue 8, from rows labelled `base@R`, `new@R` and `omegle@R`
/// (R the round): medians over the rounds, with their range.
pub(crate) fn print_profiles(path: &str) {
    let r = read(path);
    let n_of = |label: &str, key: &str| {
        r.values
            .keys()
            .filter(|(l, k, _)| l.starts_with(&format!("{label}@")) && k == key)
            .map(|(_, _, n)| *n)
            .max()
    };
    let rounds_of = |label: &str| {
        r.values
            .keys()
            .filter_map(|(l, _, _)| {
                l.split_once('@')
                    .filter(|(l, _)| *l == label)
                    .map(|(_, k)| k.to_owned())
            })
            .collect::<BTreeSet<_>>()
            .len()
    };
    let fan = n_of("base", "fanout_start_p50_ms")
        .or(n_of("new", "fanout_start_p50_ms"))
        .unwrap_or(0);
    let mem = n_of("base", "rss_per_waiter_kib")
        .or(n_of("new", "rss_per_waiter_kib"))
        .unwrap_or(0);
    let senders = n_of("base", "sends_per_s")
        .or(n_of("new", "sends_per_s"))
        .unwrap_or(0);
    let rows: Vec<(String, &str, usize, usize)> = vec![
        (
            format!("fan-out to {fan}: p50 from the send's start, ms"),
            "fanout_start_p50_ms",
            fan,
            1,
        ),
        (
            format!("fan-out to {fan}: p99 from the send's start, ms"),
            "fanout_start_p99_ms",
            fan,
            1,
        ),
        (
            format!("fan-out to {fan}: p50 from the send's answer, ms"),
            "fanout_ack_p50_ms",
            fan,
            1,
        ),
        (
            format!("fan-out to {fan}: p99 from the send's answer, ms"),
            "fanout_ack_p99_ms",
            fan,
            1,
        ),
        (
            format!("fan-out to {fan}: the send's answer, ms"),
            "fanout_send_answer_p50_ms",
            fan,
            1,
        ),
        (
            format!("sends/s, {senders} senders"),
            "sends_per_s",
            senders,
            0,
        ),
        (
            format!("send answer p50, {senders} senders, ms"),
            "send_answer_p50_ms",
            senders,
            2,
        ),
        (
            format!("send answer p99, {senders} senders, ms"),
            "send_answer_p99_ms",
            senders,
            2,
        ),
        (
            format!("to a follower p99, {senders} senders, ms"),
            "follower_p99_ms",
            senders,
            1,
        ),
        (
            format!("RSS per idle waiter ({mem}), KiB"),
            "rss_per_waiter_kib",
            mem,
            2,
        ),
        (
            format!("server RSS with {mem} waiters, MiB"),
            "rss_mib",
            mem,
            1,
        ),
        (
            format!("idle SQL statements/s ({mem})"),
            "idle_sql_per_s",
            mem,
            2,
        ),
        (format!("idle CPU % ({mem})"), "idle_cpu_pct", mem, 2),
    ];
    let get = |label: &str, key: &str, n: usize| {
        if key == "rss_mib" {
            rounds(&r, label, "rss_kib", n)
                .iter()
                .map(|v| v / 1024.0)
                .collect()
        } else {
            rounds(&r, label, key, n)
        }
    };
    println!(
        "## classic: baseline (df4174a) against the profile engine, {} / {} rounds alternated\n",
        rounds_of("base"),
        rounds_of("new")
    );
    println!(
        "| figure | baseline: median (min–max) | profile engine: median (min–max) | new / base (medians) |"
    );
    println!("| --- | --: | --: | --: |");
    for (name, key, n, d) in &rows {
        let (b, x) = (get("base", key, *n), get("new", key, *n));
        if b.is_empty() && x.is_empty() {
            continue;
        }
        println!(
            "| {name} | {} | {} | {} |",
            spread(&b, *d),
            spread(&x, *d),
            ratio(median(&x), median(&b))
        );
    }
    let on = n_of("omegle", "fanout_start_p50_ms").unwrap_or(0);
    let om = n_of("omegle", "rss_per_waiter_kib").unwrap_or(0);
    let os = n_of("omegle", "sends_per_s").unwrap_or(0);
    let orows: Vec<(String, &str, usize, usize)> = vec![
        (
            format!("fan-out to {on}: p50 from each send's start, ms"),
            "fanout_start_p50_ms",
            on,
            1,
        ),
        (
            format!("fan-out to {on}: p99 from each send's start, ms"),
            "fanout_start_p99_ms",
            on,
            1,
        ),
        (
            format!("fan-out to {on}: p50 from each send's answer, ms"),
            "fanout_ack_p50_ms",
            on,
            1,
        ),
        (
            format!("fan-out to {on}: p99 from each send's answer, ms"),
            "fanout_ack_p99_ms",
            on,
            1,
        ),
        (
            format!("fan-out to {on}: p50 from the round's start, ms"),
            "fanout_round_p50_ms",
            on,
            1,
        ),
        (
            format!("fan-out to {on}: p99 from the round's start, ms"),
            "fanout_round_p99_ms",
            on,
            1,
        ),
        (
            format!("fan-out to {on}: all {on} sends answered, ms"),
            "fanout_fire_all_answered_ms",
            on,
            1,
        ),
        (
            format!("fan-out to {on}: send answer p50, ms"),
            "fanout_send_answer_p50_ms",
            on,
            1,
        ),
        (
            format!("fan-out to {on}: waiters reached, % (worst round)"),
            "fanout_delivered_pct_min",
            on,
            1,
        ),
        (format!("sends/s, {os} senders"), "sends_per_s", os, 0),
        (
            format!("sends committed (counted in msgs), {os} senders"),
            "sends_committed",
            os,
            0,
        ),
        (
            format!("send answer p50, {os} senders, ms"),
            "send_answer_p50_ms",
            os,
            2,
        ),
        (
            format!("send answer p99, {os} senders, ms"),
            "send_answer_p99_ms",
            os,
            2,
        ),
        (
            format!("RSS per idle waiter ({om}), KiB"),
            "rss_per_waiter_kib",
            om,
            2,
        ),
        (
            format!("server RSS with {om} waiters, MiB"),
            "rss_mib",
            om,
            1,
        ),
        (
            format!("idle SQL statements/s ({om})"),
            "idle_sql_per_s",
            om,
            2,
        ),
        (format!("idle CPU % ({om})"), "idle_cpu_pct", om, 2),
        (format!("start + pair {on} users, s"), "pairing_secs", on, 1),
    ];
    println!(
        "\n## omegle on the profile engine, {} rounds\n",
        rounds_of("omegle")
    );
    println!("| figure | omegle: median (min–max) |");
    println!("| --- | --: |");
    for (name, key, n, d) in &orows {
        let v = get("omegle", key, *n);
        if !v.is_empty() {
            println!("| {name} | {} |", spread(&v, *d));
        }
    }
    let mut errs = Vec::new();
    for l in ["base", "new", "omegle"] {
        for k in [
            "client_errors",
            "client_timeouts",
            "answers_not_ok",
            "sends_failed",
            "fanout_failed_sends",
        ] {
            let Some(n) = n_of(l, k) else { continue };
            let total: f64 = rounds(&r, l, k, n).iter().sum();
            if total > 0.0 {
                errs.push(format!("{l}: {k} = {total:.0} (N = {n}, all rounds)"));
            }
        }
    }
    if !errs.is_empty() || !r.notes.is_empty() {
        println!("\nErrors and notes:\n");
        for e in errs {
            println!("- {e}");
        }
        for (l, n, t) in &r.notes {
            println!("- {l}, N = {n}: {t}");
        }
    }
}

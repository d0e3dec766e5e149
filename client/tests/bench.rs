//! A smoke run of the load generator (`tnlm-client bench`) against an
//! in-process server: a few hundred requests of each kind, counted exactly.
//! The real measurements are `ci/bench.sh` (not part of the test run).

#![allow(clippy::unwrap_used)]

mod common;

use common::{refused_target, run, start_server, start_server_with, target, test_config};
use serde_json::Value;

/// Runs `bench ARGS --json` against `server` and returns its one summary object.
fn bench(target: &str, args: &[&str]) -> Value {
    let mut full = vec!["--connect", target, "--json", "bench"];
    full.extend_from_slice(args);
    let out = run(&full);
    out.assert_code(0);
    let lines = out.json_of("bench");
    assert_eq!(lines.len(), 1, "{out:#?}");
    assert!(out.stderr.is_empty(), "no progress lines with --json: {out:#?}");
    lines[0].clone()
}

#[test]
fn time_requests_are_all_answered_and_timed() {
    let server = start_server();
    let summary = bench(&target(&server), &["--clients", "4", "--pipeline", "8", "--requests", "400"]);
    assert_eq!(summary["kind"], "time");
    assert_eq!(summary["requests"], 400, "{summary}");
    assert_eq!(summary["errors"], 0, "{summary}");
    for field in ["rps", "p50_us", "p99_us", "p999_us", "max_us"] {
        assert!(summary[field].as_f64().unwrap() > 0.0, "{field}: {summary}");
    }
    assert!(summary["p50_us"].as_f64() <= summary["p99_us"].as_f64(), "{summary}");
    assert!(summary["p99_us"].as_f64() <= summary["p999_us"].as_f64(), "{summary}");
}

#[test]
fn messages_go_the_whole_relay_path_and_are_all_delivered() {
    let server = start_server();
    let summary = bench(
        &target(&server),
        &["--kind", "message", "--clients", "4", "--pipeline", "4", "--requests", "200", "--threads", "2"],
    );
    assert_eq!(summary["requests"], 200, "{summary}");
    assert_eq!(summary["relayed"], 200, "{summary}");
    assert_eq!(summary["errors"], 0, "{summary}");
}

/// The server answers `queue_full` at once, ahead of the deliveries of the same batch
/// that still wait for the receiver's ack: answers come out of request order.
#[test]
fn message_answers_may_come_out_of_order() {
    // Room for two 600-byte messages in the receiver's queue: of each batch of 8 (one
    // read on the server), the first two are delivered, the others refused at once.
    let server = start_server_with(tnlm_server::Config { queue_bytes: 1500, ..test_config() });
    let summary = bench(
        &target(&server),
        &["--kind", "message", "--clients", "2", "--pipeline", "8", "--requests", "40", "--size", "600"],
    );
    assert_eq!(summary["requests"], 40, "{summary}");
    let (errors, relayed) = (summary["errors"].as_u64().unwrap(), summary["relayed"].as_u64().unwrap());
    assert!(errors > 0, "no queue_full answer, so no reordering: {summary}");
    assert_eq!(errors + relayed, 40, "{summary}");
}

#[test]
fn an_oversized_batch_is_refused_before_connecting() {
    let out = run(&[
        "--connect",
        &refused_target().to_string(),
        "bench",
        "--kind",
        "message",
        "--clients",
        "2",
        "--requests",
        "1",
        "--pipeline",
        "100000",
        "--size",
        "60000",
    ]);
    out.assert_code(2);
    assert!(out.stderr.contains("64 MiB") && out.stderr.contains("--pipeline"), "{out:#?}");
}

#[test]
fn list_idle_and_open_loop_runs_finish() {
    let server = start_server();
    let addr = target(&server);
    let summary = bench(&addr, &["--kind", "list", "--clients", "2", "--requests", "10"]);
    assert_eq!(summary["requests"], 10, "{summary}");
    let summary = bench(&addr, &["--kind", "idle", "--clients", "20", "--duration", "0.2"]);
    assert_eq!(summary["requests"], 0, "{summary}");
    assert!(summary["connect_ms"].as_f64().unwrap() > 0.0, "{summary}");
    // Open loop, 5 connections × 50 batches/s for 0.3 s: each connection has 15 ticks
    // (one every 20 ms) before the deadline and starts at most one batch per tick, so
    // at most 75 requests, however fast the machine (a closed loop would send
    // thousands). How many of the 75 start depends on the machine's load: at least one.
    let summary = bench(&addr, &["--clients", "5", "--rate", "50", "--duration", "0.3"]);
    let answered = summary["requests"].as_u64().unwrap();
    assert!((1..=75).contains(&answered), "{summary}");
    assert_eq!(summary["errors"], 0, "{summary}");
}

#[test]
fn text_summary_and_failures() {
    let server = start_server();
    let out = run(&["--connect", &target(&server), "bench", "--requests", "50", "--pipeline", "5"]);
    out.assert_code(0);
    assert!(out.stdout.contains("50 in") && out.stdout.contains("p99"), "{out:#?}");

    let out = run(&["--connect", &refused_target().to_string(), "--timeout", "2", "bench", "--requests", "5"]);
    out.assert_code(1);
    assert!(out.stderr.contains("error:"), "{out:#?}");

    let out = run(&["--connect", &target(&server), "bench", "--kind", "message", "--clients", "3", "--requests", "5"]);
    out.assert_code(1);
    assert!(out.stderr.contains("even --clients"), "{out:#?}");

    let out = run(&["--connect", &target(&server), "bench", "--clients", "2"]);
    out.assert_code(2); // neither --requests nor --duration
}

//! Experiment 8: the same small load against both engines. The threads
//! engine holds a thread per client, the events engine a few for all; the
//! probe connects more clients until its bound. Shapes only, no timings.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::PathBuf;

use tnlm_labs::c10k::{run, Options};
use tnlm_server::Engine;

const IDLE: usize = 200;
const ACTIVE: usize = 10;

#[test]
fn threads_take_one_per_client_and_events_a_few_for_all() {
    let options = Options {
        engines: vec![Engine::Threads, Engine::Events],
        workers: 2,
        idle: IDLE,
        active: ACTIVE,
        requests: 20,
        probe: Some(IDLE + 100),
        program: PathBuf::from(env!("CARGO_BIN_EXE_tnlm-labs")),
    };
    let observation = run(&options).unwrap();
    let [threads, events] = observation.runs.as_slice() else { panic!("two runs: {observation:?}") };
    for run in [threads, events] {
        assert_eq!((run.idle, run.active, run.answered), (IDLE, ACTIVE, 200), "{run:?}");
        let probe = run.probe.as_ref().unwrap();
        assert_eq!(probe.held, IDLE + 100, "{probe:?}");
        assert!(probe.stopped.contains("reached --probe"), "{probe:?}");
    }
    assert_eq!((threads.engine, events.engine), (Engine::Threads, Engine::Events));
    if !common::linux() {
        assert!(threads.loaded.is_none() && threads.ceiling().is_none(), "/proc is Linux's");
        return;
    }
    let clients = (IDLE + ACTIVE) as u64 + 1; // and the server's own first client
    let (with_threads, with_events) = (threads.loaded.unwrap(), events.loaded.unwrap());
    assert!(with_threads.threads >= clients, "a thread per client: {with_threads:?}");
    assert!(with_events.threads < clients, "a few threads for all: {with_events:?}");
    assert_eq!(with_events.threads, events.first.unwrap().threads, "no thread for a client: {events:?}");
    for (run, sample) in [(threads, with_threads), (events, with_events)] {
        assert!(sample.files >= clients, "a socket per client: {sample:?}");
        assert!(run.switches.is_some(), "{run:?}");
        let ceiling = run.ceiling().unwrap();
        assert!(ceiling.clients >= clients, "it holds what it held: {ceiling:?}");
    }
}

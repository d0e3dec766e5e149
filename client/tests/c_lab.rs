//! The lab in C (examples/c/): the reference server and menu client, built
//! with `cc -std=c11 -Wall -Wextra -Werror`, tested over loopback:
//!
//! - the C server passes the conformance checker (`conform --timers`);
//! - the C menu client, driven through its stdin, against tnlm-server,
//!   including a message that arrives while its menu waits for input;
//! - tnlm-client, the C client and the C server together, then `quit`.
//!
//! Also here, because they derive files from others: the copy of the
//! generated header in examples/c/ and the students' skeletons (generated
//! from the reference sources by their STUDENT-TODO markers) must be
//! current; `TNLM_BLESS=1` rewrites them.
//!
//! Without a C compiler the build-dependent tests skip (with a message);
//! `TNLM_REQUIRE=cc` (or `all`, as in CI) makes that a failure. Nothing
//! sleeps: every wait is for an output line or an exit, with a deadline.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Mutex, OnceLock};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use common::{run, start_server, target, Client, SERVER_NAME};
use tnlm_core::requirement::Need;
use wait_timeout::ChildExt;

/// The longest any expected line or exit may take.
const DEADLINE: Duration = Duration::from_secs(30);

fn lab() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/c")
}

// ---- Derived files: the header copy and the skeletons ------------------------

/// Compares `path` with `fresh`; rewrites it under `TNLM_BLESS`, else fails.
fn check_current(path: &Path, fresh: &str) {
    if std::fs::read_to_string(path).ok().as_deref() == Some(fresh) {
        return;
    }
    if std::env::var_os("TNLM_BLESS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, fresh).unwrap();
        return;
    }
    panic!("{} is stale: run `TNLM_BLESS=1 cargo test -p tnlm-client --test c_lab`", path.display());
}

#[test]
fn the_header_copy_is_current() {
    check_current(&lab().join("tnlm.h"), &tnlm_core::c_header::render());
}

/// The reference sources the skeletons come from.
const REFERENCES: [&str; 2] = ["tnlm-server.c", "tnlm-menu-client.c"];

/// The skeleton of `reference` (the text of examples/c/`name`): each block
///
/// ```text
///     /* STUDENT-TODO-BEGIN: what to do, in the report's words */
///     ...the reference code...
///     /* STUDENT-TODO-SKELETON          (optional: what the skeleton keeps
///     ...placeholder code...             so that it compiles)
///     STUDENT-TODO-END */                (or /* STUDENT-TODO-END */ without one)
/// ```
///
/// becomes `/* TODO what to do */` followed by the placeholder code.
fn skeleton(name: &str, reference: &str) -> Result<String, String> {
    #[derive(PartialEq)]
    enum State {
        Copy,
        Reference(usize),
        Placeholder(usize),
    }
    let mut out = format!(
        "/* A SKELETON for the lab, generated from ../{name} (the reference) by\n \
         * client/tests/c_lab.rs; do not edit it here. Copy it and write the code\n \
         * each TODO asks for: the steps of the lab report, in its words.\n \
         */\n"
    );
    let mut state = State::Copy;
    for (number, line) in reference.lines().enumerate() {
        let number = number + 1;
        let trimmed = line.trim();
        let indent = &line[..line.len() - line.trim_start().len()];
        match state {
            State::Copy => {
                if let Some(text) = trimmed.strip_prefix("/* STUDENT-TODO-BEGIN:") {
                    let text =
                        text.strip_suffix("*/").ok_or(format!("{name}:{number}: the BEGIN line must end with */"))?;
                    // The report's words, then (in parentheses) the same in English, on a line of its own.
                    match text.trim().split_once(" (") {
                        Some((report, english)) => {
                            out += &format!("{indent}/* TODO {report}\n{indent} *      ({english} */\n")
                        }
                        None => out += &format!("{indent}/* TODO {} */\n", text.trim()),
                    }
                    state = State::Reference(number);
                } else if trimmed.contains("STUDENT-TODO") {
                    return Err(format!("{name}:{number}: a marker outside a BEGIN ... END block"));
                } else if trimmed == "#include \"wire.h\"" {
                    out += "#include \"../wire.h\"\n";
                } else {
                    out += line;
                    out.push('\n');
                }
            }
            State::Reference(start) => match trimmed {
                "/* STUDENT-TODO-SKELETON" => state = State::Placeholder(start),
                "/* STUDENT-TODO-END */" => state = State::Copy,
                _ if trimmed.contains("STUDENT-TODO") => {
                    return Err(format!("{name}:{number}: a marker inside the block opened on line {start}"))
                }
                _ => {}
            },
            State::Placeholder(start) => match trimmed {
                "STUDENT-TODO-END */" => state = State::Copy,
                _ if trimmed.contains("STUDENT-TODO") || trimmed.contains("*/") => {
                    return Err(format!("{name}:{number}: unexpected in the placeholder opened on line {start}"))
                }
                _ => {
                    out += line;
                    out.push('\n');
                }
            },
        }
    }
    match state {
        State::Copy => Ok(out),
        State::Reference(start) | State::Placeholder(start) => {
            Err(format!("{name}:{start}: this STUDENT-TODO block has no END"))
        }
    }
}

#[test]
fn the_skeletons_are_current() {
    for name in REFERENCES {
        let reference = std::fs::read_to_string(lab().join(name)).unwrap();
        let fresh = skeleton(name, &reference).unwrap();
        assert!(fresh.matches("/* TODO ").count() >= 4, "{name}: too few TODOs in its skeleton");
        check_current(&lab().join("skeleton").join(name), &fresh);
    }
}

#[test]
fn skeleton_markers_are_checked() {
    let good = "int f(void) {\n    /* STUDENT-TODO-BEGIN: a. do it */\n    return 1;\n    /* STUDENT-TODO-SKELETON\n    return 0;\n    STUDENT-TODO-END */\n}\n";
    let made = skeleton("x.c", good).unwrap();
    assert!(made.ends_with("int f(void) {\n    /* TODO a. do it */\n    return 0;\n}\n"), "{made}");
    assert!(skeleton("x.c", "/* STUDENT-TODO-BEGIN: open */\nint x;\n").unwrap_err().contains("no END"));
    assert!(skeleton("x.c", "/* STUDENT-TODO-END */\n").unwrap_err().contains("outside"));
}

// ---- Building -----------------------------------------------------------------

/// `examples/c/SOURCE` compiled with cc as C11 (warnings are errors), or
/// `None` (after saying why) without a C compiler or on Windows (there
/// ci/c-lab.sh builds the programs with mingw).
fn built(source: &str) -> Option<PathBuf> {
    static BUILT: OnceLock<Mutex<HashMap<String, Option<PathBuf>>>> = OnceLock::new();
    let mut cache = BUILT.get_or_init(Default::default).lock().unwrap_or_else(|poison| poison.into_inner());
    cache
        .entry(source.to_string())
        .or_insert_with(|| {
            if cfg!(windows) {
                eprintln!("skipped: on Windows ci/c-lab.sh builds and runs the lab's C programs");
                return None;
            }
            let path = lab().join(source);
            let binary = Path::new(env!("CARGO_TARGET_TMPDIR")).join(source.replace('/', "-").replace(".c", ""));
            let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
            let result = Command::new(&cc)
                .args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-pthread", "-o"])
                .arg(&binary)
                .arg(&path)
                .output();
            match result {
                Ok(out) if out.status.success() => Some(binary),
                Ok(out) => panic!("{cc} failed on {}:\n{}", path.display(), String::from_utf8_lossy(&out.stderr)),
                Err(err) => {
                    Need::CCompiler.missing("the lab's C tests", format!("no C compiler ({cc}: {err})"));
                    None
                }
            }
        })
        .clone()
}

#[test]
fn the_skeletons_compile() {
    for name in REFERENCES {
        if built(&format!("skeleton/{name}")).is_none() {
            return;
        }
    }
}

// ---- Running the C programs ------------------------------------------------------

/// A C program whose stdout is read line by line and whose stdin stays open.
struct Program {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    seen: Vec<String>,
    stderr: Option<JoinHandle<String>>,
}

impl Program {
    fn start(binary: &Path, args: &[&str]) -> Program {
        let mut child = Command::new(binary)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, lines) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut stderr = child.stderr.take().unwrap();
        let stderr = thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            text
        });
        Program { stdin: child.stdin.take(), child, lines, seen: Vec::new(), stderr: Some(stderr) }
    }

    fn send_line(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().unwrap();
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
    }

    /// The next stdout line satisfying `wanted`; fails after [`DEADLINE`].
    fn wait_line(&mut self, what: &str, wanted: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if wanted(&line) {
                        return line;
                    }
                }
                Err(err) => panic!("{err} waiting for {what}; stdout so far:\n{}", self.seen.join("\n")),
            }
        }
    }

    /// Closes stdin and waits for the exit; returns the status and stderr.
    fn finish(mut self) -> (ExitStatus, String) {
        self.stdin = None;
        let Some(status) = self.child.wait_timeout(DEADLINE).unwrap() else {
            let _ = self.child.kill();
            panic!("still running after {DEADLINE:?}; stdout so far:\n{}", self.seen.join("\n"));
        };
        (status, self.stderr.take().unwrap().join().unwrap())
    }
}

impl Drop for Program {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The C server on 127.0.0.1, a free port; returns it and its address.
fn c_server(binary: &Path, args: &[&str]) -> (Program, String) {
    let mut all = vec!["--bind", "127.0.0.1", "--port", "0"];
    all.extend_from_slice(args);
    let mut server = Program::start(binary, &all);
    let line = server.wait_line("the listening line", |line| line.starts_with("listening on "));
    let addr = line.trim_start_matches("listening on ").to_string();
    (server, addr)
}

/// The C menu client, connected (menu item 1) to `addr`; returns it and its id.
fn c_menu_client(binary: &Path, addr: &str) -> (Program, String) {
    let mut menu = Program::start(binary, &[]);
    let (host, port) = addr.rsplit_once(':').unwrap();
    for line in ["1", host, port] {
        menu.send_line(line);
    }
    let line = menu.wait_line("connected", |line| line.contains("my id is "));
    let id = line.rsplit(' ').next().unwrap().to_string();
    (menu, id)
}

/// Item 6: sends `text` to client `to`, waits for the menu's outcome line.
fn menu_send(menu: &mut Program, to: &str, text: &str) -> String {
    for line in ["6", to, text] {
        menu.send_line(line);
    }
    menu.wait_line("the outcome of item 6", |line| line.contains("message ") && line.contains(" to client "))
}

// ---- The C server ---------------------------------------------------------------

#[test]
fn the_c_server_passes_the_conformance_checker() {
    let Some(binary) = built("tnlm-server.c") else { return };
    // Short timers, as ci/conform.sh gives tnlm-server: the run takes seconds.
    let (server, addr) = c_server(&binary, &["--heartbeat", "2", "--frame-timeout", "1", "--ack-timeout", "1"]);
    let out = run(&["--connect", &addr, "conform", "--timers"]);
    assert!(out.stdout.contains(" passed, 0 failed"), "{}\n{}", out.stdout, out.stderr);
    out.assert_code(0);
    drop(server);
}

/// The project's own menu client (tnlm-client's menu, scripted through
/// stdin as client/tests/menu.rs does it) against the C server.
#[test]
fn the_rust_menu_client_against_the_c_server() {
    let Some(binary) = built("tnlm-server.c") else { return };
    let (server, addr) = c_server(&binary, &["--name", "c-lab"]);
    let port = addr.rsplit_once(':').unwrap().1;
    let mut listener = Client::spawn(&["--connect", &addr, "--json", "listen", "--count", "1", "--timeout", "30"]);
    let listener_id = listener.wait_json("hello")["id"].as_u64().unwrap();

    let text = "hi #1 * 你好";
    let script = format!("1\n127.0.0.1\n{port}\n3\n4\n5\n6\n{listener_id}\n{text}\n2\n7\n");
    let out = Client::spawn_with_input(&[], &script).finish();
    out.assert_code(0);
    let stdout = &out.stdout;
    let position = |needle: &str| stdout.find(needle).unwrap_or_else(|| panic!("no {needle:?} in:\n{stdout}"));
    assert!(position("server time: 20") > position("you are client"));
    position("server name: c-lab");
    position("2 clients connected:");
    position("(you)");
    position(&format!("message delivered to client {listener_id}"));
    position(&format!("disconnected from 127.0.0.1:{port}"));
    assert!(stdout.ends_with("bye\n"), "{stdout}");
    assert_eq!(listener.finish().assert_code(0).json_of("message")[0]["text"], text);
    drop(server);
}

// ---- The C menu client --------------------------------------------------------------

#[test]
fn the_c_menu_client_against_tnlm_server() {
    let Some(binary) = built("tnlm-menu-client.c") else { return };
    let server = start_server();
    let addr = target(&server);
    let (mut menu, id) = c_menu_client(&binary, &addr);

    // A message while the menu waits for input: the receiving thread prints
    // it and acknowledges it, so the Rust sender hears `delivered`.
    let sent = run(&["--connect", &addr, "send", &id, "你好 while you wait"]);
    assert_eq!(sent.stdout, format!("message delivered to client {id}\n"), "{sent:?}");
    sent.assert_code(0);
    let shown = menu.wait_line("the message", |line| line.starts_with("[message from client "));
    assert!(shown.ends_with("] 你好 while you wait"), "{shown}");

    menu.send_line("3");
    let time = menu.wait_line("the time", |line| line.contains("server time: "));
    assert!(time.ends_with(":00") || time.contains('+') || time.contains('-'), "{time}");
    menu.send_line("4");
    menu.wait_line("the name", |line| line.ends_with(&format!("server name: {SERVER_NAME}")));

    let mut listener = Client::spawn(&["--connect", &addr, "--json", "listen", "--count", "1", "--timeout", "30"]);
    let rust_id = listener.wait_json("hello")["id"].to_string();
    menu.send_line("5");
    menu.wait_line("the list's header", |line| line.ends_with("client(s) connected:"));
    menu.wait_line("our own row", |line| line.trim_start().starts_with(&format!("{id} ")) && line.ends_with("(you)"));

    let outcome = menu_send(&mut menu, &rust_id, "Grüße aus C");
    assert_eq!(outcome, format!("> client id: message: message delivered to client {rust_id}"));
    assert_eq!(listener.wait_json("message")["text"], "Grüße aus C");
    listener.finish().assert_code(0);
    let outcome = menu_send(&mut menu, "4000000000", "anyone?");
    assert!(outcome.ends_with("(no_such_client)"), "{outcome}");

    menu.send_line("2");
    menu.wait_line("disconnected", |line| line.ends_with("disconnected"));
    menu.send_line("3");
    menu.wait_line("the refusal", |line| line.contains("not connected"));
    menu.send_line("7");
    menu.wait_line("bye", |line| line.ends_with("bye"));
    let (status, stderr) = menu.finish();
    assert!(status.success(), "{status:?}: {stderr}");
}

// ---- Everyone together ------------------------------------------------------------------

#[test]
fn tnlm_client_the_c_client_and_the_c_server_together() {
    let (Some(server_binary), Some(menu_binary)) = (built("tnlm-server.c"), built("tnlm-menu-client.c")) else {
        return;
    };
    let (mut server, addr) = c_server(&server_binary, &["--name", "c-lab"]);
    let (mut menu, c_id) = c_menu_client(&menu_binary, &addr);
    let mut listener = Client::spawn(&["--connect", &addr, "--json", "listen", "--timeout", "30"]);
    let rust_id = listener.wait_json("hello")["id"].to_string();

    // tnlm-client -> C server -> C client, and back the other way.
    let sent = run(&["--connect", &addr, "send", &c_id, "from Rust"]);
    assert_eq!(sent.stdout, format!("message delivered to client {c_id}\n"), "{sent:?}");
    menu.wait_line("the message", |line| line.starts_with("[message from client ") && line.ends_with("] from Rust"));
    let outcome = menu_send(&mut menu, &rust_id, "from C, 你好");
    assert!(outcome.ends_with(&format!("message delivered to client {rust_id}")), "{outcome}");
    let message = listener.wait_json("message");
    assert_eq!((message["from"].to_string(), &message["text"]), (c_id.clone(), &"from C, 你好".into()));

    // tnlm-client's own requests against the C server.
    assert_eq!(run(&["--connect", &addr, "name"]).stdout, "server name: c-lab\n");
    assert!(run(&["--connect", &addr, "time"]).stdout.starts_with("server time: 20"));
    let list = run(&["--connect", &addr, "list"]).stdout;
    assert!(list.starts_with("3 clients connected:"), "{list}");

    // `quit` on the server's console: both clients are told, the server ends.
    server.send_line("quit");
    assert!(listener.wait_json("shutdown")["reason"].as_str().unwrap().contains("shutting down"));
    menu.wait_line("the shutdown notice", |line| line.starts_with("[the server is shutting down"));
    menu.send_line("7");
    let (status, _) = menu.finish();
    assert!(status.success());
    let (status, stderr) = server.finish();
    assert!(status.success() && stderr.contains("stopped"), "{status:?}: {stderr}");
    drop(listener);
}

// ---- The student guides ------------------------------------------------------------

/// The C column of the socket-call map (section 2.1 of docs/GUIDE.md and
/// docs/zh/GUIDE.md): every `examples/c/FILE` → `function` it names exists.
#[test]
fn the_guides_name_functions_the_c_has() {
    for guide in ["docs/GUIDE.md", "docs/zh/GUIDE.md"] {
        let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(guide)).unwrap();
        let section = text.split("\n### 2.1 ").nth(1).unwrap_or_else(|| panic!("{guide}: no section 2.1"));
        let section = section.split("\n## 3. ").next().unwrap();
        let mut checked = 0;
        for row in section.lines().filter(|line| line.starts_with("| ")) {
            let Some(cell) = row.split(" | ").nth(1) else { continue };
            for piece in cell.split("`examples/c/").skip(1) {
                let (file, names) = piece.split_once('`').unwrap();
                let source = std::fs::read_to_string(lab().join(file))
                    .unwrap_or_else(|err| panic!("{guide} names examples/c/{file}: {err}"));
                for name in names.split('`').skip(1).step_by(2) {
                    let defined =
                        source.contains(&format!(" {name}(")) || source.contains(&format!("THREAD_FUNCTION({name},"));
                    assert!(defined, "{guide} names {name} in examples/c/{file}, which has no such function");
                    checked += 1;
                }
            }
        }
        assert!(checked >= 20, "{guide}: only {checked} functions named in section 2.1");
    }
}

// ---- The C server's limits and timers ---------------------------------------------

/// Frames from the server on a raw connection, until it closes (with a deadline).
fn frames_until_closed(stream: &mut std::net::TcpStream) -> Vec<tnlm_core::Message> {
    use tnlm_core::message::FROM_SERVER;
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    let mut decoder = tnlm_core::Decoder::new(tnlm_core::DEFAULT_MAX_PAYLOAD).accepting(FROM_SERVER);
    let mut frames = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        while let Some(frame) = decoder.next_frame().unwrap() {
            frames.push(frame.message);
        }
        match stream.read(&mut chunk) {
            Ok(0) => return frames,
            Ok(n) => decoder.feed(&chunk[..n]),
            Err(err) => panic!("reading from the C server: {err}; frames so far: {frames:?}"),
        }
    }
}

#[test]
fn the_c_server_pings_a_silent_client_then_drops_it() {
    use tnlm_core::{ErrorCode, Message};
    let Some(binary) = built("tnlm-server.c") else { return };
    let (server, addr) = c_server(&binary, &["--heartbeat", "0.2"]);
    let mut silent = std::net::TcpStream::connect(&addr).unwrap();
    let frames = frames_until_closed(&mut silent);
    assert!(matches!(frames.first(), Some(Message::Hello(_))), "{frames:?}");
    let pings = frames.iter().filter(|message| matches!(message, Message::ServerPing(_))).count();
    assert!(pings >= 1, "{frames:?}");
    assert!(matches!(frames.last(), Some(Message::Error(body)) if body.code == ErrorCode::Timeout), "{frames:?}");
    drop(server);
}

#[test]
fn the_c_server_refuses_clients_beyond_max_clients() {
    use tnlm_core::{ErrorCode, Message};
    let Some(binary) = built("tnlm-server.c") else { return };
    let (server, addr) = c_server(&binary, &["--max-clients", "1"]);
    let mut listener = Client::spawn(&["--connect", &addr, "--json", "listen", "--timeout", "30"]);
    listener.wait_json("hello");
    let mut refused = std::net::TcpStream::connect(&addr).unwrap();
    let frames = frames_until_closed(&mut refused);
    assert!(
        matches!(frames.as_slice(), [Message::Error(body)] if body.code == ErrorCode::TooManyClients),
        "instead of the hello, expected one too_many_clients error: {frames:?}"
    );
    drop((listener, server));
}

#[test]
fn the_c_server_explains_its_command_line() {
    let Some(binary) = built("tnlm-server.c") else { return };
    let help = Command::new(&binary).arg("--help").output().unwrap();
    assert!(help.status.success() && String::from_utf8_lossy(&help.stdout).contains("--port N"), "{help:?}");
    for bad in [&["--port", "70000"][..], &["--heartbeat", "soon"], &["--frobnicate"], &["--max-clients", "0"]] {
        let out = Command::new(&binary).args(bad).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{bad:?}: {out:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("error:"), "{bad:?}: {out:?}");
    }
}

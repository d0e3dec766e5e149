//! The interactive menu of the lab report: seven numbered items.
//!
//! ```text
//! +-------+---------------------------+
//! | Input | Function                  |
//! +-------+---------------------------+
//! | 1     | Connect to a server.      |
//! | 2     | Close the connection.     |
//! | 3     | Get the server time.      |
//! | 4     | Get the server name.      |
//! | 5     | Get the client list.      |
//! | 6     | Send a message.           |
//! | 7     | Exit.                     |
//! +-------+---------------------------+
//! ```
//!
//! One event channel feeds the main loop: a `tnlm-stdin` thread sends each
//! line typed (and finally the end of input), and the connection's receiver
//! thread sends each frame (and finally the reason it closed). So the main
//! thread never sits blocked in a `read` of stdin while a message from
//! another client waits to be shown: it prints indications as they arrive,
//! through the [`Console`], which keeps the prompt intact.
//!
//! While the menu waits for a response, lines typed meanwhile are queued and
//! answered afterwards, in order; events of a connection that has since been
//! closed are recognised by a generation number and dropped.

use std::collections::VecDeque;
use std::fmt;
use std::io::{self, BufRead};
use std::thread;
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender};
use tnlm_core::message::{ListRequest, NameRequest, SendRequest, TimeRequest};
use tnlm_core::{Frame, Message, DEFAULT_PORT};

use crate::cli::{parse_port, Cli, Target};
use crate::connection::{
    is_indication, wait_response, Connection, Event, EventSource, QueuedMessages, Sink, WaitError,
};
use crate::console::Console;
use crate::error::ClientError;
use crate::output::{Output, Record};

/// The menu as the seed's client printed it.
pub const MENU: &str = "\
Please input the operation number:
+-------+---------------------------+
| Input | Function                  |
+-------+---------------------------+
| 1     | Connect to a server.      |
| 2     | Close the connection.     |
| 3     | Get the server time.      |
| 4     | Get the server name.      |
| 5     | Get the client list.      |
| 6     | Send a message.           |
| 7     | Exit.                     |
+-------+---------------------------+";

/// The prompt while disconnected (the full menu is shown again on an empty line).
const PROMPT: &str = "[not connected] choose 1-7 (Enter shows the menu)> ";

/// The prompt while connected.
const PROMPT_CONNECTED: &str = "choose 1-7 (Enter shows the menu)> ";

/// What items 2 to 6 say while there is no connection.
pub const NOT_CONNECTED: &str = "not connected — choose 1 first";

/// Runs the menu until item 7 or the end of stdin. Connects first when
/// `--connect` was given.
pub fn run(cli: &Cli) -> Result<(), ClientError> {
    let mut menu = Menu::new(cli);
    spawn_stdin_reader(menu.events.tx.clone())
        .map_err(|err| ClientError::Failed(format!("cannot start the input thread: {err}")))?;
    if let Some(target) = &cli.connect {
        menu.connect_to(target.clone());
    }
    menu.main_loop();
    Ok(())
}

/// Everything the main loop waits for.
#[derive(Debug)]
enum MenuEvent {
    /// A line typed on stdin (without its line ending).
    Line(String),
    /// Stdin ended.
    InputEnd,
    /// An event of the connection numbered `generation`.
    Net { generation: u64, event: Event },
}

/// What [`Events::next_incoming`] found.
enum Found {
    /// A line, or `None` at the end of input.
    Input(Option<String>),
    /// An event of the current connection.
    Net(Event),
}

/// The menu's one channel, plus the lines that arrived while a response was awaited.
struct Events {
    tx: Sender<MenuEvent>,
    rx: Receiver<MenuEvent>,
    backlog: VecDeque<Option<String>>,
    input_ended: bool,
    /// Numbers connections, so late events of a closed one are recognised.
    generation: u64,
    /// The current connection's messages not yet taken (see [`QueuedMessages`]).
    queued: QueuedMessages,
}

impl Events {
    fn new() -> Events {
        let (tx, rx) = crossbeam_channel::unbounded();
        Events {
            tx,
            rx,
            backlog: VecDeque::new(),
            input_ended: false,
            generation: 0,
            queued: QueuedMessages::default(),
        }
    }

    /// A sink for a new connection, and its count of queued messages;
    /// events of older ones are ignored from now on.
    fn new_sink(&mut self) -> (Sink, QueuedMessages) {
        self.generation += 1;
        self.queued = QueuedMessages::default();
        let (tx, generation) = (self.tx.clone(), self.generation);
        (Box::new(move |event| tx.send(MenuEvent::Net { generation, event }).is_ok()), self.queued.clone())
    }

    /// Forgets the current connection's events (it was closed).
    fn retire_connection(&mut self) {
        self.generation += 1;
    }

    /// The next input line (queued ones first) or event of the current connection.
    fn next_incoming(&mut self) -> Found {
        if let Some(input) = self.backlog.pop_front() {
            self.input_ended |= input.is_none();
            return Found::Input(input);
        }
        if self.input_ended {
            return Found::Input(None);
        }
        loop {
            match self.rx.recv() {
                Ok(MenuEvent::Line(line)) => return Found::Input(Some(line)),
                Ok(MenuEvent::InputEnd) | Err(_) => {
                    self.input_ended = true;
                    return Found::Input(None);
                }
                Ok(MenuEvent::Net { generation, event }) if generation == self.generation => {
                    self.queued.taken(&event);
                    return Found::Net(event);
                }
                Ok(MenuEvent::Net { .. }) => {}
            }
        }
    }
}

impl EventSource for Events {
    /// Network events only: input lines that come first are queued for later.
    fn next_event(&mut self, deadline: Option<Instant>) -> Option<Event> {
        loop {
            let event = match deadline {
                Some(deadline) => self.rx.recv_deadline(deadline).ok()?,
                None => self.rx.recv().ok()?,
            };
            match event {
                MenuEvent::Line(line) => self.backlog.push_back(Some(line)),
                MenuEvent::InputEnd => self.backlog.push_back(None),
                MenuEvent::Net { generation, event } if generation == self.generation => {
                    self.queued.taken(&event);
                    return Some(event);
                }
                MenuEvent::Net { .. } => {}
            }
        }
    }
}

/// The menu's state.
struct Menu<'a> {
    cli: &'a Cli,
    events: Events,
    console: Console,
    output: Output,
    connection: Option<Connection>,
    /// What item 1 offers: `--connect`, or the last server used.
    default_target: Target,
    /// Show the whole menu before the next prompt (at start, after a
    /// connect, disconnect or bad input).
    show_menu: bool,
}

impl<'a> Menu<'a> {
    fn new(cli: &'a Cli) -> Menu<'a> {
        let default_target =
            cli.connect.clone().unwrap_or_else(|| Target { host: "127.0.0.1".into(), port: DEFAULT_PORT });
        Menu {
            cli,
            events: Events::new(),
            console: Console::default(),
            output: Output { json: cli.json },
            connection: None,
            default_target,
            show_menu: true,
        }
    }

    /// Shows the menu and runs the chosen item, until 7 or the end of input.
    fn main_loop(&mut self) {
        loop {
            if std::mem::take(&mut self.show_menu) {
                self.console.line(MENU);
            }
            let connected = self.connection.is_some();
            let Some(choice) = self.ask(if connected { PROMPT_CONNECTED } else { PROMPT }) else {
                self.console.line("end of input — exiting");
                break;
            };
            let carry_on = match choice.trim() {
                "" => {
                    self.show_menu = true;
                    Some(())
                }
                "1" => self.connect(),
                "2" => self.when_connected(Menu::disconnect),
                "3" => self.when_connected(|menu| menu.simple_request(TimeRequest.into(), "time")),
                "4" => self.when_connected(|menu| menu.simple_request(NameRequest.into(), "name")),
                "5" => self.when_connected(|menu| menu.simple_request(ListRequest.into(), "list")),
                "6" => self.when_connected(Menu::send_message),
                "7" => None,
                other => {
                    self.console.line(&format!("invalid choice {other:?}: type a number from 1 to 7 and press Enter"));
                    self.show_menu = true;
                    Some(())
                }
            };
            if carry_on.is_none() {
                break;
            }
        }
        self.disconnect();
        self.console.line("bye");
    }

    /// Runs `item` if connected, else says how to connect. `None` means the input ended.
    fn when_connected(&mut self, item: impl FnOnce(&mut Self) -> Option<()>) -> Option<()> {
        if self.connection.is_none() {
            self.console.line(NOT_CONNECTED);
            return Some(());
        }
        item(self)
    }

    /// Shows `prompt` and waits for a line, printing network events meanwhile.
    /// `None` at the end of input.
    fn ask(&mut self, prompt: &str) -> Option<String> {
        self.console.prompt(prompt);
        loop {
            match self.events.next_incoming() {
                Found::Input(input) => {
                    self.console.input_received();
                    return input;
                }
                Found::Net(event) => self.on_network_event(event),
            }
        }
    }

    /// Asks with a default: empty input takes `default`.
    fn ask_or(&mut self, what: &str, default: &str) -> Option<String> {
        let answer = self.ask(&format!("{what} [{default}]: "))?;
        let answer = answer.trim();
        Some(if answer.is_empty() { default.to_string() } else { answer.to_string() })
    }

    /// Item 1: ask for host and port, then connect.
    fn connect(&mut self) -> Option<()> {
        if let Some(connection) = &self.connection {
            let line = format!("already connected to {} — choose 2 to disconnect first", connection.peer());
            self.console.line(&line);
            return Some(());
        }
        let default = self.default_target.clone();
        let host = self.ask_or("server host", &default.host)?;
        let port = self.ask_or("server port", &default.port.to_string())?;
        match parse_port(&port) {
            Ok(port) => self.connect_to(Target { host: host.trim_matches(['[', ']']).to_string(), port }),
            Err(err) => self.console.line(&format!("{err}; not connecting")),
        }
        Some(())
    }

    /// Opens a connection to `target` and shows the server's hello.
    fn connect_to(&mut self, target: Target) {
        self.console.line(&format!("connecting to {target} …"));
        let (sink, queued) = self.events.new_sink();
        let opened = Connection::open_with(&target.to_string(), &self.cli.settings(), sink, &mut self.events, queued);
        match opened {
            Ok(connection) => {
                self.show(&Record::hello(connection.hello(), connection.peer()));
                self.connection = Some(connection);
                self.default_target = target;
                self.show_menu = true;
            }
            Err(err) => {
                self.events.retire_connection();
                self.console.line(&format!("error: {err}"));
            }
        }
    }

    /// Item 2 (and exit): close the connection and join its receiver thread.
    fn disconnect(&mut self) -> Option<()> {
        if let Some(mut connection) = self.connection.take() {
            let peer = connection.peer();
            let (console, output, you) = (&mut self.console, self.output, Some(connection.id()));
            connection.settle(&mut self.events, self.cli.timeout(), |frame| show_frame(console, output, frame, you));
            connection.close();
            self.events.retire_connection();
            self.console.line(&format!("disconnected from {peer}"));
            self.show_menu = true;
        }
        Some(())
    }

    /// The connection ended without us asking: say why and go back to disconnected.
    fn connection_lost(&mut self, reason: &dyn fmt::Display) {
        if let Some(connection) = self.connection.take() {
            let peer = connection.peer();
            connection.close();
            self.events.retire_connection();
            self.console.line(&format!("connection to {peer} closed: {reason} — choose 1 to connect again"));
            self.show_menu = true;
        }
    }

    /// Items 3 to 5: one request, show its response.
    fn simple_request(&mut self, message: Message, what: &'static str) -> Option<()> {
        if let Some(frame) = self.request(message, what) {
            self.show_frame(&frame);
        }
        Some(())
    }

    /// Item 6: ask for the target id and the text, send, show the delivery result.
    fn send_message(&mut self) -> Option<()> {
        let id = self.ask("destination client id (see item 5): ")?;
        let Ok(to) = id.trim().parse::<u32>() else {
            self.console.line(&format!("{:?} is not a client id: type the number shown by item 5", id.trim()));
            return Some(());
        };
        let text = self.ask("message: ")?;
        if self.connection.is_none() {
            self.console.line(NOT_CONNECTED);
            return Some(());
        }
        if let Some(frame) = self.request(SendRequest { to, text }.into(), "send") {
            self.show_frame(&frame);
        }
        Some(())
    }

    /// Sends a request and waits for its response, showing indications
    /// meanwhile. Problems are shown here; `None` when there is no response.
    fn request(&mut self, message: Message, what: &'static str) -> Option<Frame> {
        let connection = self.connection.as_mut()?;
        let you = Some(connection.id());
        let id = match connection.send(message) {
            Ok(id) => id,
            // The socket failed: the connection is gone.
            Err(err @ ClientError::Send(_)) => {
                self.connection_lost(&err);
                return None;
            }
            // Nothing was written (e.g. a message over the server's size limit): carry on.
            Err(err) => {
                self.console.line(&format!("error: {err}"));
                return None;
            }
        };
        let (console, output, timeout) = (&mut self.console, self.output, self.cli.timeout());
        let deadline = Instant::now() + timeout;
        let waited = wait_response(&mut self.events, id, deadline, |frame| show_frame(console, output, frame, you));
        match waited {
            Ok(frame) => Some(frame),
            Err(WaitError::Closed(reason)) => {
                self.connection_lost(&reason);
                None
            }
            Err(err) => {
                self.console.line(&format!("error: {}", err.into_client_error(what, timeout)));
                None
            }
        }
    }

    /// Something the server sent while the menu was waiting for input.
    fn on_network_event(&mut self, event: Event) {
        match event {
            Event::Frame(frame) if is_indication(&frame) => self.show_frame(&frame),
            Event::Frame(frame) => tracing::debug!("ignoring a late {}", frame.summary()),
            Event::Skipped(err) => tracing::warn!("skipped an undecodable frame: {err}"),
            Event::Closed(reason) => self.connection_lost(&reason),
        }
    }

    fn show_frame(&mut self, frame: &Frame) {
        let you = self.connection.as_ref().map(Connection::id);
        show_frame(&mut self.console, self.output, frame, you);
    }

    fn show(&mut self, record: &Record) {
        self.console.line(&self.output.render(record));
    }
}

/// Shows any frame from the server through the console.
fn show_frame(console: &mut Console, output: Output, frame: &Frame, you: Option<u32>) {
    if let Some(record) = Record::from_message(frame.request_id, &frame.message, you) {
        console.line(&output.render(&record));
    }
}

/// Starts the `tnlm-stdin` thread: every line typed becomes a [`MenuEvent::Line`].
///
/// It is not joined: at exit it may be blocked in a read of the terminal,
/// which nothing can portably interrupt, and the process ends it.
fn spawn_stdin_reader(tx: Sender<MenuEvent>) -> io::Result<()> {
    thread::Builder::new().name("tnlm-stdin".into()).spawn(move || read_stdin(&tx))?;
    Ok(())
}

fn read_stdin(tx: &Sender<MenuEvent>) {
    let mut stdin = io::stdin().lock();
    let mut bytes = Vec::new();
    loop {
        bytes.clear();
        match stdin.read_until(b'\n', &mut bytes) {
            Ok(0) => break,
            Ok(_) => {
                if tx.send(MenuEvent::Line(line_text(&bytes))).is_err() {
                    return;
                }
            }
            Err(err) => {
                tracing::warn!("cannot read stdin: {err}");
                break;
            }
        }
    }
    let _ = tx.send(MenuEvent::InputEnd);
}

/// A line without its `\n` or `\r\n`, invalid UTF-8 replaced.
fn line_text(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let text = text.strip_suffix('\n').unwrap_or(&text);
    text.strip_suffix('\r').unwrap_or(text).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connection::CloseReason;

    #[test]
    fn line_endings_are_stripped_and_content_kept() {
        assert_eq!(line_text(b"  a#b*c \r\n"), "  a#b*c ");
        assert_eq!(line_text("你好\n".as_bytes()), "你好");
        assert_eq!(line_text(b"last"), "last");
    }

    #[test]
    fn stale_connection_events_are_dropped_and_lines_queued() {
        let mut events = Events::new();
        let (mut old, _) = events.new_sink();
        let (mut current, _) = events.new_sink();
        assert!(old(Event::Closed(CloseReason::Eof)));
        events.tx.send(MenuEvent::Line("3".into())).ok();
        assert!(current(Event::Closed(CloseReason::Local)));
        let event = events.next_event(None);
        assert!(matches!(event, Some(Event::Closed(CloseReason::Local))), "{event:?}");
        assert!(matches!(events.next_incoming(), Found::Input(Some(line)) if line == "3"));
    }
}

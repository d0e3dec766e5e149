//! The scriptable subcommands: connect, do one thing, print, exit.
//!
//! Each returns `Ok(())` for exit code 0, or the [`ClientError`] whose message
//! the binary prints as `error: …` before exiting with code 1. Results go to
//! stdout as [`Record`]s (text or JSON); indications that arrive while a
//! command waits (a message from another client, the shutdown notice) are
//! printed too, never dropped.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use tnlm_core::message::{DeliveryStatus, ListRequest, NameRequest, SendRequest, TimeRequest};
use tnlm_core::{Frame, Message};

use crate::cli::{Cli, Command, Target};
use crate::connection::{is_indication, wait_response, Connection, Event, EventSource, Inbox};
use crate::error::{secs, ClientError};
use crate::output::{printable, Output, Record};

/// A connected command: the connection, its events, and how to print.
struct CommandRun {
    connection: Connection,
    inbox: Inbox,
    output: Output,
    timeout: Duration,
}

/// Connects to `target` and runs `command`.
pub fn run(cli: &Cli, target: &Target, command: &Command) -> Result<(), ClientError> {
    match command {
        Command::Bench(args) => return crate::bench::run(cli, target, args), // opens connections of its own
        Command::Conform { timers } => return crate::conform::run(cli, target, *timers), // likewise
        _ => {}
    }
    let settings = cli.settings();
    let (connection, inbox) = Connection::open(&target.to_string(), &settings)?;
    let mut session = CommandRun { connection, inbox, output: Output { json: cli.json }, timeout: settings.timeout };
    let result = match command {
        Command::Time { repeat: None, .. } => session.time(),
        Command::Time { repeat: Some(n), sends } => session.time_repeat(*n, *sends),
        Command::Name => session.name(),
        Command::List => session.list(),
        Command::Send { id, text } => session.send(*id, text),
        Command::Listen { count } => session.listen(*count, cli.timeout),
        Command::Bench(_) | Command::Conform { .. } => Ok(()), // handled above
    };
    session.connection.settle(&mut session.inbox, session.timeout, |_| {});
    session.connection.close();
    result
}

impl CommandRun {
    /// `time`: one request, one response.
    fn time(&mut self) -> Result<(), ClientError> {
        match self.request(TimeRequest, "time")? {
            Frame { message: Message::TimeResponse(_), .. } => Ok(()),
            other => Err(unexpected("time", &other)),
        }
    }

    /// `name`.
    fn name(&mut self) -> Result<(), ClientError> {
        match self.request(NameRequest, "name")? {
            Frame { message: Message::NameResponse(_), .. } => Ok(()),
            other => Err(unexpected("name", &other)),
        }
    }

    /// `list`.
    fn list(&mut self) -> Result<(), ClientError> {
        match self.request(ListRequest, "list")? {
            Frame { message: Message::ListResponse(_), .. } => Ok(()),
            other => Err(unexpected("list", &other)),
        }
    }

    /// `send ID TEXT`: succeeds only if the server delivered it.
    fn send(&mut self, to: u32, text: &str) -> Result<(), ClientError> {
        let frame = self.request(SendRequest { to, text: text.to_string() }, "send")?;
        match frame.message {
            Message::Delivery(delivery) if delivery.status == DeliveryStatus::Delivered => Ok(()),
            Message::Delivery(delivery) => Err(ClientError::Failed(format!(
                "message not delivered to client {to}: {} ({})",
                printable(&delivery.reason),
                delivery.status.name()
            ))),
            _ => Err(unexpected("send", &frame)),
        }
    }

    /// Sends one request, waits for its response and prints it. An error
    /// frame is printed and becomes the error.
    fn request(&mut self, message: impl Into<Message>, what: &'static str) -> Result<Frame, ClientError> {
        let id = self.connection.send(message)?;
        let deadline = Instant::now() + self.timeout;
        let (output, timeout) = (self.output, self.timeout);
        let you = Some(self.connection.id());
        let frame = wait_response(&mut self.inbox, id, deadline, |f| print_frame(output, f, you))
            .map_err(|err| err.into_client_error(what, timeout))?;
        print_frame(output, &frame, you);
        match &frame.message {
            Message::Error(body) => Err(ClientError::Failed(format!(
                "the server answered the {what} request with an error: {} ({})",
                printable(&body.text),
                body.code.name()
            ))),
            _ => Ok(frame),
        }
    }

    /// `time --repeat N`: N requests in one write (or, with `separate`, one
    /// write per request, back to back), then count the answers.
    fn time_repeat(&mut self, n: u32, separate: bool) -> Result<(), ClientError> {
        let start = Instant::now();
        let (ids, writes) = if separate {
            let ids = (0..n).map(|_| self.connection.send(TimeRequest)).collect::<Result<Vec<_>, _>>()?;
            (ids, n)
        } else {
            (self.connection.send_batch((0..n).map(|_| Message::from(TimeRequest)))?, 1)
        };
        let mut burst = Burst { pending: ids.into_iter().collect(), received: 0, matched: 0, last: start };
        let outcome = self.collect_burst(&mut burst, start + self.timeout);
        self.output.print(&Record::repeat(n, writes, burst.received, burst.matched, burst.last - start));
        match outcome {
            Err(err) => Err(err),
            Ok(()) if burst.matched == n => Ok(()),
            Ok(()) => Err(ClientError::Failed(format!(
                "only {} of {n} time responses matched within {}",
                burst.matched,
                secs(self.timeout)
            ))),
        }
    }

    /// Receives until every request of the burst is answered, the deadline
    /// passes (`Ok`, the caller counts) or the connection fails (`Err`).
    fn collect_burst(&mut self, burst: &mut Burst, deadline: Instant) -> Result<(), ClientError> {
        let you = Some(self.connection.id());
        while !burst.pending.is_empty() {
            let frame = match self.inbox.next_event(Some(deadline)) {
                None => return Ok(()),
                Some(Event::Closed(reason)) => return Err(ClientError::Closed(reason)),
                Some(Event::Skipped(err)) => {
                    tracing::warn!("skipped an undecodable frame: {err}");
                    continue;
                }
                Some(Event::Frame(frame)) => frame,
            };
            print_frame(self.output, &frame, you);
            match &frame.message {
                Message::TimeResponse(_) => burst.count(frame.request_id),
                Message::Error(body) => {
                    return Err(ClientError::Failed(format!("the server reported an error: {}", printable(&body.text))))
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// `listen`: print the hello, then every indication. See [`Command::Listen`].
    fn listen(&mut self, count: Option<u32>, duration: Option<Duration>) -> Result<(), ClientError> {
        self.output.print(&Record::hello(self.connection.hello(), self.connection.peer()));
        let deadline = duration.map(|d| Instant::now() + d);
        let mut received = 0;
        let mut shutdown_notice = false;
        loop {
            if count.is_some_and(|n| received >= n) {
                return Ok(());
            }
            let frame = match self.inbox.next_event(deadline) {
                None => return listen_timed_out(count, received, duration),
                Some(Event::Closed(reason)) => return listen_closed(count, received, shutdown_notice, reason),
                Some(Event::Skipped(err)) => {
                    tracing::warn!("skipped an undecodable frame: {err}");
                    continue;
                }
                Some(Event::Frame(frame)) => frame,
            };
            print_frame(self.output, &frame, Some(self.connection.id()));
            match &frame.message {
                Message::Forwarded(_) => received += 1,
                Message::Shutdown(_) => shutdown_notice = true,
                Message::Error(body) => {
                    return Err(ClientError::Failed(format!("the server reported an error: {}", printable(&body.text))))
                }
                _ => {}
            }
        }
    }
}

/// The bookkeeping of `time --repeat`.
struct Burst {
    /// Request ids still waiting for their response.
    pending: HashSet<u32>,
    /// Time responses received.
    received: u32,
    /// Responses that answered a pending request.
    matched: u32,
    /// When the last response arrived.
    last: Instant,
}

impl Burst {
    fn count(&mut self, request_id: u32) {
        self.received += 1;
        self.last = Instant::now();
        if self.pending.remove(&request_id) {
            self.matched += 1;
        } else {
            tracing::warn!("time response #{request_id} matches no outstanding request");
        }
    }
}

fn listen_timed_out(count: Option<u32>, received: u32, duration: Option<Duration>) -> Result<(), ClientError> {
    match count {
        None => Ok(()),
        Some(n) => Err(ClientError::Failed(format!(
            "received {received} of {n} messages before the --timeout of {}",
            duration.map_or_else(String::new, secs)
        ))),
    }
}

fn listen_closed(
    count: Option<u32>,
    received: u32,
    shutdown_notice: bool,
    reason: crate::error::CloseReason,
) -> Result<(), ClientError> {
    match count {
        Some(n) => Err(ClientError::Failed(format!("{reason} after {received} of {n} messages"))),
        None if shutdown_notice => Ok(()),
        None => Err(ClientError::Closed(reason)),
    }
}

/// Prints any frame the server sent (responses and indications alike).
fn print_frame(output: Output, frame: &Frame, you: Option<u32>) {
    match Record::from_message(frame.request_id, &frame.message, you) {
        Some(record) => output.print(&record),
        None => tracing::warn!("the server sent a request ({}); ignored", frame.summary()),
    }
    if is_indication(frame) {
        tracing::debug!("indication {}", frame.summary());
    }
}

fn unexpected(what: &str, frame: &Frame) -> ClientError {
    ClientError::Failed(format!("the server answered the {what} request with {}", frame.summary()))
}

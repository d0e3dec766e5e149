//! Experiment 7 — who is who: one server port, many clients, told apart by
//! the connection's 4-tuple.
//!
//! The lab report asks how a server that receives on one port knows which
//! client a packet belongs to. Here three clients connect from the same IP
//! address. The server's log and its list, the operating system's socket
//! table, each client's own `L` request, and a forwarded message all show the
//! same thing: the connections differ only in the client's port, and that is
//! enough.

use std::net::SocketAddr;
use std::time::Instant;

use tnlm_client::connection::wait_response;
use tnlm_client::{Connection, Event, EventSource, Inbox};
use tnlm_core::message::{DeliveryStatus, ListRequest, SendRequest};
use tnlm_core::sockopt::SocketOptions;
use tnlm_core::Message;

use crate::sockets;
use crate::{connect, explain, heading, request, start_server, LabError, Result, TIMEOUT};

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// How many clients connect (at least 2).
    pub clients: usize,
}

/// One client as each party sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    /// The id the server gave it.
    pub id: u32,
    /// Its own socket's local address.
    pub local: SocketAddr,
    /// The address the server lists for it.
    pub listed: Option<SocketAddr>,
    /// The id its own `L` request marked as "you" (the entry with its id).
    pub you_in_own_list: Option<SocketAddr>,
}

/// What the experiment showed.
#[derive(Debug, Clone)]
pub struct Observation {
    /// The server's address (the same for every connection).
    pub server: SocketAddr,
    /// Every client.
    pub clients: Vec<Seen>,
    /// OS socket-table rows on the server's port (empty if unreadable).
    pub os_rows: usize,
    /// The sender id and address stamped on a message from the first client to the second.
    pub forwarded_from: Option<(u32, SocketAddr)>,
}

/// Runs the experiment and prints what happened.
pub fn run(options: &Options) -> Result<Observation> {
    heading(&format!("Who is who: {} clients from the same IP address, one server port", options.clients));
    let server = start_server(|_| {})?;
    let addr = server.connect_addr();
    let mut connections: Vec<(Connection, Inbox)> = Vec::new();
    for _ in 0..options.clients.max(2) {
        let (connection, inbox) = connect(addr, SocketOptions::default())?;
        println!(
            "   client {} connected: its 4-tuple is {} <-> {}",
            connection.id(),
            connection.local(),
            connection.peer()
        );
        connections.push((connection, inbox));
    }

    println!("   the server's list (what `list` on its console prints):");
    let listed = server.clients();
    for client in &listed {
        println!("     id {:>2}  {}", client.id, SocketAddr::new(client.ip, client.port));
    }

    let rows = sockets::on_port(addr.port()).unwrap_or_default();
    if !rows.is_empty() {
        println!("   the OS's socket table for port {} ({}):", addr.port(), sockets::source());
        sockets::print(&rows, "     ");
    }

    let mut clients = Vec::new();
    for (connection, inbox) in &mut connections {
        let id = connection.id();
        let Message::ListResponse(list) = request(connection, inbox, ListRequest)? else {
            return Err(LabError::Failed("no list response".into()));
        };
        let you = list.clients.iter().find(|c| c.id == id).map(|c| SocketAddr::new(c.ip, c.port));
        let listed = listed.iter().find(|c| c.id == id).map(|c| SocketAddr::new(c.ip, c.port));
        clients.push(Seen { id, local: connection.local(), listed, you_in_own_list: you });
    }
    for seen in &clients {
        let you = seen.you_in_own_list.map_or_else(|| "missing".to_string(), |a| a.to_string());
        println!(
            "   client {}'s own `list` marks id {} (you) at {you}; its socket says {}",
            seen.id, seen.id, seen.local
        );
    }

    let forwarded_from = forward(&mut connections)?;
    if let Some((from, from_addr)) = forwarded_from {
        println!(
            "   client {} sent \"who am I?\" to client {}; it arrived stamped: from {from} at {from_addr}",
            clients[0].id, clients[1].id
        );
    }
    let ids: Vec<u32> = connections.iter().map(|(c, _)| c.id()).collect();
    drop(connections);
    for id in ids {
        server.wait_client_gone(id, TIMEOUT);
    }
    server.shutdown();
    explain(WHY);
    Ok(Observation { server: addr, clients, os_rows: rows.len(), forwarded_from })
}

/// The first client messages the second; returns the sender stamp the second sees.
fn forward(connections: &mut [(Connection, Inbox)]) -> Result<Option<(u32, SocketAddr)>> {
    let [(sender, sender_inbox), (receiver, receiver_inbox), ..] = connections else {
        return Ok(None);
    };
    let request_id = sender.send(SendRequest { to: receiver.id(), text: "who am I?".into() })?;
    let reply = wait_response(sender_inbox, request_id, Instant::now() + TIMEOUT, |_| {})
        .map_err(|e| LabError::Failed(format!("no delivery receipt: {e:?}")))?;
    match reply.message {
        Message::Delivery(d) if d.status == DeliveryStatus::Delivered => {}
        other => return Err(LabError::Failed(format!("the message was not delivered: {other:?}"))),
    }
    let deadline = Instant::now() + TIMEOUT;
    loop {
        match receiver_inbox.next_event(Some(deadline)) {
            Some(Event::Frame(frame)) => {
                if let Message::Forwarded(f) = frame.message {
                    return Ok(Some((f.from, SocketAddr::new(f.from_ip, f.from_port))));
                }
            }
            Some(Event::Skipped(_)) => {}
            Some(Event::Closed(reason)) => return Err(LabError::Failed(format!("receiver closed: {reason}"))),
            None => return Err(LabError::Failed("the forwarded message never arrived".into())),
        }
    }
}

const WHY: &str = "\
Why: every connection has its own socket on the server, made by accept(), and
the kernel hands each arriving segment to the socket whose 4-tuple (source IP,
source port, destination IP, destination port) it matches. All the clients
here share three of the four (same IP, same server IP and port); their
ephemeral ports differ, so every 4-tuple is unique. The server's thread for a
client reads and writes that client's socket only, which is how it knows who
sent a request; it stamps forwarded messages with the sender's id and address
from its own records, so no client can pretend to be another.";

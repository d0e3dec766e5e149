//! Experiment 4 — ephemeral ports: the client never calls `bind()`.
//!
//! The lab report asks: does the client need `bind`? Where does its source
//! port come from? Is it the same on every `connect`? Here a socket is shown
//! before and after `connect()` (no port, then a port the kernel chose), and
//! then the client connects several times in a row; each time the server's
//! `L` list shows it with a new source port.

use std::net::SocketAddr;
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};
use tnlm_core::message::ListRequest;
use tnlm_core::sockopt::SocketOptions;
use tnlm_core::Message;

use crate::sockets;
use crate::{connect, explain, heading, request, start_server, LabError, Result, TIMEOUT};

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// How many connections, one after the other.
    pub connections: usize,
}

/// What the experiment showed.
#[derive(Debug, Clone)]
pub struct Observation {
    /// The socket's local address before `connect()`, if the OS reports one.
    pub before_connect: Option<SocketAddr>,
    /// Its local address right after `connect()`.
    pub after_connect: SocketAddr,
    /// The source port of each connection, as the server's list shows it.
    pub ports: Vec<u16>,
    /// The server's port.
    pub server_port: u16,
    /// The OS's ephemeral port range, where known.
    pub range: Option<(u16, u16)>,
}

/// Runs the experiment and prints what happened.
pub fn run(options: &Options) -> Result<Observation> {
    heading(&format!("Ephemeral ports: the client connects {} times and never binds", options.connections));
    let server = start_server(|_| {})?;
    let addr = server.connect_addr();
    println!("   server listening on {addr}");

    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    let before_connect = socket.local_addr().ok().and_then(|a| a.as_socket());
    match before_connect {
        Some(local) => println!("   a new socket, before connect(): local address {local} (port 0: none chosen yet)"),
        None => println!("   a new socket, before connect(): no local address at all (the OS says it is not bound)"),
    }
    socket.connect_timeout(&addr.into(), TIMEOUT)?;
    let after_connect = socket
        .local_addr()?
        .as_socket()
        .ok_or_else(|| LabError::Failed("the connected socket has no IP address".into()))?;
    println!("   after connect():                local address {after_connect} (the kernel picked the port)");
    let mut stream = std::net::TcpStream::from(socket);
    let first = crate::read_hello(&mut stream)?;
    drop(stream);
    server.wait_client_gone(first, TIMEOUT);
    println!(
        "   (that socket closes again; now {} connections with tnlm-client, one after the other)",
        options.connections
    );

    let mut ports = Vec::new();
    for n in 1..=options.connections {
        let (mut connection, mut inbox) = connect(addr, SocketOptions::default())?;
        let Message::ListResponse(list) = request(&mut connection, &mut inbox, ListRequest)? else {
            return Err(LabError::Failed("the server did not answer the list request with a list".into()));
        };
        let me = list
            .clients
            .iter()
            .find(|c| c.id == connection.id())
            .ok_or_else(|| LabError::Failed("the list does not show this client".into()))?;
        println!(
            "   connect #{n}: source port {:>5}; the server's list shows client {} at {}:{}",
            connection.local().port(),
            me.id,
            me.ip,
            me.port
        );
        ports.push(me.port);
        let id = connection.id();
        connection.close();
        server.wait_client_gone(id, Duration::from_secs(10));
    }
    let distinct: std::collections::HashSet<_> = ports.iter().collect();
    println!(
        "   {} connections, {} different source ports; the server's port stayed {}",
        ports.len(),
        distinct.len(),
        addr.port()
    );
    let range = sockets::ephemeral_range();
    if let Some((low, high)) = range {
        let inside = ports.iter().all(|p| (low..=high).contains(p));
        let source =
            if cfg!(target_os = "linux") { "net.ipv4.ip_local_port_range" } else { "the default dynamic range" };
        println!(
            "   this OS hands out ephemeral ports from {low} to {high} ({source}); all of them inside: {}",
            if inside { "yes" } else { "no" }
        );
    }
    server.shutdown();
    explain(WHY);
    Ok(Observation { before_connect, after_connect, ports, server_port: addr.port(), range })
}

const WHY: &str = "\
Why: a connection is identified by its 4-tuple (client IP, client port,
server IP, server port). The server must bind a well-known port so clients
can find it; the client need not: connect() on an unbound socket binds it
implicitly to a free ephemeral port that the kernel chooses. Each connect()
chooses again (Linux varies the starting point per destination and moves on
with each connection, RFC 6056), and the previous connection's port is still
held by its TIME_WAIT anyway (see `closing`): every connection gets a new
source port, and the server's list shows it. A client *may* bind() a fixed
port, but then it could not reconnect from it while TIME_WAIT holds it.";

//! Refusing clients when the server is out of file descriptors.
//!
//! At the open-file limit (`ulimit -n`, 1,024 by default on many Linux
//! desktops) `accept` fails with `EMFILE` before it takes a connection, so
//! the clients waiting in the listen queue can be neither served nor told
//! why: each would wait until its own connect or hello timed out. The accept
//! loop therefore holds one descriptor in reserve. Out of descriptors, it
//! gives the reserve up, accepts the next waiting client with it, and takes
//! the reserve back: if that works, descriptors have come free meanwhile and
//! the client is served; if not, the client is told `too_many_clients` and
//! closed, which frees the descriptor for the reserve again.

use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};

use socket2::{Domain, Socket, Type};

/// `accept`'s errors for "no descriptor left": `EMFILE` (this process) and
/// `ENFILE` (the whole system) on Unix, `WSAEMFILE` on Windows.
#[cfg(unix)]
const OUT_OF_DESCRIPTORS: &[i32] = &[24, 23];
#[cfg(windows)]
const OUT_OF_DESCRIPTORS: &[i32] = &[10024];
#[cfg(not(any(unix, windows)))]
const OUT_OF_DESCRIPTORS: &[i32] = &[];

/// Whether `err` (from `accept`) means the process has no descriptor left.
pub(crate) fn out_of_descriptors(err: &io::Error) -> bool {
    err.raw_os_error().is_some_and(|code| OUT_OF_DESCRIPTORS.contains(&code))
}

/// A client accepted with the reserve descriptor.
#[derive(Debug)]
pub(crate) enum Taken {
    /// Descriptors came free meanwhile: serve it as usual.
    Serve(TcpStream, SocketAddr),
    /// Still none free: refuse it, then close it.
    Refuse(TcpStream, SocketAddr),
}

/// The descriptor held in reserve (an unbound socket).
#[derive(Debug)]
pub(crate) struct SpareDescriptor(Option<Socket>);

impl SpareDescriptor {
    /// Takes a descriptor into reserve (none if the OS has none to give).
    pub(crate) fn new() -> SpareDescriptor {
        SpareDescriptor(open())
    }

    /// Gives the reserve up to accept the next waiting client (blocking, as
    /// the accept loop always does), then tries to take it back. `None` when
    /// there was no reserve or the accept failed; the reserve is retaken.
    pub(crate) fn accept_with_it(&mut self, listener: &TcpListener) -> Option<Taken> {
        if self.0.take().is_none() {
            self.0 = open();
            return None;
        }
        let accepted = listener.accept();
        self.0 = open();
        match accepted {
            Ok((stream, addr)) if self.0.is_some() => Some(Taken::Serve(stream, addr)),
            Ok((stream, addr)) => Some(Taken::Refuse(stream, addr)),
            Err(err) => {
                tracing::debug!("accept with the spare descriptor failed: {err}");
                None
            }
        }
    }

    /// Takes a descriptor back into reserve after a refused client was
    /// closed, if there is none.
    pub(crate) fn retake(&mut self) {
        if self.0.is_none() {
            self.0 = open();
        }
    }
}

fn open() -> Option<Socket> {
    Socket::new(Domain::IPV4, Type::STREAM, None).ok()
}

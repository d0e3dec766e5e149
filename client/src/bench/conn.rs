//! One connection of a worker: its role in the run, its buffers, and the
//! requests of its current batch still waiting for an answer.

use std::time::Instant;

use mio::net::TcpStream;

use super::in_flight::InFlight;

/// What a connection does in the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Role {
    /// Sends batches and waits for their answers.
    Requester,
    /// `message`'s B: receives and acknowledges (TNLM) or is subscribed (Redis).
    Receiver,
    /// Only holds the connection.
    Idle,
}

/// One connection of a worker.
pub(super) struct Conn {
    /// The socket, non-blocking, registered with the worker's poll.
    pub(super) stream: TcpStream,
    /// What it does in the run.
    pub(super) role: Role,
    /// Connected and greeted (TNLM hello, Redis PONG or subscribe confirmation).
    pub(super) ready: bool,
    /// Id from the TNLM hello.
    pub(super) id: u32,
    /// A partial frame carried over to the next read.
    pub(super) partial: Vec<u8>,
    /// Bytes waiting to be written.
    pub(super) out: Vec<u8>,
    /// One request, encoded; batches are copies with the request id patched.
    pub(super) template: Vec<u8>,
    /// Requests of the current batch not answered yet.
    pub(super) outstanding: u32,
    /// When the current batch was written: each answer's latency is counted from here.
    pub(super) batch_start: Instant,
    /// The request id of the next request written (TNLM; skips 0 when it wraps).
    pub(super) next_id: u32,
    /// The answer due next, where answers come in request order (`time`, `list`).
    pub(super) expect_id: u32,
    /// TNLM `message`: the batch's requests still waiting, answered in any order.
    pub(super) in_flight: Option<InFlight>,
    /// Will start no more batches.
    pub(super) finished: bool,
}

impl Conn {
    /// A connection that is not greeted yet, with `out` to write first;
    /// `in_flight`: its answers come in any order (TNLM `message`).
    pub(super) fn new(stream: TcpStream, role: Role, out: Vec<u8>, in_flight: bool) -> Conn {
        Conn {
            stream,
            role,
            ready: false,
            id: 0,
            partial: Vec::new(),
            out,
            template: Vec::new(),
            outstanding: 0,
            batch_start: Instant::now(),
            next_id: 1,
            expect_id: 1,
            in_flight: in_flight.then(InFlight::default),
            finished: role != Role::Requester,
        }
    }

    /// Checks that `id` answers a request of the current batch still waiting
    /// (in order, unless answers may come in any order) and ticks it off.
    #[inline]
    pub(super) fn tick_off(&mut self, id: u32) -> Result<(), String> {
        match &mut self.in_flight {
            Some(in_flight) => in_flight
                .answer(id)
                .then_some(())
                .ok_or_else(|| format!("answer #{id} matches no request of the batch still waiting")),
            None if id != self.expect_id => Err(format!("answer #{id} arrived where #{} was due", self.expect_id)),
            None => {
                self.expect_id = self.expect_id.wrapping_add(1).max(1);
                Ok(())
            }
        }
    }
}

//! What a connection's handlers get from their worker: the [`Context`] of
//! each call.

use mio::Token;

use crate::shared::Shared;

/// Bytes read from one socket per turn before the others get theirs.
pub(crate) const READ_SHARE: usize = 256 * 1024;

/// What a connection's handlers may use of their worker.
pub(crate) struct Context<'a> {
    pub(crate) shared: &'a Shared,
    /// The worker's read buffer.
    pub(crate) buffer: &'a mut Vec<u8>,
    again: &'a mut Vec<Token>,
    token: Token,
}

impl<'a> Context<'a> {
    /// The context of a call for connection `token`.
    pub(crate) fn new(
        shared: &'a Shared,
        buffer: &'a mut Vec<u8>,
        again: &'a mut Vec<Token>,
        token: Token,
    ) -> Context<'a> {
        Context { shared, buffer, again, token }
    }

    /// The connection has input left after its share: read more next turn.
    pub(crate) fn read_again(&mut self) {
        self.again.push(self.token);
    }
}

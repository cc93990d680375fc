//! How much a replica node holds for its clients at once. A flood of
//! clients (thousands of connections, each with requests in flight, or
//! clients that never read their answers, or that send half a frame and
//! stop) must meet back-pressure or an error, never exhaust the node's
//! memory. Every buffer a client can grow has a bound here:
//!
//! | what | bound | beyond it |
//! |---|---|---|
//! | requests taken, not yet answered (all connections) | `max_pending_requests`, `max_pending_bytes` | answered [`Frame::Busy`](crate::Frame::Busy) unseen; the clerk backs off and retries |
//! | requests taken from one connection, not yet answered | `max_in_flight_per_connection` | the node decodes no more of its requests and its driver stops reading it until an answer makes room (TCP pushes back on the client) |
//! | one request frame | `max_request_bytes` | the connection is closed |
//! | unfinished request frames (all client connections) | `max_unfinished_bytes` | the connection that grew them is closed |
//! | answers queued on one connection | `pause_reading_above` | the driver reads no more requests from it until they drain (TCP pushes back on the client) |
//! | open connections | `max_connections` | the driver closes new ones at once |
//! | client connections | `max_connections` − [`PEER_RESERVE`] | the node closes the client after its hello |
//! | a connection's handshake | [`HANDSHAKE_TICKS`] | the connection is closed |
//!
//! Peers and clients share one port, so clients alone may not take every
//! connection: [`PEER_RESERVE`] places are kept for peers (a peer whose
//! link broke must be able to dial again during a flood) and for
//! handshakes in progress, which must finish within [`HANDSHAKE_TICKS`].
//! A handshake frame is at most [`MAX_HELLO_BYTES`]. Peers' frames are
//! bounded by the node's `max_frame_bytes` and Raft's own flow control
//! (`max_inflight_messages`), not by these.
//!
//! So what a node holds for its clients is at most about
//! `max_pending_bytes` (requests in the log, not yet answered) +
//! `max_unfinished_bytes` + the answers of `max_pending_requests` requests
//! (each as large as the value it reads) + `max_connections` × (one
//! socket read + `pause_reading_above` + the answers of
//! `max_in_flight_per_connection` requests). With the defaults and values
//! of a few hundred bytes that is a few hundred MB in the worst case of
//! every connection holding a full queue; `cli/tests/kv_flood.rs` shows a
//! flood of ordinary and hostile clients stays far below it.

/// The largest handshake frame: a hello is a few dozen bytes.
pub const MAX_HELLO_BYTES: u32 = 4 << 10;

/// Connections kept for peers and handshakes in progress: clients may hold
/// at most `max_connections` minus these.
pub const PEER_RESERVE: usize = 64;

/// Ticks a new connection has to complete its handshake (hello, and a
/// peer's identity): 3 s at the default 10 ms tick.
pub const HANDSHAKE_TICKS: u64 = 300;

/// Bounds on what a node holds for its clients (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientLimits {
    /// Client requests taken and not yet answered, across all connections.
    pub max_pending_requests: usize,
    /// The encoded bytes of those requests.
    pub max_pending_bytes: usize,
    /// Requests taken from one connection and not yet answered: bounds
    /// the answers one connection can have queued before its driver stops
    /// reading it.
    pub max_in_flight_per_connection: usize,
    /// The largest request frame a client may send.
    pub max_request_bytes: u32,
    /// Bytes of unfinished request frames held across client connections.
    pub max_unfinished_bytes: usize,
    /// Answer bytes queued on one connection above which its driver stops
    /// reading that connection until they drain.
    pub pause_reading_above: usize,
    /// Connections open at once (clients and peers); a driver closes the
    /// ones it accepts beyond this.
    pub max_connections: usize,
}

impl Default for ClientLimits {
    fn default() -> Self {
        ClientLimits {
            max_pending_requests: 16_384,
            max_pending_bytes: 64 << 20,
            max_in_flight_per_connection: 64,
            max_request_bytes: 8 << 20,
            max_unfinished_bytes: 128 << 20,
            pause_reading_above: 1 << 20,
            max_connections: 8_192,
        }
    }
}

impl ClientLimits {
    /// Client connections the node keeps at once.
    pub fn max_clients(&self) -> usize {
        self.max_connections.saturating_sub(PEER_RESERVE).max(1)
    }

    /// These limits with no request larger than a frame of `max_frame_bytes`
    /// (nor than the pending bytes, so a lone request always fits).
    pub fn within_frame(mut self, max_frame_bytes: u32) -> Self {
        let pending = u32::try_from(self.max_pending_bytes).unwrap_or(u32::MAX);
        self.max_request_bytes = self.max_request_bytes.min(max_frame_bytes).min(pending);
        self
    }
}

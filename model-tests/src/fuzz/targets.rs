//! One fuzz target per decoder of bytes from the network or a disk: the
//! decoder's entry point as a `fn(&[u8])` that must not panic, a corpus of
//! valid encodings of real values to mutate, and the allocation bound the
//! decoder is held to.

use core_kv::{ChangeOutcome, ClientId, ClientRequest, ClusterChange, KvStore, NotLeader};
use core_kv::{Op, Outcome, Seq, Version};
use core_mr::message::{MapTask, ReduceTask, Reply, Report, Request};
use core_mr::types::{MapTaskId, ReduceTaskId, TaskRef};
use core_raft::message::{
    AppendEntries, AppendEntriesResponse, InstallSnapshot, InstallSnapshotResponse, Reject,
    RequestVote, RequestVoteResponse, TimeoutNow,
};
use core_raft::{
    Entry, HardState, LogIndex, Member, Membership, MembershipChange, Message, NodeId, Payload,
    Snapshot, Term,
};
use node_shell::{AdminReply, AdminRequest, Frame, NodeStatus, PeerIdentity};
use serde::Serialize;
use std::hint::black_box;
use std::path::Path;
use storage::record::{self, Checkpoint, SnapshotMeta};
use wire::{encode_frame, Decoder, Hello};

/// The replica protocol's frame, as the KV service instantiates it.
type KvFrame = Frame<ClientRequest, Outcome>;

/// The replica nodes' frame limit (`node_shell::DEFAULT_MAX_FRAME_BYTES`).
const REPLICA_MAX_FRAME: u32 = node_shell::DEFAULT_MAX_FRAME_BYTES;

/// How much one input may make a decoder allocate at its peak:
/// `per_input_byte × input length + fixed`.
#[derive(Clone, Copy, Debug)]
pub struct Bound {
    /// Bytes per input byte: what a decoded value may take in memory per
    /// byte of its encoding (see [`BOUND`]), plus any buffering of the
    /// input.
    pub per_input_byte: usize,
    /// Bytes whatever the input: error messages, small fixed buffers.
    pub fixed: usize,
}

impl Bound {
    /// The bound for an input of `len` bytes.
    pub fn limit(&self, len: usize) -> usize {
        self.per_input_byte
            .saturating_mul(len)
            .saturating_add(self.fixed)
    }
}

/// The bound every target is held to. No target gets a bound that grows
/// with a length its input merely claims: a decoder that sized a buffer
/// from an untrusted prefix (a frame length, a `Vec` length) fails it at
/// once, since a few bytes can claim gigabytes.
///
/// Why 128 bytes per input byte: postcard believes a sequence's length
/// only if that many bytes remain (else it gives serde no size hint), and
/// serde then preallocates that many elements, capped at 1 MiB. So an
/// input of `n` bytes can make a decoder preallocate `n` elements of the
/// largest sequence element it decodes: a Raft `Entry`, 120 bytes (a test
/// keeps it under 128). Honest decoding stays below that: the smallest
/// entry is 3 bytes on the wire, 40 bytes per byte, 80 with `Vec`'s
/// doubling. The fixed 64 KiB covers error strings and the first read
/// buffer of `wire::read_frame`.
pub const BOUND: Bound = Bound {
    per_input_byte: 128,
    fixed: 64 << 10,
};

/// One decoder under test.
pub struct Target {
    /// Its name on the command line.
    pub name: &'static str,
    /// What it decodes, for the report.
    pub what: &'static str,
    /// Valid encodings of real values, the seeds of the mutations.
    pub corpus: fn() -> Vec<Vec<u8>>,
    /// Repairs a checksum or length header after mutation, for formats
    /// whose checksum would otherwise stop nearly every mutated input at
    /// the first check.
    pub fixup: Option<fn(&mut [u8])>,
    /// The decoder: must return (with any result) for every input.
    pub decode: fn(&[u8]),
}

/// Every target, in a fixed order (the order is part of each input's seed).
pub fn all() -> Vec<Target> {
    vec![
        Target {
            name: "wire-decoder",
            what: "wire::Decoder fed a replica connection in chunks: a Hello, then KV frames",
            corpus: stream_corpus,
            fixup: None,
            decode: decode_stream,
        },
        Target {
            name: "wire-read-frame",
            what: "wire::read_frame over a blocking reader: KV frames until the end",
            corpus: stream_corpus_no_hello,
            fixup: None,
            decode: decode_read_frame,
        },
        Target {
            name: "hello",
            what: "wire::Hello (postcard) and Hello::check",
            corpus: hello_corpus,
            fixup: None,
            decode: decode_hello,
        },
        Target {
            name: "raft-message",
            what: "core_raft::Message (postcard)",
            corpus: raft_corpus,
            fixup: None,
            decode: |b| decode_postcard::<Message>(b),
        },
        Target {
            name: "kv-frame",
            what: "node_shell::Frame<ClientRequest, Outcome> (postcard), every variant",
            corpus: kv_frame_corpus,
            fixup: None,
            decode: |b| decode_postcard::<KvFrame>(b),
        },
        Target {
            name: "peer-identity",
            what: "node_shell::PeerIdentity (postcard)",
            corpus: peer_identity_corpus,
            fixup: None,
            decode: |b| decode_postcard::<PeerIdentity>(b),
        },
        Target {
            name: "admin",
            what: "node_shell::AdminRequest and AdminReply (postcard)",
            corpus: admin_corpus,
            fixup: None,
            decode: |b| {
                decode_postcard::<AdminRequest>(b);
                decode_postcard::<AdminReply>(b);
            },
        },
        Target {
            name: "kv-snapshot",
            what: "core_kv::KvStore::from_snapshot",
            corpus: kv_snapshot_corpus,
            fixup: None,
            decode: |b| {
                let _ = black_box(KvStore::from_snapshot(b));
            },
        },
        Target {
            name: "mr-message",
            what: "core_mr::message::Request and Reply (postcard)",
            corpus: mr_corpus,
            fixup: None,
            decode: |b| {
                decode_postcard::<Request>(b);
                decode_postcard::<Reply>(b);
            },
        },
        Target {
            name: "storage-record",
            what: "storage::record::decode over a segment's bytes, record after record",
            corpus: record_corpus,
            fixup: Some(fix_record),
            decode: decode_segment,
        },
        Target {
            name: "storage-snapshot-file",
            what: "storage::snapshot_file::decode",
            corpus: snapshot_file_corpus,
            fixup: Some(fix_snapshot_file),
            decode: |b| {
                let _ = black_box(storage::snapshot_file::decode(Path::new("fuzz.snap"), b));
            },
        },
        Target {
            name: "storage-identity",
            what: "storage::identity::decode (the identity file parser)",
            corpus: || {
                vec![
                    b"format 3\ncluster 6824\nnode 2\nincarnation 9f3c1e77a2b04d51\n".to_vec(),
                    b"format 3\r\ncluster 1\r\nnode 18446744073709551615\r\nincarnation 1\r\n"
                        .to_vec(),
                ]
            },
            fixup: None,
            decode: |b| {
                let _ = black_box(storage::identity::decode(Path::new("identity"), b));
            },
        },
    ]
}

fn decode_postcard<T: serde::de::DeserializeOwned>(bytes: &[u8]) {
    let _ = black_box(postcard::from_bytes::<T>(bytes));
}

/// A replica connection as the node shell reads it: a `Hello`, then
/// frames, pushed in chunks whose size the input's length picks (so that
/// chunk boundaries fall everywhere across inputs, reproducibly).
fn decode_stream(bytes: &[u8]) {
    let mut decoder = Decoder::new(REPLICA_MAX_FRAME);
    let chunk = 1 + bytes.len() % 29;
    let mut hello_done = false;
    for piece in bytes.chunks(chunk) {
        decoder.push(piece);
        loop {
            let more = if hello_done {
                decoder.next_message::<KvFrame>().map(|m| m.is_some())
            } else {
                decoder.next_message::<Hello>().map(|m| {
                    hello_done = m.is_some();
                    hello_done
                })
            };
            match more {
                Ok(true) => {}
                Ok(false) => break,
                Err(_) => return,
            }
        }
    }
    let _ = black_box(decoder.finish());
}

fn decode_read_frame(bytes: &[u8]) {
    let mut reader = bytes;
    while let Ok(Some(frame)) = wire::read_frame::<_, KvFrame>(&mut reader, REPLICA_MAX_FRAME) {
        black_box(frame);
    }
}

fn decode_hello(bytes: &[u8]) {
    if let Ok(peer) = postcard::from_bytes::<Hello>(bytes) {
        let _ = black_box(Hello::new(1, 6824, 1).check(&peer, |n| n < 8));
    }
}

/// Record after record, as recovery replays a segment: stop at the first
/// torn or corrupt one.
fn decode_segment(bytes: &[u8]) {
    let mut at = 0;
    while at < bytes.len() {
        match record::decode(bytes, at) {
            record::Frame::Record(r, n) => {
                black_box(r);
                at += n;
            }
            other => {
                black_box(other);
                return;
            }
        }
    }
}

// ---------------------------------------------------------------- corpora

fn enc<T: Serialize>(value: &T) -> Vec<u8> {
    postcard::to_allocvec(value).expect("encoding to a Vec cannot fail")
}

fn membership() -> Membership {
    let mut m = Membership::with_voters([NodeId(1), NodeId(2), NodeId(3)]);
    for id in 1..=4 {
        m.members.insert(
            NodeId(id),
            Member {
                addr: format!("10.0.0.{id}:7000"),
                incarnation: 0x9f3c_1e77_a2b0_4d51 + id,
            },
        );
    }
    m.learners.insert(NodeId(4));
    m.retired.insert(NodeId(9));
    m
}

fn entries() -> Vec<Entry> {
    vec![
        Entry {
            index: LogIndex(7),
            term: Term(2),
            payload: Payload::Noop,
        },
        Entry {
            index: LogIndex(8),
            term: Term(2),
            payload: Payload::Command(enc(&request(Op::Append {
                key: "k1".into(),
                value: "hello".into(),
            }))),
        },
        Entry {
            index: LogIndex(9),
            term: Term(3),
            payload: Payload::Membership(membership()),
        },
    ]
}

fn request(op: Op) -> ClientRequest {
    ClientRequest {
        client: ClientId(0xdead_beef),
        seq: Seq(42),
        op,
    }
}

fn ops() -> Vec<Op> {
    vec![
        Op::Get { key: "k1".into() },
        Op::Put {
            key: "k2".into(),
            value: "v".repeat(20),
            version: Version(3),
        },
        Op::Set {
            key: "".into(),
            value: "x".into(),
        },
        Op::Append {
            key: "k3".into(),
            value: "tail".into(),
        },
    ]
}

fn messages() -> Vec<Message> {
    vec![
        Message::RequestVote(RequestVote {
            term: Term(5),
            last_log_index: LogIndex(100),
            last_log_term: Term(4),
            pre_vote: true,
            transfer: false,
        }),
        Message::RequestVoteResponse(RequestVoteResponse {
            term: Term(5),
            granted: true,
            pre_vote: false,
        }),
        Message::AppendEntries(AppendEntries {
            term: Term(3),
            prev_log_index: LogIndex(6),
            prev_log_term: Term(2),
            entries: entries(),
            leader_commit: LogIndex(6),
            round: 77,
        }),
        Message::AppendEntries(AppendEntries {
            term: Term(3),
            prev_log_index: LogIndex(6),
            prev_log_term: Term(2),
            entries: Vec::new(),
            leader_commit: LogIndex(6),
            round: 78,
        }),
        Message::AppendEntriesResponse(AppendEntriesResponse {
            term: Term(3),
            match_index: LogIndex(0),
            reject: Some(Reject {
                prev_log_index: LogIndex(6),
                conflict_term: Some(Term(1)),
                conflict_index: LogIndex(3),
            }),
            round: 77,
        }),
        Message::InstallSnapshot(InstallSnapshot {
            term: Term(9),
            index: LogIndex(1000),
            snapshot_term: Term(8),
            membership: membership(),
            total_len: 300,
            offset: 100,
            data: (0..100u8).collect(),
            round: 3,
        }),
        Message::InstallSnapshotResponse(InstallSnapshotResponse {
            term: Term(9),
            match_index: LogIndex(1000),
            index: LogIndex(1000),
            offset: 100,
            received: 200,
            round: 3,
        }),
        Message::TimeoutNow(TimeoutNow { term: Term(11) }),
    ]
}

fn status() -> NodeStatus {
    NodeStatus {
        id: NodeId(2),
        incarnation: 0x1234,
        addr: "127.0.0.1:7002".into(),
        role: "leader".into(),
        term: Term(4),
        leader: Some(NodeId(2)),
        leader_addr: Some("127.0.0.1:7002".into()),
        commit: LogIndex(50),
        applied: LogIndex(49),
        last_index: LogIndex(51),
        snapshot_index: LogIndex(10),
        log_bytes: 4096,
        membership: membership(),
        membership_index: LogIndex(9),
        replication: vec![(NodeId(1), LogIndex(50)), (NodeId(3), LogIndex(12))],
        formed: true,
        state: Some("disk (redb), 12 keys, 0.1 MiB".into()),
    }
}

fn admin_requests() -> Vec<AdminRequest> {
    vec![
        AdminRequest::Status,
        AdminRequest::Change(ClusterChange::Membership(MembershipChange::AddLearner(
            NodeId(5),
            Member {
                addr: "10.0.0.5:7000".into(),
                incarnation: 77,
            },
        ))),
        AdminRequest::Change(ClusterChange::Membership(MembershipChange::Promote(
            NodeId(5),
        ))),
        AdminRequest::Change(ClusterChange::Membership(MembershipChange::Remove(NodeId(
            1,
        )))),
        AdminRequest::Change(ClusterChange::TransferLeadership(NodeId(3))),
    ]
}

fn admin_replies() -> Vec<AdminReply> {
    vec![
        AdminReply::Status(Box::new(status())),
        AdminReply::Changed {
            outcome: ChangeOutcome::Proposed {
                index: LogIndex(9),
                term: Term(3),
            },
            leader_addr: None,
        },
        AdminReply::Changed {
            outcome: ChangeOutcome::NotLeader(NotLeader {
                leader_hint: Some(NodeId(1)),
            }),
            leader_addr: Some("10.0.0.1:7000".into()),
        },
        AdminReply::Changed {
            outcome: ChangeOutcome::TransferStarted,
            leader_addr: None,
        },
    ]
}

fn peer_identities() -> Vec<PeerIdentity> {
    vec![
        PeerIdentity {
            incarnation: 0x9f3c_1e77_a2b0_4d51,
            addr: "10.0.0.2:7000".into(),
            formed: true,
            expected: 0x0123_4567_89ab_cdef,
        },
        PeerIdentity {
            incarnation: 0,
            addr: String::new(),
            formed: false,
            expected: 0,
        },
    ]
}

fn kv_frames() -> Vec<KvFrame> {
    let mut frames: Vec<KvFrame> = messages().into_iter().map(Frame::Raft).collect();
    for (i, op) in ops().into_iter().enumerate() {
        frames.push(Frame::Request {
            id: i as u64,
            op: request(op),
        });
    }
    let outcomes = [
        Ok(Outcome::Value {
            value: "value".into(),
            version: Version(9),
        }),
        Ok(Outcome::Ok),
        Ok(Outcome::ErrNoKey),
        Ok(Outcome::ErrVersion),
        Ok(Outcome::ErrMaybe),
        Err(NotLeader {
            leader_hint: Some(NodeId(3)),
        }),
    ];
    for (i, result) in outcomes.into_iter().enumerate() {
        frames.push(Frame::Reply {
            id: 100 + i as u64,
            result,
            leader_addr: (i % 2 == 0).then(|| "10.0.0.3:7000".into()),
        });
    }
    for (i, request) in admin_requests().into_iter().enumerate() {
        frames.push(Frame::Admin {
            id: i as u64,
            request,
        });
    }
    for (i, reply) in admin_replies().into_iter().enumerate() {
        frames.push(Frame::AdminReply {
            id: i as u64,
            reply,
        });
    }
    frames.extend(peer_identities().into_iter().map(Frame::PeerIdentity));
    frames
}

fn hello_corpus() -> Vec<Vec<u8>> {
    vec![
        enc(&Hello::new(1, 6824, 1)),
        enc(&Hello::new(u32::MAX, u64::MAX, 0)),
    ]
}

fn raft_corpus() -> Vec<Vec<u8>> {
    messages().iter().map(enc).collect()
}

fn kv_frame_corpus() -> Vec<Vec<u8>> {
    kv_frames().iter().map(enc).collect()
}

fn peer_identity_corpus() -> Vec<Vec<u8>> {
    peer_identities().iter().map(enc).collect()
}

fn admin_corpus() -> Vec<Vec<u8>> {
    let mut c: Vec<Vec<u8>> = admin_requests().iter().map(enc).collect();
    c.extend(admin_replies().iter().map(enc));
    c
}

fn mr_corpus() -> Vec<Vec<u8>> {
    let mut c = vec![
        enc(&Request { report: None }),
        enc(&Request {
            report: Some(Report::Done(TaskRef::Map(MapTaskId(3)))),
        }),
        enc(&Request {
            report: Some(Report::Failed {
                task: TaskRef::Reduce(ReduceTaskId(1)),
                error: "input pg-1.txt unreadable: permission denied".into(),
            }),
        }),
    ];
    c.push(enc(&Reply::Map(MapTask {
        id: MapTaskId(4),
        file: "pg-being_ernest.txt".into(),
        n_reduce: 10,
    })));
    c.push(enc(&Reply::Reduce(ReduceTask {
        id: ReduceTaskId(7),
        n_map: 8,
    })));
    c.push(enc(&Reply::Exit));
    c
}

fn kv_snapshot_corpus() -> Vec<Vec<u8>> {
    let mut store = KvStore::new();
    let mut seq = 1;
    for client in 1..=3u64 {
        for op in ops() {
            store.apply(&ClientRequest {
                client: ClientId(client),
                seq: Seq(seq),
                op,
            });
            seq += 1;
        }
    }
    vec![KvStore::new().to_snapshot(), store.to_snapshot()]
}

fn framed(frames: &[KvFrame], hello: bool) -> Vec<u8> {
    let mut out = Vec::new();
    if hello {
        out.extend(encode_frame(&Hello::new(1, 6824, 2), REPLICA_MAX_FRAME).expect("small"));
    }
    for f in frames {
        out.extend(encode_frame(f, REPLICA_MAX_FRAME).expect("small"));
    }
    out
}

fn stream_corpus_with(hello: bool) -> Vec<Vec<u8>> {
    let frames = kv_frames();
    let mut c: Vec<Vec<u8>> = frames.chunks(3).map(|fs| framed(fs, hello)).collect();
    c.push(framed(&frames, hello));
    c
}

fn stream_corpus() -> Vec<Vec<u8>> {
    stream_corpus_with(true)
}

fn stream_corpus_no_hello() -> Vec<Vec<u8>> {
    stream_corpus_with(false)
}

/// Mirrors `storage::record::RecordRef` (crate-private): same variants in
/// the same order, so it encodes to the bytes the store writes. The corpus
/// test below fails if the two drift apart.
#[derive(Serialize)]
enum RecordSeed {
    Checkpoint(Checkpoint),
    HardState(HardState),
    Entries(Vec<Entry>),
    Snapshot {
        meta: SnapshotMeta,
        discard_log: bool,
    },
}

fn frame_record(payload: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32fast_hash(payload).to_le_bytes());
    out.extend_from_slice(payload);
}

fn record_corpus() -> Vec<Vec<u8>> {
    let hard = HardState {
        term: Term(3),
        vote: Some(NodeId(2)),
        commit: LogIndex(6),
    };
    let records = [
        RecordSeed::Checkpoint(Checkpoint {
            hard_state: hard,
            snapshot: Some(SnapshotMeta {
                index: LogIndex(5),
                term: Term(2),
            }),
            last_index: LogIndex(6),
        }),
        RecordSeed::HardState(hard),
        RecordSeed::Entries(entries()),
        RecordSeed::Snapshot {
            meta: SnapshotMeta {
                index: LogIndex(8),
                term: Term(2),
            },
            discard_log: false,
        },
    ];
    let payloads: Vec<Vec<u8>> = records.iter().map(enc).collect();
    let mut c: Vec<Vec<u8>> = payloads
        .iter()
        .map(|p| {
            let mut out = Vec::new();
            frame_record(p, &mut out);
            out
        })
        .collect();
    // A whole segment: every record in order.
    let mut segment = Vec::new();
    for p in &payloads {
        frame_record(p, &mut segment);
    }
    c.push(segment);
    c
}

/// Rewrites the length and checksum of the first record to cover the
/// bytes after its header (all of them, or as many as the length said).
fn fix_record(bytes: &mut [u8]) {
    if bytes.len() < record::HEADER_BYTES {
        return;
    }
    let claimed = u32::from_le_bytes(bytes[0..4].try_into().expect("4 bytes")) as usize;
    let available = bytes.len() - record::HEADER_BYTES;
    let len = if claimed == 0 || claimed > available {
        available
    } else {
        claimed
    };
    let crc = crc32fast_hash(&bytes[record::HEADER_BYTES..record::HEADER_BYTES + len]);
    bytes[0..4].copy_from_slice(&(len as u32).to_le_bytes());
    bytes[4..8].copy_from_slice(&crc.to_le_bytes());
}

const SNAPSHOT_MAGIC: &[u8; 8] = b"RAFTSNP4";
const SNAPSHOT_HEADER_BYTES: usize = 8 + 8 + 4;

fn snapshot_file_corpus() -> Vec<Vec<u8>> {
    let snapshots = [
        Snapshot::new(
            LogIndex(1000),
            Term(8),
            membership(),
            kv_snapshot_corpus().pop().expect("two snapshots"),
        ),
        Snapshot {
            external: true,
            ..Snapshot::new(LogIndex(0), Term(0), Membership::default(), Vec::new())
        },
    ];
    snapshots
        .iter()
        .map(|s| {
            let mut out = SNAPSHOT_MAGIC.to_vec();
            out.extend_from_slice(&[0; 12]);
            out.extend(enc(s));
            fix_snapshot_file(&mut out);
            out
        })
        .collect()
}

/// Restores the magic, length and checksum of a snapshot file around
/// whatever payload the mutations left.
fn fix_snapshot_file(bytes: &mut [u8]) {
    if bytes.len() < SNAPSHOT_HEADER_BYTES {
        return;
    }
    let payload_len = (bytes.len() - SNAPSHOT_HEADER_BYTES) as u64;
    let crc = crc32fast_hash(&bytes[SNAPSHOT_HEADER_BYTES..]);
    bytes[..8].copy_from_slice(SNAPSHOT_MAGIC);
    bytes[8..16].copy_from_slice(&payload_len.to_le_bytes());
    bytes[16..20].copy_from_slice(&crc.to_le_bytes());
}

/// CRC-32 (IEEE), bit by bit: the fuzz corpus is built once per run, so a
/// table or a dependency on `crc32fast` buys nothing.
fn crc32fast_hash(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;

    /// [`BOUND`] rests on no sequence element being larger than 128 bytes.
    #[test]
    fn the_largest_sequence_elements_fit_the_bound() {
        for (name, size) in [
            ("Entry", std::mem::size_of::<Entry>()),
            ("Member", std::mem::size_of::<Member>()),
            (
                "(NodeId, LogIndex)",
                std::mem::size_of::<(NodeId, LogIndex)>(),
            ),
        ] {
            assert!(size <= BOUND.per_input_byte, "{name}: {size} bytes");
        }
    }

    /// Every corpus entry is a valid encoding that its decoder accepts, so
    /// mutations start from inputs that reach the end of the decoder.
    #[test]
    fn every_corpus_entry_decodes() {
        for m in raft_corpus() {
            postcard::from_bytes::<Message>(&m).unwrap();
        }
        for f in kv_frame_corpus() {
            postcard::from_bytes::<KvFrame>(&f).unwrap();
        }
        for s in kv_snapshot_corpus() {
            KvStore::from_snapshot(&s).unwrap();
        }
        for seg in record_corpus() {
            let mut at = 0;
            while at < seg.len() {
                match record::decode(&seg, at) {
                    record::Frame::Record(_, n) => at += n,
                    other => panic!("record corpus entry does not decode: {other:?}"),
                }
            }
        }
        for f in snapshot_file_corpus() {
            storage::snapshot_file::decode(Path::new("x"), &f).unwrap();
        }
        for s in stream_corpus() {
            let mut d = Decoder::new(REPLICA_MAX_FRAME);
            d.push(&s);
            d.next_message::<Hello>().unwrap().unwrap();
            while d.next_message::<KvFrame>().unwrap().is_some() {}
            d.finish().unwrap();
        }
        let identity = (all()[11].corpus)();
        for i in identity {
            storage::identity::decode(Path::new("identity"), &i).unwrap();
        }
    }
}

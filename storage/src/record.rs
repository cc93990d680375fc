//! The log's record format: one persist action per record.
//!
//! ```text
//! +------------------+------------------+---------------------------+
//! | length: u32 (LE) | crc32: u32 (LE)  | payload: postcard(Record) |
//! +------------------+------------------+---------------------------+
//! ```
//!
//! `length` counts payload bytes only and is never zero; `crc32` (IEEE,
//! as computed by `crc32fast`) covers the payload. Replaying the records of
//! the log in order through [`core_raft::Durable::persist`] rebuilds the
//! state; see [`Record::replay`].

use crate::error::StorageError;
use core_raft::{Action, Durable, Entry, HardState, LogIndex, Snapshot, Term};
use serde::{Deserialize, Serialize};

/// Bytes of the header in front of every payload.
pub const HEADER_BYTES: usize = 8;

/// The largest payload one record may carry (1 GiB). A batch of entries
/// larger than this is refused rather than split.
pub const MAX_RECORD_BYTES: usize = 1 << 30;

/// The smallest unit a disk writes atomically. Between two fsyncs a disk
/// may write the sectors of a file in any order, so a power cut can leave
/// any sector of the unsynced tail unwritten, reading as zeros, while later
/// ones were written. Real sectors are 512 bytes or a multiple, aligned to
/// their size, so a lost sector of any size is a run of lost 512-byte ones.
pub const SECTOR_BYTES: usize = 512;

/// Which snapshot a record refers to; the snapshot's data lives in its own
/// file (`snapshot-<index>.snap`, see the crate documentation).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotMeta {
    /// Last log index the snapshot covers.
    pub index: LogIndex,
    /// Term of the entry at `index`.
    pub term: Term,
}

impl SnapshotMeta {
    /// The stand-in used during replay until the real snapshot file is read.
    fn placeholder(self) -> Snapshot {
        Snapshot::new(
            self.index,
            self.term,
            core_raft::Membership::default(),
            Vec::new(),
        )
    }
}

/// The state at the start of a segment: the first record of every segment.
/// It lets recovery start at any segment whose predecessors were deleted
/// because a snapshot covered every entry they held.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The hard state in force when the segment was opened.
    pub hard_state: HardState,
    /// The snapshot in force when the segment was opened.
    pub snapshot: Option<SnapshotMeta>,
    /// The last index held (log or snapshot) when the segment was opened.
    /// Earlier segments may be deleted once a durable snapshot reaches it.
    pub last_index: LogIndex,
}

/// A decoded log record.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub enum Record {
    /// Segment header (see [`Checkpoint`]).
    Checkpoint(Checkpoint),
    /// [`Action::PersistHardState`].
    HardState(HardState),
    /// [`Action::PersistEntries`]: truncate at the first index, then append.
    Entries(Vec<Entry>),
    /// [`Action::PersistSnapshot`], with the data left in the snapshot file.
    Snapshot {
        /// Which snapshot.
        meta: SnapshotMeta,
        /// Drop the whole log rather than the covered prefix.
        discard_log: bool,
    },
}

/// The borrowed twin of [`Record`] used for writing; it encodes to the
/// same bytes (same variant order, slices encode like vectors).
#[derive(Serialize)]
pub(crate) enum RecordRef<'a> {
    Checkpoint(Checkpoint),
    HardState(HardState),
    Entries(&'a [Entry]),
    Snapshot {
        meta: SnapshotMeta,
        discard_log: bool,
    },
}

impl Record {
    /// Apply this record to `durable` exactly as [`Durable::persist`] applies
    /// the action it came from. Snapshot records install a placeholder
    /// without data; recovery swaps in the snapshot file afterwards.
    pub fn replay(self, durable: &mut Durable) {
        match self {
            Record::Checkpoint(cp) => {
                durable.hard_state = cp.hard_state;
                if let Some(meta) = cp.snapshot {
                    durable.snapshot = Some(meta.placeholder());
                }
            }
            Record::HardState(hs) => {
                durable.persist(&Action::PersistHardState(hs));
            }
            Record::Entries(entries) => {
                durable.persist(&Action::PersistEntries(entries));
            }
            Record::Snapshot { meta, discard_log } => {
                durable.persist(&Action::PersistSnapshot {
                    snapshot: meta.placeholder(),
                    discard_log,
                });
            }
        }
    }
}

/// Append one framed record to `buf`; returns the bytes added.
pub(crate) fn encode(record: &RecordRef<'_>, buf: &mut Vec<u8>) -> Result<usize, StorageError> {
    let payload = postcard::to_allocvec(record).map_err(|source| StorageError::Encode {
        what: "a log record",
        source,
    })?;
    if payload.len() > MAX_RECORD_BYTES {
        return Err(StorageError::RecordTooLarge {
            bytes: payload.len(),
            max: MAX_RECORD_BYTES,
        });
    }
    buf.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    buf.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
    buf.extend_from_slice(&payload);
    Ok(HEADER_BYTES + payload.len())
}

/// What [`decode`] found at one offset.
#[derive(Debug)]
pub enum Frame {
    /// A good record and its framed length.
    Record(Record, usize),
    /// Bytes that a crash in the middle of an append could have left: a
    /// short header, a short payload, a zero-filled tail, a checksum
    /// mismatch in a record that ends exactly at the end of the data, or a
    /// zero length or checksum mismatch explained by a lost sector (see
    /// [`SECTOR_BYTES`]: a sector the record overlaps reads as zeros from
    /// the record's start or its own start to its end). Whether that is
    /// acceptable depends on where it is (only at the end of the log).
    ///
    /// The last rule is etcd's: without it an ordinary power cut on a disk
    /// that reorders writes could stop a node for good. Its price is that
    /// damage to a record that happens to hold a zeroed sector is taken for
    /// a torn write if it is in the newest segment.
    Torn(String),
    /// Damage a crash cannot explain.
    Corrupt(String),
}

/// Decode the record starting at `at` in `bytes` (which ends at the end of
/// the file). `at` must be less than `bytes.len()`.
pub fn decode(bytes: &[u8], at: usize) -> Frame {
    let rest = &bytes[at..];
    let zero_tail = || rest.iter().all(|b| *b == 0);
    if rest.len() < HEADER_BYTES {
        return Frame::Torn(format!(
            "record header cut short: {} of {HEADER_BYTES} bytes",
            rest.len()
        ));
    }
    let len = u32::from_le_bytes(rest[0..4].try_into().expect("4 bytes")) as usize;
    let crc = u32::from_le_bytes(rest[4..8].try_into().expect("4 bytes"));
    if len == 0 {
        return if zero_tail() {
            Frame::Torn(format!("zero-filled tail of {} bytes", rest.len()))
        } else if spans_lost_sector(bytes, at, at + HEADER_BYTES) {
            Frame::Torn("record header lies in a sector that was never written".into())
        } else {
            Frame::Corrupt("record length is zero (a record is never empty)".into())
        };
    }
    if len > MAX_RECORD_BYTES {
        return Frame::Corrupt(format!(
            "record length {len} exceeds the {MAX_RECORD_BYTES}-byte maximum this store writes"
        ));
    }
    let available = rest.len() - HEADER_BYTES;
    if len > available {
        let what = format!("record claims {len} payload bytes but only {available} remain");
        // A torn final append holds nothing whole after its header; a whole
        // record there means this length field was damaged in place (a
        // bit flip), and taking it for a torn tail would drop synced
        // records.
        return match whole_record_within(rest, HEADER_BYTES) {
            Some(o) => Frame::Corrupt(format!(
                "{what}, yet a whole record starts {o} bytes further on: the length is damaged"
            )),
            None => Frame::Torn(what),
        };
    }
    let payload = &rest[HEADER_BYTES..HEADER_BYTES + len];
    let actual = crc32fast::hash(payload);
    if actual != crc {
        let what = format!("checksum mismatch: header says {crc:#010x}, payload of {len} bytes hashes to {actual:#010x}");
        return if HEADER_BYTES + len == rest.len() {
            Frame::Torn(what)
        } else if spans_lost_sector(bytes, at, at + HEADER_BYTES + len) {
            Frame::Torn(format!(
                "{what}; part of it lies in a sector that was never written"
            ))
        } else {
            Frame::Corrupt(what)
        };
    }
    match postcard::take_from_bytes::<Record>(payload) {
        Ok((record, [])) => Frame::Record(record, HEADER_BYTES + len),
        Ok((_, extra)) => Frame::Corrupt(format!(
            "payload passed its checksum but has {} undecoded trailing bytes",
            extra.len()
        )),
        Err(e) => Frame::Corrupt(format!(
            "payload passed its checksum but does not decode as a record: {e}"
        )),
    }
}

/// Most payload bytes [`whole_record_within`] checksums before it gives up
/// (and the caller keeps the torn-tail reading): keeps recovery linear.
const MAX_SCAN_BYTES: usize = 64 << 20;

/// The offset within `rest`, from `from` on, of the first whole record
/// (length in range, checksum right, payload decodes), if any.
fn whole_record_within(rest: &[u8], from: usize) -> Option<usize> {
    let mut budget = MAX_SCAN_BYTES;
    for o in from..rest.len().saturating_sub(HEADER_BYTES) {
        let len = u32::from_le_bytes(rest[o..o + 4].try_into().expect("4 bytes")) as usize;
        let end = o + HEADER_BYTES + len;
        if len == 0 || len > MAX_RECORD_BYTES || end > rest.len() {
            continue;
        }
        if len > budget {
            return None;
        }
        budget -= len;
        let crc = u32::from_le_bytes(rest[o + 4..o + 8].try_into().expect("4 bytes"));
        let payload = &rest[o + HEADER_BYTES..end];
        if crc32fast::hash(payload) == crc
            && matches!(postcard::take_from_bytes::<Record>(payload), Ok((_, [])))
        {
            return Some(o);
        }
    }
    None
}

/// True if a sector overlapping `bytes[from..to]` reads as a sector a crash
/// never wrote does: all zeros from `from` (for the sector it starts in,
/// whose earlier bytes may be older records) or from the sector's start, to
/// the sector's end or the end of the data.
fn spans_lost_sector(bytes: &[u8], from: usize, to: usize) -> bool {
    let to = to.min(bytes.len());
    let mut start = from;
    while start < to {
        let end = ((start / SECTOR_BYTES + 1) * SECTOR_BYTES).min(bytes.len());
        if bytes[start..end].iter().all(|b| *b == 0) {
            return true;
        }
        start = end;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use core_raft::message::Payload;

    #[test]
    fn borrowed_and_owned_records_share_one_encoding() {
        let entries = vec![Entry {
            index: LogIndex(3),
            term: Term(2),
            payload: Payload::Command(b"x".to_vec()),
        }];
        let mut buf = Vec::new();
        let n = encode(&RecordRef::Entries(&entries), &mut buf).unwrap();
        assert_eq!(n, buf.len());
        match decode(&buf, 0) {
            Frame::Record(Record::Entries(e), len) => {
                assert_eq!(e, entries);
                assert_eq!(len, n);
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn short_and_zero_tails_are_torn() {
        let mut buf = Vec::new();
        encode(&RecordRef::HardState(HardState::default()), &mut buf).unwrap();
        assert!(matches!(decode(&buf[..buf.len() - 1], 0), Frame::Torn(_)));
        assert!(matches!(decode(&buf[..5], 0), Frame::Torn(_)));
        assert!(matches!(decode(&[0u8; 40], 0), Frame::Torn(_)));
    }

    /// Three records of 600 payload bytes; the second spans the sector
    /// boundaries at 1024 (and 1536, the first ends past 512).
    fn three_records() -> (Vec<u8>, usize) {
        let entry = |i: u64| Entry {
            index: LogIndex(i),
            term: Term(1),
            payload: Payload::Command(vec![7; 590]),
        };
        let mut buf = Vec::new();
        let first = encode(&RecordRef::Entries(&[entry(1)]), &mut buf).unwrap();
        for i in 2..=3 {
            encode(&RecordRef::Entries(&[entry(i)]), &mut buf).unwrap();
        }
        (buf, first)
    }

    #[test]
    fn a_sector_that_never_landed_before_later_data_is_a_torn_record() {
        let (mut buf, second) = three_records();
        // The sector [1024, 1536) was lost; the record after it landed.
        buf[1024..1536].fill(0);
        assert!(matches!(decode(&buf, 0), Frame::Record(..)));
        assert!(
            matches!(decode(&buf, second), Frame::Torn(ref w) if w.contains("never written")),
            "{:?}",
            decode(&buf, second)
        );
        // A lost sector holding a record's header: zeros from the record's
        // start to the end of its sector.
        let (mut buf, second) = three_records();
        buf[second..1024].fill(0);
        assert!(matches!(decode(&buf, second), Frame::Torn(_)));
    }

    #[test]
    fn a_damaged_record_without_a_zeroed_sector_is_corruption() {
        let (mut buf, second) = three_records();
        buf[1100] ^= 1;
        assert!(matches!(decode(&buf, second), Frame::Corrupt(_)));
        // Zeros that do not fill a sector are damage, not a lost sector.
        let (mut buf, second) = three_records();
        buf[1024..1535].fill(0);
        assert!(matches!(decode(&buf, second), Frame::Corrupt(_)));
    }

    /// A flipped bit in a length field that makes a record reach past the
    /// end of the data reads like a torn final append, but whole records
    /// follow it: corruption, not a tail to cut (which would drop them).
    #[test]
    fn a_damaged_length_with_records_after_it_is_corruption() {
        let (mut buf, second) = three_records();
        // The second record's length now reaches past the end.
        buf[second + 1] ^= 0x5a;
        match decode(&buf, second) {
            Frame::Corrupt(what) => assert!(what.contains("damaged"), "{what}"),
            other => panic!("{other:?}"),
        }
        // A genuinely cut last record is still torn.
        let (buf, _) = three_records();
        let last_start = {
            let mut at = 0;
            let mut starts = Vec::new();
            while at < buf.len() {
                starts.push(at);
                match decode(&buf, at) {
                    Frame::Record(_, len) => at += len,
                    other => panic!("{other:?}"),
                }
            }
            *starts.last().unwrap()
        };
        assert!(matches!(
            decode(&buf[..buf.len() - 2], last_start),
            Frame::Torn(_)
        ));
    }

    #[test]
    fn a_length_no_writer_produces_is_corruption_not_a_torn_tail() {
        let mut buf = Vec::new();
        encode(&RecordRef::HardState(HardState::default()), &mut buf).unwrap();
        buf[3] ^= 0x80;
        assert!(matches!(decode(&buf, 0), Frame::Corrupt(_)));
    }
}

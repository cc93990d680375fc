//! The intermediate file encoding: a sorted sequence of records, each a
//! LEB128 key length, the key bytes, a LEB128 value length, the value bytes.
//! Compact and cheap to parse; a file needs no header because the map task
//! writes it whole and renames it into place.

use std::io::{self, BufRead, Write};
use std::path::{Path, PathBuf};

/// Largest key or value accepted when reading (guards against a corrupt
/// length field making us allocate gigabytes).
const MAX_FIELD_BYTES: u64 = 1 << 30;

fn write_varint<W: Write>(w: &mut W, mut v: u64) -> io::Result<()> {
    let mut buf = [0u8; 10];
    let mut i = 0;
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            buf[i] = byte;
            i += 1;
            break;
        }
        buf[i] = byte | 0x80;
        i += 1;
    }
    w.write_all(&buf[..i])
}

/// Appends one record.
pub fn write_record<W: Write>(w: &mut W, key: &str, value: &str) -> io::Result<()> {
    write_varint(w, key.len() as u64)?;
    w.write_all(key.as_bytes())?;
    write_varint(w, value.len() as u64)?;
    w.write_all(value.as_bytes())
}

/// Streams the records of one intermediate file.
pub struct RecordReader<R> {
    inner: R,
    path: PathBuf,
}

impl<R: BufRead> RecordReader<R> {
    /// Wraps a buffered reader; `path` names the source in error messages.
    pub fn new(inner: R, path: &Path) -> Self {
        RecordReader {
            inner,
            path: path.to_path_buf(),
        }
    }

    fn corrupt(&self, what: &str) -> io::Error {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "{}: corrupt intermediate file ({what})",
                self.path.display()
            ),
        )
    }

    /// Reads a varint; `Ok(None)` at a clean end of file.
    fn read_varint(&mut self, at_record_start: bool) -> io::Result<Option<u64>> {
        let mut v: u64 = 0;
        for shift in (0..64).step_by(7) {
            let byte = {
                let buf = self.inner.fill_buf()?;
                if buf.is_empty() {
                    if shift == 0 && at_record_start {
                        return Ok(None);
                    }
                    return Err(self.corrupt("truncated length"));
                }
                buf[0]
            };
            self.inner.consume(1);
            v |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(Some(v));
            }
        }
        Err(self.corrupt("length too long"))
    }

    fn read_string(&mut self) -> io::Result<String> {
        let len = self
            .read_varint(false)?
            .ok_or_else(|| self.corrupt("missing length"))?;
        if len > MAX_FIELD_BYTES {
            return Err(self.corrupt("field longer than 1 GiB"));
        }
        let mut bytes = vec![0u8; len as usize];
        self.inner.read_exact(&mut bytes).map_err(|e| {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                self.corrupt("truncated field")
            } else {
                e
            }
        })?;
        String::from_utf8(bytes).map_err(|_| self.corrupt("field is not UTF-8"))
    }

    /// The next record, `Ok(None)` at end of file.
    pub fn next_record(&mut self) -> io::Result<Option<(String, String)>> {
        let Some(klen) = self.read_varint(true)? else {
            return Ok(None);
        };
        if klen > MAX_FIELD_BYTES {
            return Err(self.corrupt("key longer than 1 GiB"));
        }
        let mut key = vec![0u8; klen as usize];
        self.inner.read_exact(&mut key).map_err(|e| {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                self.corrupt("truncated key")
            } else {
                e
            }
        })?;
        let key = String::from_utf8(key).map_err(|_| self.corrupt("key is not UTF-8"))?;
        let value = self.read_string()?;
        Ok(Some((key, value)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_corruption() {
        let mut buf = Vec::new();
        let long = "v".repeat(300);
        for (k, v) in [("a", "1"), ("", ""), ("ключ", long.as_str())] {
            write_record(&mut buf, k, v).unwrap();
        }
        let mut r = RecordReader::new(&buf[..], Path::new("x"));
        assert_eq!(r.next_record().unwrap(), Some(("a".into(), "1".into())));
        assert_eq!(r.next_record().unwrap(), Some(("".into(), "".into())));
        assert_eq!(
            r.next_record().unwrap(),
            Some(("ключ".into(), long.clone()))
        );
        assert_eq!(r.next_record().unwrap(), None);
        for cut in 1..buf.len() {
            let mut r = RecordReader::new(&buf[..cut], Path::new("mr-1-2"));
            let mut err = None;
            for _ in 0..4 {
                match r.next_record() {
                    Ok(Some(_)) => continue,
                    Ok(None) => break,
                    Err(e) => {
                        err = Some(e);
                        break;
                    }
                }
            }
            // Cuts on a record boundary read as a shorter file; others fail
            // with an error naming the file.
            if let Some(e) = err {
                assert!(e.to_string().contains("mr-1-2"), "{e}");
            } else {
                assert!([4, 6].contains(&cut), "cut {cut} read cleanly");
            }
        }
    }
}

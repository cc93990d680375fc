//! The lab's partition function: FNV-1a (32 bit) of the key, masked to 31
//! bits, modulo the number of reduce tasks. Using the same function as the
//! Go skeleton keeps `mr-out-Y` contents identical to the lab's.

/// FNV-1a, 32-bit, over the key's bytes.
pub fn fnv1a32(bytes: &[u8]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for &b in bytes {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

/// The lab's `ihash`: `fnv1a32(key) & 0x7fffffff`.
pub fn ihash(key: &str) -> u32 {
    fnv1a32(key.as_bytes()) & 0x7fff_ffff
}

/// The reduce partition of `key` among `n_reduce` tasks. `n_reduce` must be
/// at least 1 (the coordinator refuses 0).
pub fn partition(key: &str, n_reduce: u32) -> u32 {
    ihash(key) % n_reduce.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_vectors() {
        // Reference values of FNV-1a 32 (from the FNV specification's test suite).
        assert_eq!(fnv1a32(b""), 0x811c_9dc5);
        assert_eq!(fnv1a32(b"a"), 0xe40c_292c);
        assert_eq!(fnv1a32(b"foobar"), 0xbf9c_f968);
    }

    #[test]
    fn partition_is_in_range_and_masked() {
        for key in ["", "a", "the", "Sherlock", "zzzzzzzz"] {
            assert!(partition(key, 10) < 10);
            assert!(ihash(key) <= 0x7fff_ffff);
        }
        assert_eq!(partition("anything", 1), 0);
    }
}

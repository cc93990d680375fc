//! Ready-made models: the key/value services of the labs, and a register for
//! tests and examples.

mod classic_kv;
mod register;
mod versioned_kv;

pub use classic_kv::{ClassicKvInput, ClassicKvModel, ClassicKvOutput};
pub use register::{RegisterInput, RegisterModel, RegisterOutput};
pub use versioned_kv::{KvErr, KvInput, KvOutput, KvState, VersionedKvModel};

use std::collections::BTreeMap;

use super::model::Partition;

/// Groups operation indices by key, in key order, labelled `key "<key>"`.
/// Operations on different keys never constrain each other in a key/value
/// store, so each key can be checked alone.
fn partition_by_key<'a>(keys: impl Iterator<Item = &'a str>) -> Vec<Partition> {
    let mut by_key: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, key) in keys.enumerate() {
        by_key.entry(key).or_default().push(i);
    }
    by_key
        .into_iter()
        .map(|(key, ops)| Partition {
            label: format!("key {key:?}"),
            ops,
        })
        .collect()
}

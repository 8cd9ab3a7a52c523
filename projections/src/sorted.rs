//! The model's maps read back from a snapshot built bottom-up.
//!
//! Serde's own `BTreeMap` deserializer inserts the entries one by one: each
//! insert searches the tree from its root, and entries arriving in key order
//! (as serde wrote them) split every leaf where it leaves it half full, so a
//! decoded map takes nearly twice the memory of the model that was saved. A
//! start from the snapshots of a 10^7-event region decodes some 2 GB of
//! maps, and on a virtual machine the kernel's first touch of a page is what
//! costs most there (decision 0025). Collected into a vector first, the
//! entries are checked for order in one pass and the tree is built full from
//! the bottom, as `BTreeMap`'s `FromIterator` does; a snapshot not in order
//! (none is written so) still decodes to the same map, only slower.

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::marker::PhantomData;

/// Entries reserved at most from a size hint: a hint is the input's word
/// and must not reserve gigabytes for a corrupt snapshot.
const RESERVED_MAX: usize = 1 << 20;

/// A `deserialize_with` for a `BTreeMap` field.
pub fn map<'de, D, K, V>(deserializer: D) -> Result<BTreeMap<K, V>, D::Error>
where
    D: Deserializer<'de>,
    K: Deserialize<'de> + Ord,
    V: Deserialize<'de>,
{
    Sorted::<BTreeMap<K, V>>::deserialize(deserializer).map(|s| s.0)
}

/// A `deserialize_with` for a map of maps (the audit index by
/// establishment): both levels built bottom-up.
pub fn map_of_maps<'de, D, K, L, V>(
    deserializer: D,
) -> Result<BTreeMap<K, BTreeMap<L, V>>, D::Error>
where
    D: Deserializer<'de>,
    K: Deserialize<'de> + Ord,
    L: Deserialize<'de> + Ord,
    V: Deserialize<'de>,
{
    let outer = Sorted::<BTreeMap<K, Sorted<BTreeMap<L, V>>>>::deserialize(deserializer)?;
    Ok(outer.0.into_iter().map(|(k, inner)| (k, inner.0)).collect())
}

/// A `deserialize_with` for a `BTreeSet` field.
pub fn set<'de, D, T>(deserializer: D) -> Result<BTreeSet<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Ord,
{
    Sorted::<BTreeSet<T>>::deserialize(deserializer).map(|s| s.0)
}

/// A collection decoded through a vector of its entries.
struct Sorted<T>(T);

impl<'de, K, V> Deserialize<'de> for Sorted<BTreeMap<K, V>>
where
    K: Deserialize<'de> + Ord,
    V: Deserialize<'de>,
{
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Entries<K, V>(PhantomData<(K, V)>);
        impl<'de, K, V> Visitor<'de> for Entries<K, V>
        where
            K: Deserialize<'de> + Ord,
            V: Deserialize<'de>,
        {
            type Value = Sorted<BTreeMap<K, V>>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a map")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Self::Value, A::Error> {
                let mut entries =
                    Vec::with_capacity(access.size_hint().unwrap_or(0).min(RESERVED_MAX));
                while let Some(entry) = access.next_entry::<K, V>()? {
                    entries.push(entry);
                }
                // In order already: one pass checks it; equal keys keep the
                // last, as inserting them in turn would.
                Ok(Sorted(entries.into_iter().collect()))
            }
        }
        deserializer.deserialize_map(Entries(PhantomData))
    }
}

impl<'de, T> Deserialize<'de> for Sorted<BTreeSet<T>>
where
    T: Deserialize<'de> + Ord,
{
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Items<T>(PhantomData<T>);
        impl<'de, T> Visitor<'de> for Items<T>
        where
            T: Deserialize<'de> + Ord,
        {
            type Value = Sorted<BTreeSet<T>>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a sequence")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut access: A) -> Result<Self::Value, A::Error> {
                let mut items =
                    Vec::with_capacity(access.size_hint().unwrap_or(0).min(RESERVED_MAX));
                while let Some(item) = access.next_element::<T>()? {
                    items.push(item);
                }
                Ok(Sorted(items.into_iter().collect()))
            }
        }
        deserializer.deserialize_seq(Items(PhantomData))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
    struct Holder {
        #[serde(deserialize_with = "map")]
        m: BTreeMap<u32, String>,
        #[serde(deserialize_with = "set")]
        s: BTreeSet<u64>,
        #[serde(deserialize_with = "map_of_maps")]
        mm: BTreeMap<u8, BTreeMap<u16, Vec<u8>>>,
    }

    #[test]
    fn ordered_input_decodes_to_the_same_collections() {
        let held = Holder {
            m: (0..5_000).map(|i| (i * 7, i.to_string())).collect(),
            s: (0..3_000).map(|i| i * 3).collect(),
            mm: (0..4)
                .map(|i| (i, (0..300).map(|j| (j, vec![i])).collect()))
                .collect(),
        };
        let json = serde_json::to_vec(&held).unwrap();
        assert_eq!(serde_json::from_slice::<Holder>(&json).unwrap(), held);
        let packed = rmp_serde::to_vec_named(&held).unwrap();
        assert_eq!(rmp_serde::from_slice::<Holder>(&packed).unwrap(), held);
    }

    #[test]
    fn unordered_or_repeated_keys_decode_as_inserted_in_turn() {
        let json =
            r#"{"m":{"9":"a","2":"b","9":"c"},"s":[5,1,5,3],"mm":{"2":{"7":[1],"3":[2]},"1":{}}}"#;
        let held: Holder = serde_json::from_str(json).unwrap();
        assert_eq!(held.m, BTreeMap::from([(2, "b".into()), (9, "c".into())]));
        assert_eq!(held.s, BTreeSet::from([1, 3, 5]));
        assert_eq!(
            held.mm,
            BTreeMap::from([
                (1, BTreeMap::new()),
                (2, BTreeMap::from([(3, vec![2]), (7, vec![1])]))
            ])
        );
    }

    #[test]
    fn a_size_hint_of_a_corrupt_snapshot_reserves_little() {
        // A MessagePack map header announcing 2^32-1 entries, with none.
        let lying = [0xdf, 0xff, 0xff, 0xff, 0xff];
        assert!(rmp_serde::from_slice::<Sorted<BTreeMap<u32, u32>>>(&lying).is_err());
    }
}

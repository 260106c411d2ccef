//! Canonical JSON: the oci-spec types keep annotations and labels in `HashMap`s, whose iteration
//! order changes from run to run. Digests must not, so every JSON blob goes through here.

use serde::Serialize;
use serde_json::{Map, Value};

use crate::error::Result;

/// Serialises `value` compactly with every object's keys in sorted order.
pub fn to_canonical_vec<T: Serialize>(value: &T) -> Result<Vec<u8>> {
    let value = sort_keys(serde_json::to_value(value)?);
    Ok(serde_json::to_vec(&value)?)
}

// Rebuilding each map in sorted order works whether serde_json's `Map` is a BTreeMap or (with the
// `preserve_order` feature switched on by some other crate) an insertion-ordered IndexMap.
fn sort_keys(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(String, Value)> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            let mut sorted = Map::new();
            for (k, v) in entries {
                sorted.insert(k, sort_keys(v));
            }
            Value::Object(sorted)
        }
        Value::Array(items) => Value::Array(items.into_iter().map(sort_keys).collect()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn keys_come_out_sorted_at_every_level() {
        let mut inner = HashMap::new();
        for k in ["z", "a", "m", "b"] {
            inner.insert(k.to_string(), 1);
        }
        let mut outer = HashMap::new();
        outer.insert("y".to_string(), inner.clone());
        outer.insert("c".to_string(), inner);
        let text = String::from_utf8(to_canonical_vec(&outer).unwrap()).unwrap();
        assert_eq!(
            text,
            r#"{"c":{"a":1,"b":1,"m":1,"z":1},"y":{"a":1,"b":1,"m":1,"z":1}}"#
        );
    }
}

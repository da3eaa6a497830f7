//! The items a Map's ItemReader read, held compactly: one text holding every item's JSON, one
//! after the other, and where each ends. A million small items (`{"id": 1}`) are about 20 MB
//! this way, against about 450 MB as a `Vec<Value>` (an `IndexMap` per object); an item becomes
//! a `Value` only when its child execution starts.
//!
//! Readers answer with JSON Lines (one compact item per line, see [`ItemList::from_json_lines`])
//! so that the items never exist as a `Value` array, not even while they are read. In the store
//! the list is a JSON array of its items, as it always was.

use std::fmt;

use serde::de::{SeqAccess, Visitor};
use serde::ser::SerializeSeq;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;
use serde_json::value::RawValue;

/// A list of JSON items; each item's text is valid JSON (checked when the list is built).
#[derive(Clone, Default, PartialEq)]
pub(crate) struct ItemList {
    text: String,
    /// Where item `i` ends in `text`; it starts where item `i - 1` ends.
    ends: Vec<usize>,
}

impl ItemList {
    /// The items of JSON Lines text: each non-blank line is one item. A line that is not one
    /// JSON value is refused, with its number.
    pub(crate) fn from_json_lines(text: &str) -> Result<ItemList, String> {
        let mut list = ItemList::default();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            check_item(line).map_err(|e| format!("line {} is not one JSON value: {e}", n + 1))?;
            list.push_checked(line);
        }
        Ok(list)
    }

    /// The items of an array.
    pub(crate) fn from_values(items: &[Value]) -> ItemList {
        let mut list = ItemList::default();
        for item in items {
            list.push_checked(&item.to_string());
        }
        list
    }

    pub(crate) fn len(&self) -> usize {
        self.ends.len()
    }

    /// The JSON text of item `index`.
    pub(crate) fn raw(&self, index: usize) -> Option<&str> {
        let end = *self.ends.get(index)?;
        let start = match index {
            0 => 0,
            i => self.ends[i - 1],
        };
        Some(&self.text[start..end])
    }

    /// Item `index` as a value.
    pub(crate) fn get(&self, index: usize) -> Option<Value> {
        use serde::Deserialize;
        let text = self.raw(index)?;
        // Each item was checked to be JSON when the list was built, and is as deep as the
        // value it was written from (the engine bounds depth; serde_json's 128 is not its
        // bound: an item from an array answer, or from the store, may be deeper).
        let mut parser = serde_json::Deserializer::from_str(text);
        parser.disable_recursion_limit();
        Some(Value::deserialize(&mut parser).unwrap_or(Value::Null))
    }

    /// The items as one array (for TestState's inspection data and ItemsPath).
    pub(crate) fn to_value(&self) -> Value {
        Value::Array((0..self.len()).filter_map(|i| self.get(i)).collect())
    }

    fn iter_raw(&self) -> impl Iterator<Item = &str> + '_ {
        (0..self.len()).filter_map(|i| self.raw(i))
    }

    /// Appends an item whose text is known to be one JSON value.
    fn push_checked(&mut self, text: &str) {
        self.text.push_str(text);
        self.ends.push(self.text.len());
    }
}

impl fmt::Debug for ItemList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ItemList({} items, {} bytes)",
            self.len(),
            self.text.len()
        )
    }
}

/// Parses `text` as one JSON value without building it (serde_json's nesting limit applies).
fn check_item(text: &str) -> Result<(), serde_json::Error> {
    serde_json::from_str::<serde::de::IgnoredAny>(text).map(|_| ())
}

impl Serialize for ItemList {
    /// A JSON array of the items, each written as it is held (no value built).
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.len()))?;
        for text in self.iter_raw() {
            // As deep as it is (see `get`).
            let mut parser = serde_json::Deserializer::from_str(text);
            parser.disable_recursion_limit();
            let raw = <&RawValue>::deserialize(&mut parser).map_err(serde::ser::Error::custom)?;
            seq.serialize_element(raw)?;
        }
        seq.end()
    }
}

impl<'de> Deserialize<'de> for ItemList {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<ItemList, D::Error> {
        struct Items;
        impl<'de> Visitor<'de> for Items {
            type Value = ItemList;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an array of items")
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<ItemList, A::Error> {
                let mut list = ItemList::default();
                while let Some(item) = seq.next_element::<Box<RawValue>>()? {
                    list.push_checked(item.get());
                }
                Ok(list)
            }
        }
        deserializer.deserialize_seq(Items)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_lines_become_items_and_blank_lines_are_skipped() {
        let list = ItemList::from_json_lines("{\"id\": 1}\n\n  [2, 3]\r\n\"four\"").unwrap();
        assert_eq!(list.len(), 3);
        assert_eq!(list.get(0), Some(json!({"id": 1})));
        assert_eq!(list.get(1), Some(json!([2, 3])));
        assert_eq!(list.get(2), Some(json!("four")));
        assert_eq!(list.get(3), None);
        assert_eq!(list.raw(1), Some("[2, 3]"));
    }

    #[test]
    fn an_item_deeper_than_serde_jsons_limit_reads_back_whole() {
        let mut deep = json!(1);
        for _ in 0..200 {
            deep = json!([deep]);
        }
        let list = ItemList::from_values(std::slice::from_ref(&deep));
        assert_eq!(list.get(0).as_ref(), Some(&deep));
        // And it is stored as it is.
        let text = serde_json::to_string(&list).unwrap();
        assert_eq!(text, serde_json::to_string(&[&deep]).unwrap());
    }

    #[test]
    fn a_line_that_is_not_one_value_is_refused_with_its_number() {
        let e = ItemList::from_json_lines("1\n2\n{\"a\": \n").unwrap_err();
        assert!(e.starts_with("line 3 "), "{e}");
        let e = ItemList::from_json_lines("1 2\n").unwrap_err();
        assert!(e.starts_with("line 1 "), "{e}");
    }

    #[test]
    fn the_store_sees_a_json_array_and_reads_it_back() {
        let items = vec![json!({"id": 1, "name": "a\nb"}), json!(null), json!([true])];
        let list = ItemList::from_values(&items);
        let text = serde_json::to_string(&list).unwrap();
        assert_eq!(text, serde_json::to_string(&items).unwrap());
        let back: ItemList = serde_json::from_str(&text).unwrap();
        assert_eq!(back, list);
        assert_eq!(back.to_value(), Value::Array(items));
        // A list written before the items were held compactly reads the same.
        let pretty = serde_json::to_string_pretty(&json!([{"a": 1}, 2])).unwrap();
        let back: ItemList = serde_json::from_str(&pretty).unwrap();
        assert_eq!(back.get(0), Some(json!({"a": 1})));
        assert_eq!(back.len(), 2);
    }
}

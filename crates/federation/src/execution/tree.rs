//! The response tree the executor parses subgraph data into and merges in place: JSON whose
//! objects are short ordered lists with inline keys and whose strings are shared, so parsing,
//! merging and copying entity results never hashes a key and rarely allocates. Projection
//! reads it and writes the client's JSON directly.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Number, Value};

/// A JSON value in the response tree.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) enum Node {
    /// `null`.
    #[default]
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// A number.
    Number(Number),
    /// A string (short ones inline, long ones shared between copies).
    String(Text),
    /// A list.
    Array(Vec<Node>),
    /// An object.
    Object(Object),
}

/// A JSON object: entries in insertion order, looked up by a linear scan (objects in GraphQL
/// responses have a handful of keys).
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Object {
    entries: Vec<(Text, Node)>,
}

/// An object key or a string value: inline up to 23 bytes (every field name and most values),
/// shared beyond, so copies never allocate.
pub(crate) type Text = smol_str::SmolStr;

/// `null`, for absent fields.
pub(crate) static NULL: Node = Node::Null;

impl Object {
    /// An empty object with room for `capacity` entries.
    pub(crate) fn with_capacity(capacity: usize) -> Self {
        Self {
            entries: Vec::with_capacity(capacity),
        }
    }

    /// The value under `key`.
    pub(crate) fn get(&self, key: &str) -> Option<&Node> {
        self.entries
            .iter()
            .find(|(k, _)| k.as_str() == key)
            .map(|(_, value)| value)
    }

    /// The value under `key`, mutably.
    pub(crate) fn get_mut(&mut self, key: &str) -> Option<&mut Node> {
        self.entries
            .iter_mut()
            .find(|(k, _)| k.as_str() == key)
            .map(|(_, value)| value)
    }

    /// Sets `key` to `value`, in place when present, else at the end.
    pub(crate) fn insert(&mut self, key: Text, value: Node) {
        match self.get_mut(key.as_str()) {
            Some(slot) => *slot = value,
            None => self.entries.push((key, value)),
        }
    }

    /// Appends an entry without looking for the key (the caller knows it is new).
    pub(crate) fn push(&mut self, key: Text, value: Node) {
        self.entries.push((key, value));
    }

    /// Takes the value under `key` out, keeping the order of the others.
    pub(crate) fn remove(&mut self, key: &str) -> Option<Node> {
        let index = self.entries.iter().position(|(k, _)| k.as_str() == key)?;
        Some(self.entries.remove(index).1)
    }

    /// Whether `key` is present.
    pub(crate) fn contains_key(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// Number of entries.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Entries in order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&str, &Node)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// The `__typename` string, when present.
    pub(crate) fn typename(&self) -> Option<&str> {
        self.get("__typename").and_then(Node::as_str)
    }
}

impl IntoIterator for Object {
    type Item = (Text, Node);
    type IntoIter = std::vec::IntoIter<(Text, Node)>;

    fn into_iter(self) -> Self::IntoIter {
        self.entries.into_iter()
    }
}

impl Node {
    /// A string node.
    pub(crate) fn string(text: &str) -> Self {
        Node::String(Text::new(text))
    }

    /// Whether this is `null`.
    pub(crate) fn is_null(&self) -> bool {
        matches!(self, Node::Null)
    }

    /// The string, when this is one.
    pub(crate) fn as_str(&self) -> Option<&str> {
        match self {
            Node::String(text) => Some(text.as_str()),
            _ => None,
        }
    }

    /// Converts a `serde_json` value.
    pub(crate) fn from_value(value: Value) -> Self {
        match value {
            Value::Null => Node::Null,
            Value::Bool(b) => Node::Bool(b),
            Value::Number(n) => Node::Number(n),
            Value::String(s) => Node::String(Text::new(&s)),
            Value::Array(items) => Node::Array(items.into_iter().map(Node::from_value).collect()),
            Value::Object(map) => Node::Object(Object {
                entries: map
                    .into_iter()
                    .map(|(k, v)| (Text::new(&k), Node::from_value(v)))
                    .collect(),
            }),
        }
    }

    /// Converts to a `serde_json` value.
    #[cfg(test)]
    pub(crate) fn to_value(&self) -> Value {
        match self {
            Node::Null => Value::Null,
            Node::Bool(b) => Value::Bool(*b),
            Node::Number(n) => Value::Number(n.clone()),
            Node::String(s) => Value::String(s.as_str().to_owned()),
            Node::Array(items) => Value::Array(items.iter().map(Node::to_value).collect()),
            Node::Object(object) => Value::Object(
                object
                    .iter()
                    .map(|(k, v)| (k.to_owned(), v.to_value()))
                    .collect::<serde_json::Map<String, Value>>(),
            ),
        }
    }

    /// Appends this value as JSON.
    pub(crate) fn write_json(&self, out: &mut Vec<u8>) {
        match self {
            Node::Null => out.extend_from_slice(b"null"),
            Node::Bool(true) => out.extend_from_slice(b"true"),
            Node::Bool(false) => out.extend_from_slice(b"false"),
            Node::Number(n) => write_number(out, n),
            Node::String(s) => write_str(out, s.as_str()),
            Node::Array(items) => {
                out.push(b'[');
                for (index, item) in items.iter().enumerate() {
                    if index > 0 {
                        out.push(b',');
                    }
                    item.write_json(out);
                }
                out.push(b']');
            }
            Node::Object(object) => {
                out.push(b'{');
                for (index, (key, value)) in object.iter().enumerate() {
                    if index > 0 {
                        out.push(b',');
                    }
                    write_str(out, key);
                    out.push(b':');
                    value.write_json(out);
                }
                out.push(b'}');
            }
        }
    }
}

/// Appends a number as JSON.
pub(crate) fn write_number(out: &mut Vec<u8>, n: &Number) {
    if let Some(i) = n.as_i64() {
        out.extend_from_slice(itoa::Buffer::new().format(i).as_bytes());
    } else {
        let _ = serde_json::to_writer(&mut *out, n);
    }
}

/// Appends `text` as a JSON string literal.
pub(crate) fn write_str(out: &mut Vec<u8>, text: &str) {
    if needs_escape(text.as_bytes()) {
        let _ = serde_json::to_writer(&mut *out, text);
    } else {
        out.reserve(text.len() + 2);
        out.push(b'"');
        out.extend_from_slice(text.as_bytes());
        out.push(b'"');
    }
}

/// Whether a JSON string literal of `bytes` needs escapes: a control byte, `"` or `\\`.
/// Eight bytes at a time (the classic "has a byte less than n / equal to c" word tricks).
fn needs_escape(bytes: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let mut chunks = bytes.chunks_exact(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let x = u64::from_le_bytes(word);
        let control = x.wrapping_sub(ONES * 0x20) & !x;
        let quote =
            (x ^ (ONES * u64::from(b'"'))).wrapping_sub(ONES) & !(x ^ (ONES * u64::from(b'"')));
        let backslash =
            (x ^ (ONES * u64::from(b'\\'))).wrapping_sub(ONES) & !(x ^ (ONES * u64::from(b'\\')));
        if (control | quote | backslash) & HIGHS != 0 {
            return true;
        }
    }
    chunks
        .remainder()
        .iter()
        .any(|&b| b < 0x20 || b == b'"' || b == b'\\')
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: de::Error>(self, value: bool) -> Result<Node, E> {
        Ok(Node::Bool(value))
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<Node, E> {
        Ok(Node::Number(value.into()))
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<Node, E> {
        Ok(Node::Number(value.into()))
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<Node, E> {
        Ok(Number::from_f64(value).map_or(Node::Null, Node::Number))
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<Node, E> {
        Ok(Node::string(value))
    }

    fn visit_none<E: de::Error>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Node, D::Error> {
        Deserialize::deserialize(deserializer)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Node::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let mut object = Object::with_capacity(map.size_hint().unwrap_or(0).clamp(4, 64));
        while let Some((key, value)) = map.next_entry::<Text, Node>()? {
            // Duplicate keys: the last wins, as with serde_json's map (not looked for in large
            // objects, which would make parsing quadratic).
            if object.len() < 32 {
                object.insert(key, value);
            } else {
                object.push(key, value);
            }
        }
        Ok(Node::Object(object))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_and_writes_back_the_same_json() {
        let value = json!({
            "a": 1, "b": -2, "c": 1.5, "d": "text with \"quotes\" and \n", "e": null,
            "f": [true, false, {"g": []}], "a_key_longer_than_twenty_two_bytes": {"x": "y"},
            "ключ": "é"
        });
        let text = serde_json::to_string(&value).unwrap();
        let node: Node = serde_json::from_str(&text).unwrap();
        let mut out = Vec::new();
        node.write_json(&mut out);
        assert_eq!(String::from_utf8(out).unwrap(), text);
        assert_eq!(node.to_value(), value);
        assert_eq!(Node::from_value(value.clone()), node);
    }

    #[test]
    fn objects_keep_order_and_replace_in_place() {
        let mut object = Object::default();
        object.insert(Text::new("b"), Node::Bool(true));
        object.insert(Text::new("a"), Node::Null);
        object.insert(Text::new("b"), Node::string("x"));
        let keys: Vec<&str> = object.iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["b", "a"]);
        assert_eq!(object.get("b").and_then(Node::as_str), Some("x"));
        assert_eq!(object.remove("b"), Some(Node::string("x")));
        assert!(!object.contains_key("b"));
        assert_eq!(object.len(), 1);
    }

    #[test]
    fn strings_are_escaped_exactly_like_serde_json() {
        let mut cases: Vec<String> = vec![
            String::new(),
            "plain".to_owned(),
            "exactly8".to_owned(),
            "sixteen bytes!!!".to_owned(),
            "한국어 텍스트와 emoji 🍰".to_owned(),
        ];
        for special in ['"', '\\', '\n', '\u{1}', '\u{1f}', '\t'] {
            for position in 0..17 {
                let mut text = "a".repeat(17);
                text.insert(position, special);
                cases.push(text);
            }
        }
        for text in cases {
            let mut out = Vec::new();
            write_str(&mut out, &text);
            assert_eq!(
                String::from_utf8(out).unwrap(),
                serde_json::to_string(&text).unwrap()
            );
        }
    }

    #[test]
    fn integers_are_written_like_serde_json() {
        for value in [
            0i64,
            7,
            -7,
            10,
            99,
            100,
            -100,
            123_456_789,
            i64::MAX,
            i64::MIN,
        ] {
            let mut out = Vec::new();
            write_number(&mut out, &Number::from(value));
            assert_eq!(String::from_utf8(out).unwrap(), value.to_string());
        }
        let mut out = Vec::new();
        write_number(&mut out, &Number::from(u64::MAX));
        assert_eq!(String::from_utf8(out).unwrap(), u64::MAX.to_string());
    }

    #[test]
    fn duplicate_keys_keep_the_last_value() {
        let node: Node = serde_json::from_str(r#"{"a":1,"a":2}"#).unwrap();
        assert_eq!(node.to_value(), json!({"a": 2}));
    }
}

//! What goes onto the bus and what comes off it.

/// A record to publish.
#[derive(Debug, Clone, PartialEq)]
pub struct OutgoingRecord {
    /// The topic to publish to.
    pub topic: String,
    /// The partitioning key: records with the same key keep their order.
    pub key: String,
    /// The record's body.
    pub payload: Vec<u8>,
    /// Headers (for example W3C trace context), in order; names may repeat.
    pub headers: Vec<(String, Vec<u8>)>,
}

impl OutgoingRecord {
    /// A record with no headers.
    pub fn new(
        topic: impl Into<String>,
        key: impl Into<String>,
        payload: impl Into<Vec<u8>>,
    ) -> Self {
        Self {
            topic: topic.into(),
            key: key.into(),
            payload: payload.into(),
            headers: Vec::new(),
        }
    }

    /// Adds a header and returns the record.
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<Vec<u8>>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
}

/// Where the messages of `topic` that can never be handled go: `<topic>.dlq`.
pub fn dead_letter_topic(topic: &str) -> String {
    format!("{topic}.dlq")
}

/// A consumed record.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// The topic it was read from.
    pub topic: String,
    /// The partition it was read from.
    pub partition: i32,
    /// Its offset within the partition.
    pub offset: i64,
    /// Its key, if it had one.
    pub key: Option<Vec<u8>>,
    /// Its body.
    pub payload: Vec<u8>,
    /// Its headers, in the order they were published.
    pub headers: Vec<(String, Vec<u8>)>,
}

impl Message {
    /// This message, unchanged, for its topic's dead letters, with `reason` in an `error`
    /// header.
    pub fn dead_letter(&self, reason: &str) -> OutgoingRecord {
        let key = self
            .key
            .as_deref()
            .map(|k| String::from_utf8_lossy(k).into_owned())
            .unwrap_or_default();
        OutgoingRecord::new(dead_letter_topic(&self.topic), key, self.payload.clone())
            .with_header("error", reason.as_bytes().to_vec())
    }

    /// The value of the first header called `name`.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_returns_first_match_or_none() {
        let message = Message {
            topic: "t".into(),
            partition: 0,
            offset: 0,
            key: None,
            payload: Vec::new(),
            headers: vec![
                ("a".into(), b"1".to_vec()),
                ("b".into(), b"2".to_vec()),
                ("a".into(), b"3".to_vec()),
            ],
        };
        assert_eq!(message.header("a"), Some(&b"1"[..]));
        assert_eq!(message.header("b"), Some(&b"2"[..]));
        assert_eq!(message.header("c"), None);
    }

    #[test]
    fn builder_keeps_header_order() {
        let record = OutgoingRecord::new("t", "k", b"p".to_vec())
            .with_header("x", b"1".to_vec())
            .with_header("y", b"2".to_vec());
        assert_eq!(record.headers[0].0, "x");
        assert_eq!(record.headers[1].0, "y");
        assert_eq!(record.key, "k");
    }
}

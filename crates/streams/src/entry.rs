//! One stream entry as reads hand it out.

use crate::trace::is_trace_field;

/// A stream entry: its id and its fields in the order they were appended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamEntry {
    /// The entry id, `<milliseconds>-<sequence>`.
    pub id: String,
    /// The field name/value pairs, including any trace-context fields.
    pub fields: Vec<(String, String)>,
}

impl StreamEntry {
    /// The value of the first field named `name`.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// The fields that are payload, without trace-context fields.
    pub fn payload(&self) -> impl Iterator<Item = (&str, &str)> {
        self.fields
            .iter()
            .filter(|(key, _)| !is_trace_field(key))
            .map(|(key, value)| (key.as_str(), value.as_str()))
    }

    /// The W3C trace context the producer appended with this entry (empty when none);
    /// make it a consumer span's parent with `telemetry::set_parent`.
    pub fn trace_context(&self) -> telemetry::Context {
        telemetry::extract_stream_fields(&self.fields)
    }
}

#[cfg(test)]
mod tests {
    use super::StreamEntry;

    #[test]
    fn payload_skips_trace_fields() {
        let entry = StreamEntry {
            id: "1-0".to_owned(),
            fields: vec![
                ("text".to_owned(), "안녕".to_owned()),
                ("traceparent".to_owned(), "00-x".to_owned()),
                ("tracestate".to_owned(), "a=b".to_owned()),
            ],
        };
        assert_eq!(entry.field("text"), Some("안녕"));
        assert_eq!(entry.payload().collect::<Vec<_>>(), vec![("text", "안녕")]);
    }
}

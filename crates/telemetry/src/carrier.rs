//! Injector/Extractor adapters for each carrier a trace context crosses.
//!
//! Injectors skip keys or values the carrier cannot hold (the W3C fields are plain
//! ASCII, so this does not happen in practice); extractors match keys
//! case-insensitively and ignore values that are not valid text.

use http::{HeaderMap, HeaderName, HeaderValue};
use opentelemetry::propagation::{Extractor, Injector};
use tonic::metadata::{KeyAndValueRef, MetadataKey, MetadataMap, MetadataValue};

/// Writes trace context into HTTP headers.
#[derive(Debug)]
pub struct HeaderInjector<'a>(pub &'a mut HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(key.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            self.0.insert(name, value);
        }
    }
}

/// Reads trace context from HTTP headers.
#[derive(Debug)]
pub struct HeaderExtractor<'a>(pub &'a HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(HeaderName::as_str).collect()
    }
}

/// Writes trace context into Kafka-style headers, replacing any earlier value of a key.
#[derive(Debug)]
pub struct KafkaHeadersInjector<'a>(pub &'a mut Vec<(String, Vec<u8>)>);

impl Injector for KafkaHeadersInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        self.0.retain(|(k, _)| !k.eq_ignore_ascii_case(key));
        self.0.push((key.to_owned(), value.into_bytes()));
    }
}

/// Reads trace context from Kafka-style headers (UTF-8 values only).
#[derive(Debug)]
pub struct KafkaHeadersExtractor<'a>(pub &'a [(String, Vec<u8>)]);

impl Extractor for KafkaHeadersExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .and_then(|(_, value)| std::str::from_utf8(value).ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.iter().map(|(k, _)| k.as_str()).collect()
    }
}

/// Writes trace context into Redis stream entry fields, replacing any earlier value.
#[derive(Debug)]
pub struct StreamFieldsInjector<'a>(pub &'a mut Vec<(String, String)>);

impl Injector for StreamFieldsInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        self.0.retain(|(k, _)| !k.eq_ignore_ascii_case(key));
        self.0.push((key.to_owned(), value));
    }
}

/// Reads trace context from Redis stream entry fields.
#[derive(Debug)]
pub struct StreamFieldsExtractor<'a>(pub &'a [(String, String)]);

impl Extractor for StreamFieldsExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, value)| value.as_str())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.iter().map(|(k, _)| k.as_str()).collect()
    }
}

/// Writes trace context into gRPC (tonic) metadata as ASCII entries.
#[derive(Debug)]
pub struct MetadataInjector<'a>(pub &'a mut MetadataMap);

impl Injector for MetadataInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(key), Ok(value)) = (
            MetadataKey::from_bytes(key.as_bytes()),
            MetadataValue::try_from(value.as_str()),
        ) {
            self.0.insert(key, value);
        }
    }
}

/// Reads trace context from gRPC (tonic) metadata, ASCII entries only.
#[derive(Debug)]
pub struct MetadataExtractor<'a>(pub &'a MetadataMap);

impl Extractor for MetadataExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0
            .iter()
            .filter_map(|entry| match entry {
                KeyAndValueRef::Ascii(key, _) => Some(key.as_str()),
                KeyAndValueRef::Binary(..) => None,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_injector_replaces_a_stale_value() {
        let mut headers = vec![
            ("TraceParent".to_owned(), b"old".to_vec()),
            ("event-type".to_owned(), b"OrderPlaced".to_vec()),
        ];
        KafkaHeadersInjector(&mut headers).set("traceparent", "new".to_owned());
        assert_eq!(headers.len(), 2);
        assert_eq!(
            KafkaHeadersExtractor(&headers).get("traceparent"),
            Some("new")
        );
        assert_eq!(
            KafkaHeadersExtractor(&headers).get("EVENT-TYPE"),
            Some("OrderPlaced")
        );
    }

    #[test]
    fn kafka_extractor_ignores_non_utf8_values() {
        let headers = vec![("traceparent".to_owned(), vec![0xff, 0xfe])];
        assert_eq!(KafkaHeadersExtractor(&headers).get("traceparent"), None);
        assert_eq!(KafkaHeadersExtractor(&headers).keys(), vec!["traceparent"]);
    }

    #[test]
    fn stream_fields_keep_other_fields() {
        let mut fields = vec![("payload".to_owned(), "{}".to_owned())];
        StreamFieldsInjector(&mut fields).set("traceparent", "tp".to_owned());
        StreamFieldsInjector(&mut fields).set("traceparent", "tp2".to_owned());
        let extractor = StreamFieldsExtractor(&fields);
        assert_eq!(extractor.get("traceparent"), Some("tp2"));
        assert_eq!(extractor.keys(), vec!["payload", "traceparent"]);
    }

    #[test]
    fn header_injector_skips_values_a_header_cannot_hold() {
        let mut headers = HeaderMap::new();
        HeaderInjector(&mut headers).set("traceparent", "ok".to_owned());
        HeaderInjector(&mut headers).set("bad key", "x".to_owned());
        HeaderInjector(&mut headers).set("tracestate", "line\nbreak".to_owned());
        let extractor = HeaderExtractor(&headers);
        assert_eq!(extractor.get("TraceParent"), Some("ok"));
        assert_eq!(extractor.keys(), vec!["traceparent"]);
    }

    #[test]
    fn metadata_lists_ascii_keys_only() {
        let mut metadata = MetadataMap::new();
        MetadataInjector(&mut metadata).set("traceparent", "tp".to_owned());
        metadata.insert_bin(
            "blob-bin",
            tonic::metadata::MetadataValue::from_bytes(b"\x00"),
        );
        let extractor = MetadataExtractor(&metadata);
        assert_eq!(extractor.get("traceparent"), Some("tp"));
        assert_eq!(extractor.keys(), vec!["traceparent"]);
    }
}

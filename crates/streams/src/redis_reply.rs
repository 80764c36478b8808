//! Turning Redis stream replies (RESP2 or RESP3) into [`StreamEntry`] values, keeping field order.

use redis::Value;

use crate::{StreamEntry, StreamError};

/// Entries from an `XRANGE` / `XAUTOCLAIM` entry list; entries without fields (deleted but
/// still pending, as Redis 6.2 reports them) are skipped.
pub(crate) fn entries(value: Value) -> Result<Vec<StreamEntry>, StreamError> {
    let items = match value {
        Value::Nil => return Ok(Vec::new()),
        Value::Array(items) => items,
        other => return Err(unexpected("an entry list", &other)),
    };
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let Value::Array(parts) = item else {
            return Err(unexpected("an entry", &item));
        };
        let mut parts = parts.into_iter();
        let (Some(id), Some(fields)) = (parts.next(), parts.next()) else {
            return Err(StreamError::UnexpectedReply(
                "an entry without id and fields".to_owned(),
            ));
        };
        let id = text(id)?;
        let fields = match fields {
            Value::Nil => continue,
            Value::Array(flat) => pairs(flat)?,
            Value::Map(map) => map
                .into_iter()
                .map(|(key, value)| Ok((text(key)?, text(value)?)))
                .collect::<Result<_, StreamError>>()?,
            other => return Err(unexpected("entry fields", &other)),
        };
        out.push(StreamEntry { id, fields });
    }
    Ok(out)
}

/// Entries from an `XREAD` / `XREADGROUP` reply for a single stream (nil on timeout).
pub(crate) fn read(value: Value) -> Result<Vec<StreamEntry>, StreamError> {
    match value {
        Value::Nil => Ok(Vec::new()),
        Value::Array(streams) => {
            let mut out = Vec::new();
            for stream in streams {
                let Value::Array(parts) = stream else {
                    return Err(unexpected("a stream reply", &stream));
                };
                if let Some(list) = parts.into_iter().nth(1) {
                    out.extend(entries(list)?);
                }
            }
            Ok(out)
        }
        Value::Map(streams) => {
            let mut out = Vec::new();
            for (_, list) in streams {
                out.extend(entries(list)?);
            }
            Ok(out)
        }
        other => Err(unexpected("a read reply", &other)),
    }
}

/// Entries claimed by `XAUTOCLAIM` (`[next-cursor, entries, deleted-ids]`).
pub(crate) fn auto_claim(value: Value) -> Result<Vec<StreamEntry>, StreamError> {
    match value {
        Value::Array(parts) => parts.into_iter().nth(1).map_or(Ok(Vec::new()), entries),
        other => Err(unexpected("an XAUTOCLAIM reply", &other)),
    }
}

/// A string value.
pub(crate) fn text(value: Value) -> Result<String, StreamError> {
    match value {
        Value::BulkString(bytes) => String::from_utf8(bytes)
            .map_err(|_| StreamError::UnexpectedReply("a value that is not UTF-8".to_owned())),
        Value::SimpleString(text) => Ok(text),
        Value::Int(number) => Ok(number.to_string()),
        other => Err(unexpected("a string", &other)),
    }
}

fn pairs(flat: Vec<Value>) -> Result<Vec<(String, String)>, StreamError> {
    if !flat.len().is_multiple_of(2) {
        return Err(StreamError::UnexpectedReply(
            "an odd number of field names and values".to_owned(),
        ));
    }
    let mut out = Vec::with_capacity(flat.len() / 2);
    let mut items = flat.into_iter();
    while let (Some(key), Some(value)) = (items.next(), items.next()) {
        out.push((text(key)?, text(value)?));
    }
    Ok(out)
}

fn unexpected(what: &str, got: &Value) -> StreamError {
    let kind = match got {
        Value::Nil => "nil",
        Value::Int(_) => "an integer",
        Value::BulkString(_) | Value::SimpleString(_) => "a string",
        Value::Array(_) => "an array",
        Value::Map(_) => "a map",
        _ => "another type",
    };
    StreamError::UnexpectedReply(format!("expected {what}, got {kind}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    #[test]
    fn keeps_field_order_and_skips_deleted_entries() {
        let reply = Value::Array(vec![Value::Array(vec![
            bulk("s"),
            Value::Array(vec![
                Value::Array(vec![
                    bulk("1-0"),
                    Value::Array(vec![bulk("b"), bulk("2"), bulk("a"), bulk("1")]),
                ]),
                Value::Array(vec![bulk("2-0"), Value::Nil]),
            ]),
        ])]);
        let entries = read(reply).unwrap();
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].id, "1-0");
        assert_eq!(
            entries[0].fields,
            vec![("b".into(), "2".into()), ("a".into(), "1".into())]
        );
    }

    #[test]
    fn rejects_odd_fields_and_non_utf8() {
        let odd = Value::Array(vec![Value::Array(vec![
            bulk("1-0"),
            Value::Array(vec![bulk("a")]),
        ])]);
        assert!(matches!(entries(odd), Err(StreamError::UnexpectedReply(_))));
        let bad = Value::Array(vec![Value::Array(vec![
            bulk("1-0"),
            Value::Array(vec![bulk("a"), Value::BulkString(vec![0xff])]),
        ])]);
        assert!(matches!(entries(bad), Err(StreamError::UnexpectedReply(_))));
    }
}

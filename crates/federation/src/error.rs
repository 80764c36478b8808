//! Errors of every stage (supergraph, composition, preparation) and the GraphQL response shape.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// One step of a response path: an object key or a list index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PathSegment {
    /// A response key (field name or alias).
    Key(String),
    /// A position in a list.
    Index(usize),
}

/// A position in the operation text (1-based line and column).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Location {
    /// Line, starting at 1.
    pub line: usize,
    /// Column, starting at 1.
    pub column: usize,
}

/// A GraphQL error as sent to clients.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GraphQLError {
    /// Human-readable description.
    pub message: String,
    /// Where in the operation the error applies.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub locations: Vec<Location>,
    /// Which response field the error applies to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<Vec<PathSegment>>,
    /// Extra data; carries `code`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extensions: Option<Map<String, Value>>,
}

impl GraphQLError {
    /// An error with a message and an `extensions.code`.
    pub fn new(message: impl Into<String>, code: &str) -> Self {
        let mut extensions = Map::new();
        extensions.insert("code".to_owned(), Value::String(code.to_owned()));
        Self {
            message: message.into(),
            locations: Vec::new(),
            path: None,
            extensions: Some(extensions),
        }
    }

    /// The same error at a response path.
    pub fn with_path(mut self, path: Vec<PathSegment>) -> Self {
        self.path = Some(path);
        self
    }

    /// The same error at an operation location.
    pub fn with_location(mut self, location: Location) -> Self {
        self.locations.push(location);
        self
    }

    /// The `extensions.code`, when present.
    pub fn code(&self) -> Option<&str> {
        self.extensions.as_ref()?.get("code")?.as_str()
    }
}

/// A GraphQL response: `data` absent (`None`) before execution starts, `null` when it was nulled.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Response {
    /// The result; `None` serialises as absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Data>,
    /// Errors, omitted when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<GraphQLError>,
    /// Response extensions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extensions: Option<Value>,
}

/// A response's `data`: a JSON value, or the JSON text the executor wrote straight from the
/// subgraph data (the usual case; it is never rebuilt as a value on the way to the client).
#[derive(Debug, Clone)]
pub enum Data {
    /// A value.
    Value(Value),
    /// JSON text of one value, written by the executor (always valid JSON).
    Json(String),
}

impl Data {
    /// Whether the data is `null`.
    pub fn is_null(&self) -> bool {
        match self {
            Data::Value(value) => value.is_null(),
            Data::Json(text) => text == "null",
        }
    }

    /// The data as a value (parses [`Data::Json`]).
    pub fn to_value(&self) -> Value {
        match self {
            Data::Value(value) => value.clone(),
            Data::Json(text) => serde_json::from_str(text).unwrap_or(Value::Null),
        }
    }
}

impl From<Value> for Data {
    fn from(value: Value) -> Self {
        Data::Value(value)
    }
}

impl PartialEq for Data {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Data::Value(a), Data::Value(b)) => a == b,
            (Data::Json(a), Data::Json(b)) => a == b,
            _ => self.to_value() == other.to_value(),
        }
    }
}

impl Serialize for Data {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Data::Value(value) => value.serialize(serializer),
            Data::Json(text) => {
                // Borrowed, so checking the text allocates nothing; `Response::to_json` skips
                // even that.
                let raw: &serde_json::value::RawValue =
                    serde_json::from_str(text).map_err(serde::ser::Error::custom)?;
                raw.serialize(serializer)
            }
        }
    }
}

impl<'de> Deserialize<'de> for Data {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Value::deserialize(deserializer).map(Data::Value)
    }
}

impl Response {
    /// A response with data and errors.
    pub fn new(data: Option<Value>, errors: Vec<GraphQLError>) -> Self {
        Self {
            data: data.map(Data::Value),
            errors,
            extensions: None,
        }
    }

    /// A response whose data is JSON text written by the executor.
    pub(crate) fn with_json(data: String, errors: Vec<GraphQLError>) -> Self {
        Self {
            data: Some(Data::Json(data)),
            errors,
            extensions: None,
        }
    }

    /// A response with only errors (no `data` key).
    pub fn from_errors(errors: Vec<GraphQLError>) -> Self {
        Self::new(None, errors)
    }

    /// A response with one error (no `data` key).
    pub fn from_error(error: GraphQLError) -> Self {
        Self::from_errors(vec![error])
    }

    /// The response as JSON, the same text as `serde_json::to_vec` gives, written without
    /// re-reading data the executor already wrote as text.
    pub fn to_json(&self) -> Result<Vec<u8>, serde_json::Error> {
        let data = match &self.data {
            Some(Data::Json(text)) => text,
            _ => return serde_json::to_vec(self),
        };
        let mut out = Vec::with_capacity(data.len() + 16);
        out.extend_from_slice(b"{\"data\":");
        out.extend_from_slice(data.as_bytes());
        self.write_tail(&mut out)?;
        Ok(out)
    }

    /// Writes what follows the data: errors and extensions when there are any, and the `}`.
    fn write_tail(&self, out: &mut Vec<u8>) -> Result<(), serde_json::Error> {
        if !self.errors.is_empty() {
            out.extend_from_slice(b",\"errors\":");
            serde_json::to_writer(&mut *out, &self.errors)?;
        }
        if let Some(extensions) = &self.extensions {
            out.extend_from_slice(b",\"extensions\":");
            serde_json::to_writer(&mut *out, extensions)?;
        }
        out.push(b'}');
        Ok(())
    }

    /// The same JSON as [`Response::to_json`], in pieces to be sent one after another: the
    /// data the executor wrote is handed over as it is instead of being copied again.
    pub fn into_json_parts(mut self) -> Result<Vec<bytes::Bytes>, serde_json::Error> {
        let data = match self.data.take() {
            Some(Data::Json(text)) => text,
            data => {
                self.data = data;
                return Ok(vec![bytes::Bytes::from(self.to_json()?)]);
            }
        };
        let mut tail = Vec::new();
        self.write_tail(&mut tail)?;
        Ok(vec![
            bytes::Bytes::from_static(b"{\"data\":"),
            bytes::Bytes::from(data),
            bytes::Bytes::from(tail),
        ])
    }
}

/// Why a supergraph SDL was rejected.
#[derive(Debug, thiserror::Error)]
pub enum SupergraphError {
    /// The SDL does not parse.
    #[error("supergraph SDL does not parse: {0}")]
    Parse(String),
    /// The SDL parses but is not a usable Federation v2 supergraph.
    #[error("invalid supergraph: {0}")]
    Invalid(String),
}

/// Why composing subgraphs failed.
#[derive(Debug, thiserror::Error)]
pub enum CompositionError {
    /// Composition reported errors.
    #[error("composition failed: {}", .0.join("; "))]
    Composition(Vec<String>),
    /// A subgraph SDL does not parse.
    #[error("subgraph {name} SDL does not parse: {message}")]
    SubgraphSdl {
        /// Subgraph name.
        name: String,
        /// Parser message.
        message: String,
    },
    /// Fetching `_service { sdl }` failed.
    #[error("fetching the SDL of {url} failed: {message}")]
    Fetch {
        /// Subgraph URL.
        url: String,
        /// What went wrong.
        message: String,
    },
}

/// Why an engine could not be built.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The API schema could not be turned into an introspection schema.
    #[error("introspection schema: {0}")]
    Introspection(String),
    /// A configured subgraph URL is not valid.
    #[error("subgraph {name} has an invalid URL {url}")]
    InvalidUrl {
        /// Subgraph name.
        name: String,
        /// The URL.
        url: String,
    },
    /// The HTTP client could not be built.
    #[error("http client: {0}")]
    HttpClient(String),
}

/// Why an operation was refused before execution.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RequestError {
    /// The text does not parse.
    #[error("{0}")]
    Parse(String),
    /// The operation is not valid against the API schema.
    #[error("operation is not valid")]
    Validation(Vec<GraphQLError>),
    /// A limit on the operation's shape or size was exceeded.
    #[error("{message}")]
    LimitExceeded {
        /// Which limit.
        limit: Limit,
        /// Human-readable description.
        message: String,
    },
    /// The requested operation is not in the document, or the choice is ambiguous.
    #[error("{0}")]
    OperationNotFound(String),
    /// Variables do not match their definitions.
    #[error("{0}")]
    BadUserInput(String),
    /// The operation could not be planned.
    #[error("{0}")]
    Planning(String),
    /// The operation kind is not served by this call (e.g. a subscription over `execute`).
    #[error("{0}")]
    UnsupportedOperation(String),
}

/// The operation limits that can be exceeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// Selection depth.
    Depth,
    /// Number of aliases.
    Aliases,
    /// Number of root fields.
    RootFields,
    /// Number of tokens.
    Tokens,
    /// Estimated cost.
    Cost,
}

impl RequestError {
    /// The stable `extensions.code` of this error.
    pub fn code(&self) -> &'static str {
        match self {
            RequestError::Parse(_) => "GRAPHQL_PARSE_FAILED",
            RequestError::Validation(_) => "GRAPHQL_VALIDATION_FAILED",
            RequestError::LimitExceeded { limit, .. } => match limit {
                Limit::Depth => "MAX_DEPTH_EXCEEDED",
                Limit::Aliases => "MAX_ALIASES_EXCEEDED",
                Limit::RootFields => "MAX_ROOT_FIELDS_EXCEEDED",
                Limit::Tokens => "MAX_TOKENS_EXCEEDED",
                Limit::Cost => "COST_LIMIT_EXCEEDED",
            },
            RequestError::OperationNotFound(_) => "OPERATION_NOT_FOUND",
            RequestError::BadUserInput(_) => "BAD_USER_INPUT",
            RequestError::Planning(_) => "QUERY_PLANNING_FAILED",
            RequestError::UnsupportedOperation(_) => "OPERATION_NOT_SUPPORTED",
        }
    }

    /// The errors a client sees for this refusal.
    pub fn to_errors(&self) -> Vec<GraphQLError> {
        let code = self.code();
        match self {
            RequestError::Validation(errors) => errors
                .iter()
                .cloned()
                .map(|mut error| {
                    let extensions = error.extensions.get_or_insert_with(Map::new);
                    extensions.insert("code".to_owned(), Value::String(code.to_owned()));
                    error
                })
                .collect(),
            other => vec![GraphQLError::new(other.to_string(), code)],
        }
    }

    /// A response carrying this refusal (no `data` key).
    pub fn into_response(self) -> Response {
        Response::from_errors(self.to_errors())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn responses() -> Vec<(Response, Response)> {
        let data = json!({"a": [1, "x", {"b": null}], "c": "é \"q\""});
        let error = GraphQLError::new("boom", "SOME_CODE").with_path(vec![
            PathSegment::Key("a".to_owned()),
            PathSegment::Index(2),
        ]);
        let mut with_extensions = Response::with_json(data.to_string(), vec![error.clone()]);
        with_extensions.extensions = Some(json!({"cost": 3}));
        let mut value_extensions = Response::new(Some(data.clone()), vec![error.clone()]);
        value_extensions.extensions = Some(json!({"cost": 3}));
        vec![
            (
                Response::with_json(data.to_string(), Vec::new()),
                Response::new(Some(data.clone()), Vec::new()),
            ),
            (
                Response::with_json("null".to_owned(), vec![error.clone()]),
                Response::new(Some(Value::Null), vec![error.clone()]),
            ),
            (with_extensions, value_extensions),
            (
                Response::from_error(error.clone()),
                Response::from_error(error),
            ),
        ]
    }

    #[test]
    fn json_data_serialises_like_the_same_value() {
        for (json_data, value_data) in responses() {
            let expected = serde_json::to_vec(&value_data).unwrap();
            assert_eq!(json_data.to_json().unwrap(), expected);
            assert_eq!(serde_json::to_vec(&json_data).unwrap(), expected);
            assert_eq!(
                serde_json::to_value(&json_data).unwrap(),
                serde_json::to_value(&value_data).unwrap()
            );
            assert_eq!(json_data, value_data);
        }
    }

    #[test]
    fn json_parts_join_into_the_same_json() {
        for (json_data, value_data) in responses() {
            let expected = serde_json::to_vec(&value_data).unwrap();
            for response in [json_data, value_data] {
                let joined: Vec<u8> = response.into_json_parts().unwrap().concat();
                assert_eq!(joined, expected);
            }
        }
    }

    #[test]
    fn null_json_data_is_null() {
        assert!(Data::Json("null".to_owned()).is_null());
        assert!(!Data::Json("{}".to_owned()).is_null());
        assert!(Data::Value(Value::Null).is_null());
    }
}

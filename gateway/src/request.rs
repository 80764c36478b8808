//! A GraphQL-over-HTTP request as clients send it (POST JSON body or GET query string) and
//! the response format they accept.

use axum::http::{HeaderMap, StatusCode, header};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::error::Refusal;

/// `{query, operationName, variables, extensions}`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GraphqlRequest {
    /// The document; absent when only a persisted-query hash is sent.
    #[serde(default)]
    pub query: Option<String>,
    /// Which operation of the document to run.
    #[serde(default)]
    pub operation_name: Option<String>,
    /// Variable values.
    #[serde(default)]
    pub variables: Option<Map<String, Value>>,
    /// Request extensions (`persistedQuery`).
    #[serde(default)]
    pub extensions: Option<Map<String, Value>>,
}

/// The query-string parameters of `GET /graphql` (JSON-encoded where structured).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GetParams {
    /// The document.
    pub query: Option<String>,
    /// Which operation to run.
    pub operation_name: Option<String>,
    /// JSON object of variables.
    pub variables: Option<String>,
    /// JSON object of extensions.
    pub extensions: Option<String>,
}

impl GraphqlRequest {
    /// Parses a POST body.
    pub fn from_json(body: &[u8]) -> Result<Self, Refusal> {
        serde_json::from_slice(body).map_err(|err| {
            Refusal::bad_request(format!(
                "the body is not a GraphQL request ({{\"query\": ...}}): {err}"
            ))
        })
    }

    /// Reads GET parameters.
    pub fn from_params(params: GetParams) -> Result<Self, Refusal> {
        let object = |name: &str, raw: Option<String>| -> Result<_, Refusal> {
            match raw.filter(|raw| !raw.trim().is_empty()) {
                None => Ok(None),
                Some(raw) => match serde_json::from_str::<Value>(&raw) {
                    Ok(Value::Object(map)) => Ok(Some(map)),
                    Ok(Value::Null) => Ok(None),
                    _ => Err(Refusal::bad_request(format!(
                        "`{name}` must be a JSON object"
                    ))),
                },
            }
        };
        Ok(Self {
            query: params.query,
            operation_name: params.operation_name.filter(|name| !name.is_empty()),
            variables: object("variables", params.variables)?,
            extensions: object("extensions", params.extensions)?,
        })
    }
}

/// How a response is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseFormat {
    /// `application/graphql-response+json`: request errors get 4xx statuses.
    GraphqlResponseJson,
    /// `application/json`: the legacy format, always 200 once a request parses.
    Json,
    /// `text/event-stream`: GraphQL over SSE, distinct connections mode.
    EventStream,
}

impl ResponseFormat {
    /// The `Content-Type` of single responses in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::GraphqlResponseJson => "application/graphql-response+json; charset=utf-8",
            Self::Json => "application/json; charset=utf-8",
            Self::EventStream => "text/event-stream",
        }
    }

    /// Picks the first media type in `Accept` the gateway can write (no `Accept`: JSON).
    pub fn negotiate(headers: &HeaderMap) -> Result<Self, Refusal> {
        let Some(accept) = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()) else {
            return Ok(Self::Json);
        };
        let mut ranges: Vec<(f32, usize, &str)> = accept
            .split(',')
            .enumerate()
            .filter_map(|(index, range)| {
                let mut parts = range.split(';');
                let media = parts.next()?.trim();
                let quality = parts
                    .filter_map(|p| p.trim().strip_prefix("q="))
                    .find_map(|q| q.trim().parse::<f32>().ok())
                    .unwrap_or(1.0);
                (quality > 0.0 && !media.is_empty()).then_some((quality, index, media))
            })
            .collect();
        // Highest quality first; ties keep the client's order.
        ranges.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        for (_, _, media) in ranges {
            let media = media.to_ascii_lowercase();
            match media.as_str() {
                "application/graphql-response+json" => return Ok(Self::GraphqlResponseJson),
                "application/json" | "application/*" | "*/*" => return Ok(Self::Json),
                "text/event-stream" => return Ok(Self::EventStream),
                _ => {}
            }
        }
        Err(Refusal::new(
            StatusCode::NOT_ACCEPTABLE,
            "NOT_ACCEPTABLE",
            "accept application/graphql-response+json, application/json or text/event-stream",
        ))
    }
}

/// Whether the client asks for a page (a browser opening `/graphql`).
pub fn wants_html(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.to_ascii_lowercase().contains("text/html"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(value: &str) -> Result<ResponseFormat, Refusal> {
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT, value.parse().unwrap());
        ResponseFormat::negotiate(&headers)
    }

    #[test]
    fn negotiates_by_quality_then_order() {
        assert_eq!(
            ResponseFormat::negotiate(&HeaderMap::new()).unwrap(),
            ResponseFormat::Json
        );
        assert_eq!(
            accept("application/graphql-response+json, application/json;q=0.9").unwrap(),
            ResponseFormat::GraphqlResponseJson
        );
        assert_eq!(
            accept("application/graphql-response+json;q=0.5, application/json").unwrap(),
            ResponseFormat::Json
        );
        assert_eq!(
            accept("text/event-stream").unwrap(),
            ResponseFormat::EventStream
        );
        assert_eq!(accept("*/*").unwrap(), ResponseFormat::Json);
        assert_eq!(accept("text/plain").unwrap_err().status.as_u16(), 406);
        assert_eq!(
            accept("application/json;q=0").unwrap_err().code,
            "NOT_ACCEPTABLE"
        );
    }

    #[test]
    fn reads_get_parameters() {
        let request = GraphqlRequest::from_params(GetParams {
            query: Some("{ a }".into()),
            operation_name: Some(String::new()),
            variables: Some(r#"{"x": 1}"#.into()),
            extensions: None,
        })
        .unwrap();
        assert_eq!(request.variables.unwrap()["x"], 1);
        assert_eq!(request.operation_name, None);
        let err = GraphqlRequest::from_params(GetParams {
            variables: Some("[1]".into()),
            ..GetParams::default()
        })
        .unwrap_err();
        assert_eq!(err.code, "BAD_REQUEST");
        assert!(GraphqlRequest::from_json(b"{\"query\": 1}").is_err());
    }
}

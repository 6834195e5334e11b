//! The Administration API's conventions around every resource: the path and query of a
//! request, the versioned media type (`application/vnd.atlas.DATE+json`) a client asks
//! for and the 406 for a version a resource lacks, `pretty`, `envelope`, and the paging
//! of lists (`itemsPerPage`, `pageNum`, `includeCount`).

use serde_json::{json, Map, Value};
use zeroize::Zeroizing;

use super::error::ApiError;
use crate::http::Response;

/// The resource versions atrest serves, each with its media type.
const MEDIA_TYPES: &[(&str, &str)] = &[
    ("2023-01-01", "application/vnd.atlas.2023-01-01+json"),
    ("2023-02-01", "application/vnd.atlas.2023-02-01+json"),
    ("2024-08-05", "application/vnd.atlas.2024-08-05+json"),
    ("2024-10-23", "application/vnd.atlas.2024-10-23+json"),
];

/// What an error body is sent as.
const ERROR_MEDIA_TYPE: &str = "application/json";

/// The version a request asks for (its `Accept` header) among those a resource has, `served`
/// (oldest first). A client that names none (no header, `application/json`, `*/*`) gets
/// the oldest; one that names only versions the resource lacks gets Atlas's 406.
pub fn negotiate(accept: Option<&str>, served: &[&'static str]) -> Result<&'static str, ApiError> {
    let oldest = served.first().copied().unwrap_or("2023-01-01");
    let Some(accept) = accept else {
        return Ok(oldest);
    };
    let mut named = Vec::new();
    let mut generic = false;
    for range in accept.split(',') {
        let media = range.split(';').next().unwrap_or_default().trim();
        match media
            .strip_prefix("application/vnd.atlas.")
            .and_then(|m| m.strip_suffix("+json"))
        {
            Some(date) => named.push(date),
            None => generic |= matches!(media, "application/json" | "*/*" | "application/*"),
        }
    }
    if let Some(version) = served.iter().copied().find(|v| named.contains(v)) {
        return Ok(version);
    }
    if named.is_empty() || generic {
        return Ok(oldest);
    }
    Err(ApiError::new(
        406,
        "INVALID_VERSION_DATE",
        format!(
            "This resource has no version {}; it is served at {}.",
            named.join(", "),
            served.join(", ")
        ),
    )
    .with_parameters(&named))
}

fn media_type(version: &str) -> &'static str {
    MEDIA_TYPES
        .iter()
        .find(|(v, _)| *v == version)
        .map_or("application/json", |(_, m)| m)
}

/// A request's query parameters, percent-decoded.
#[derive(Debug, Default)]
pub struct Query(Vec<(String, String)>);

impl Query {
    /// Parses `a=1&b=two`; a malformed escape is a 400.
    pub fn parse(query: &str) -> Result<Query, ApiError> {
        let mut pairs = Vec::new();
        for part in query.split('&').filter(|p| !p.is_empty()) {
            let (name, value) = part.split_once('=').unwrap_or((part, ""));
            pairs.push((decode(name)?, decode(value)?));
        }
        Ok(Query(pairs))
    }

    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `name` (a repeated parameter).
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// Boolean `name`, `default` when absent.
    pub fn flag(&self, name: &str, default: bool) -> Result<bool, ApiError> {
        match self.get(name) {
            None => Ok(default),
            Some("true") => Ok(true),
            Some("false") => Ok(false),
            Some(other) => Err(ApiError::validation(format!(
                "Query parameter {name} must be true or false, not {other:?}."
            ))
            .with_parameters(&[name])),
        }
    }

    /// Integer `name` in `min..=max`, `default` when absent.
    pub fn int(&self, name: &str, default: u64, min: u64, max: u64) -> Result<u64, ApiError> {
        let Some(text) = self.get(name) else {
            return Ok(default);
        };
        match text.parse::<u64>() {
            Ok(n) if (min..=max).contains(&n) => Ok(n),
            _ => Err(ApiError::validation(format!(
                "Query parameter {name} must be an integer from {min} to {max}, not {text:?}."
            ))
            .with_parameters(&[name])),
        }
    }
}

fn decode(s: &str) -> Result<String, ApiError> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'%' => {
                let byte = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| {
                        ApiError::validation("Malformed percent-encoding in the query.")
                    })?;
                out.push(byte);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| ApiError::validation("The query is not UTF-8."))
}

/// How a response is written: `pretty`, `envelope`, and the version it is in.
#[derive(Debug, Clone, Copy)]
pub struct Style {
    /// `pretty=true`.
    pub pretty: bool,
    /// `envelope=true`.
    pub envelope: bool,
    /// The media type's version.
    pub version: &'static str,
}

impl Style {
    /// The style `query` asks for, in `version`.
    pub fn of(query: &Query, version: &'static str) -> Result<Style, ApiError> {
        Ok(Style {
            pretty: query.flag("pretty", false)?,
            envelope: query.flag("envelope", false)?,
            version,
        })
    }

    /// `body` with `status`: under an envelope, status 200 and the status in the body (a
    /// list's own object, anything else wrapped as `content`).
    pub fn answer(&self, status: u16, body: Option<Value>) -> Response {
        let (status, body) = match (self.envelope, body) {
            (false, body) => (status, body),
            (true, Some(Value::Object(mut list))) if list.contains_key("results") => {
                list.insert("status".into(), json!(status));
                (200, Some(Value::Object(list)))
            }
            (true, body) => {
                let mut wrapped = Map::new();
                wrapped.insert("status".into(), json!(status));
                wrapped.insert("content".into(), body.unwrap_or(Value::Null));
                (200, Some(Value::Object(wrapped)))
            }
        };
        respond(status, media_type(self.version), body.as_ref(), self.pretty)
    }

    /// `error`, as Atlas sends it.
    pub fn error(&self, error: &ApiError) -> Response {
        if self.envelope {
            let mut wrapped = Map::new();
            wrapped.insert("status".into(), json!(error.status));
            wrapped.insert("content".into(), error.body());
            return respond(
                200,
                ERROR_MEDIA_TYPE,
                Some(&Value::Object(wrapped)),
                self.pretty,
            );
        }
        error_response(error, self.pretty)
    }
}

/// `error` before a style is known (authentication, routing, a bad query).
pub fn error_response(error: &ApiError, pretty: bool) -> Response {
    respond(error.status, ERROR_MEDIA_TYPE, Some(&error.body()), pretty)
}

fn respond(
    status: u16,
    content_type: &'static str,
    body: Option<&Value>,
    pretty: bool,
) -> Response {
    let bytes = match body {
        None => Vec::new(),
        Some(v) if pretty => serde_json::to_vec_pretty(v).unwrap_or_default(),
        Some(v) => serde_json::to_vec(v).unwrap_or_default(),
    };
    Response {
        status,
        content_type,
        headers: Vec::new(),
        body: Zeroizing::new(bytes),
    }
}

/// One page of `items` as Atlas lists them: `results`, `totalCount` (unless
/// `includeCount=false`) and `links`.
pub fn page(items: Vec<Value>, query: &Query) -> Result<Value, ApiError> {
    let per_page = query.int("itemsPerPage", 100, 1, 500)?;
    let page_num = query.int("pageNum", 1, 1, u64::from(u32::MAX))?;
    let include_count = query.flag("includeCount", true)?;
    let total = items.len();
    let skip = usize::try_from((page_num - 1).saturating_mul(per_page)).unwrap_or(usize::MAX);
    let take = usize::try_from(per_page).unwrap_or(usize::MAX);
    let results: Vec<Value> = items.into_iter().skip(skip).take(take).collect();
    let mut body = Map::new();
    body.insert("links".into(), json!([]));
    body.insert("results".into(), Value::Array(results));
    if include_count {
        body.insert("totalCount".into(), json!(total));
    }
    Ok(Value::Object(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_negotiated_as_atlas_does() {
        let served = ["2024-08-05", "2024-10-23"];
        assert_eq!(negotiate(None, &served), Ok("2024-08-05"));
        assert_eq!(
            negotiate(Some("application/json"), &served),
            Ok("2024-08-05")
        );
        assert_eq!(
            negotiate(Some("application/vnd.atlas.2024-10-23+json"), &served),
            Ok("2024-10-23")
        );
        let refused =
            negotiate(Some("application/vnd.atlas.2023-01-01+json"), &served).unwrap_err();
        assert_eq!(
            (refused.status, refused.code),
            (406, "INVALID_VERSION_DATE")
        );
        let unknown = negotiate(Some("application/vnd.atlas.1999-01-01+json"), &served);
        assert_eq!(unknown.unwrap_err().status, 406);
    }

    #[test]
    fn pages_count_and_slice() {
        let items: Vec<Value> = (0..7).map(|i| json!(i)).collect();
        let q = Query::parse("itemsPerPage=3&pageNum=3").unwrap();
        assert_eq!(page(items.clone(), &q).unwrap()["results"], json!([6]));
        assert_eq!(page(items.clone(), &q).unwrap()["totalCount"], json!(7));
        let q = Query::parse("includeCount=false").unwrap();
        assert!(page(items.clone(), &q).unwrap().get("totalCount").is_none());
        for bad in [
            "itemsPerPage=0",
            "itemsPerPage=501",
            "pageNum=0",
            "pageNum=x",
        ] {
            let q = Query::parse(bad).unwrap();
            assert_eq!(page(items.clone(), &q).unwrap_err().status, 400, "{bad}");
        }
    }

    #[test]
    fn queries_decode_and_refuse_bad_escapes() {
        let q = Query::parse("a=x%20y&b=1+2&c&a=again").unwrap();
        assert_eq!(q.get("a"), Some("x y"));
        assert_eq!(q.all("a"), ["x y", "again"]);
        assert_eq!(q.get("b"), Some("1 2"));
        assert_eq!(q.get("c"), Some(""));
        for bad in ["a=%", "a=%zz", "a=%ff"] {
            assert!(Query::parse(bad).is_err(), "{bad}");
        }
    }
}

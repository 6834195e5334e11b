//! `/atrest/v1/...`: the controls a test needs and Atlas does not have, under a path that
//! is plainly not Atlas's. Same digest authentication; changes need a Project Owner key.
//! Each control acts on the organization's home project, or on the project named by
//! `?groupId=ID`; the clock is the whole organization's.
//!
//! | method and path | does |
//! |---|---|
//! | `GET /atrest/v1/status` | the project as `atrest project status --json` shows it (shutdown, queue, last check) |
//! | `POST /atrest/v1/clock` `{"advance": "90d"}` | moves emulator time forward |
//! | `POST /atrest/v1/tick` | runs what emulator time has made due (validity check, rotations, retention) |
//! | `POST /atrest/v1/check` | runs the validity check now (Atlas's "Try Again") |
//! | `PUT /atrest/v1/kmsFaults` `{"fault": "Unavailable", "failNext": 3}` or `{"fault": ..., "probability": 0.5, "seed": 7}` | fails the project's KMS calls |
//! | `DELETE /atrest/v1/kmsFaults` | stops failing them |
//! | `GET /atrest/v1/alerts` | every alert as it fired, atrest's own included |

use std::time::Duration;

use serde::Serialize;
use serde_json::{json, Value};

use super::body::{check_members, string};
use super::error::ApiError;
use super::routes::cannot_access;
use super::wire::Style;
use super::{AtlasApi, Project};
use crate::control::project::ProjectRole;
use crate::control::Root;
use crate::http::{Request, Response};
use crate::kms::Fault;

/// Where the emulator's controls live.
pub(super) const PREFIX: &str = "/atrest/v1/";

fn to_json(value: impl Serialize) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

fn body(request: &Request<'_>) -> Result<serde_json::Map<String, Value>, ApiError> {
    if request.body.iter().all(u8::is_ascii_whitespace) {
        return Ok(serde_json::Map::new());
    }
    match serde_json::from_slice(request.body) {
        Ok(Value::Object(object)) => Ok(object),
        _ => Err(ApiError::new(
            400,
            "INVALID_JSON",
            "The request body must be a JSON object.",
        )),
    }
}

fn fault(name: &str) -> Result<Fault, ApiError> {
    Ok(match name {
        "Unavailable" => Fault::Unavailable,
        "Throttled" => Fault::Throttled,
        "AccessDenied" => Fault::AccessDenied,
        "Unrecognized" => Fault::Unrecognized,
        other => {
            return Err(ApiError::validation(format!(
                "No fault {other}: Unavailable, Throttled, AccessDenied or Unrecognized."
            )))
        }
    })
}

pub(super) fn handle(
    api: &AtlasApi,
    key: &str,
    request: &Request<'_>,
    path: &str,
    query: &super::wire::Query,
) -> Response {
    let style = Style {
        pretty: query.flag("pretty", false).unwrap_or(false),
        envelope: false,
        version: "2023-01-01",
    };
    let project = match query.get("groupId") {
        Some(group) => api.project(group),
        None => Ok(Project::Home(api.root())),
    };
    let outcome = project.and_then(|project| {
        let settings = project.require_settings()?;
        let role = settings
            .project
            .role_of(key)
            .map_err(|_| cannot_access(&settings.project.id))?;
        if request.method != "GET" && role != ProjectRole::Owner {
            return Err(ApiError::new(
                401,
                "USER_UNAUTHORIZED",
                format!(
                    "The emulator's controls need a Project Owner API key; {key} has the {} role.",
                    role.atlas_name()
                ),
            ));
        }
        run(api, &project, request, path)
    });
    match outcome {
        Ok((status, body)) => {
            let mut response = style.answer(status, body);
            response.content_type = "application/json";
            response
        }
        Err(e) => style.error(&e),
    }
}

fn run(
    api: &AtlasApi,
    root: &Root,
    request: &Request<'_>,
    path: &str,
) -> Result<(u16, Option<Value>), ApiError> {
    let ok = |value: Value| Ok((200, Some(value)));
    match (request.method, path) {
        ("GET", "status") => ok(to_json(root.project_status()?)),
        ("GET", "alerts") => ok(to_json(root.alerts()?)),
        ("POST", "clock") => {
            let body = body(request)?;
            check_members(&body, &["advance"], &[])?;
            let by = match string(&body, "advance")? {
                Some(text) => humantime::parse_duration(text).map_err(|e| {
                    ApiError::validation(format!(
                        "advance must be a duration such as \"90d\" or \"15m\": {e}"
                    ))
                })?,
                None => Duration::ZERO,
            };
            root.advance_clock(by)?;
            ok(json!({ "now": root.clock().now().to_string() }))
        }
        ("POST", "tick") => ok(to_json(root.tick()?)),
        ("POST", "check") => ok(to_json(root.check()?)),
        ("PUT", "kmsFaults") => {
            let body = body(request)?;
            check_members(&body, &["fault", "failNext", "probability", "seed"], &[])?;
            let kind = fault(string(&body, "fault")?.unwrap_or("Unavailable"))?;
            match (body.get("failNext"), body.get("probability")) {
                (Some(n), None) => {
                    let n = n
                        .as_u64()
                        .ok_or_else(|| ApiError::validation("failNext must be a whole number."))?;
                    api.faults.fail_next(n, kind);
                }
                (None, Some(p)) => {
                    let p = p
                        .as_f64()
                        .ok_or_else(|| ApiError::validation("probability must be a number."))?;
                    let seed = body.get("seed").and_then(Value::as_u64).unwrap_or(0);
                    api.faults.fail_randomly(p, kind, seed);
                }
                _ => {
                    return Err(ApiError::validation(
                        "Give failNext or probability, not both.",
                    ))
                }
            }
            ok(json!({ "injected": api.faults.injected() }))
        }
        ("DELETE", "kmsFaults") => {
            api.faults.heal();
            Ok((204, None))
        }
        (method, path) => Err(ApiError::not_found(format!(
            "No emulator control {method} {PREFIX}{path}."
        ))),
    }
}

//! `alerts` (the ones Atlas raises for encryption at rest: the rotation reminder and an
//! invalid key, open while their condition holds, acknowledged until a time) and `events` (the project's activity
//! feed under Atlas's event type names, filtered as Atlas filters them).

use serde_json::{json, Value};

use super::body::{boolean, string};
use super::error::ApiError;
use super::project::{derived_id, org_id};
use super::routes::{Call, Outcome};
use super::wire::page;
use crate::clock::Timestamp;
use crate::control::project::Alert;
use crate::control::{Event, Settings, ALERT_KEY_INVALID, ALERT_NEEDS_ROTATION, ATLAS_ALERTS};

fn alert_id(settings: &Settings, index: usize) -> String {
    derived_id(&format!("alert {index} of {}", settings.project.id))
}

/// Whether alert `index` is the latest of its kind and its condition still holds.
fn is_open(settings: &Settings, index: usize, alert: &Alert) -> bool {
    let p = &settings.project;
    let latest = p
        .alerts
        .iter()
        .rposition(|a| a.event_type_name == alert.event_type_name)
        == Some(index);
    let holds = match alert.event_type_name.as_str() {
        ALERT_NEEDS_ROTATION => p.encryption.rotation_reminded,
        ALERT_KEY_INVALID => p.validity.shut_down.is_some(),
        _ => false,
    };
    latest && holds
}

pub(super) fn alert_view(settings: &Settings, index: usize, alert: &Alert) -> Value {
    let open = is_open(settings, index, alert);
    let mut view = json!({
        "id": alert_id(settings, index),
        "groupId": settings.project.id,
        "eventTypeName": alert.event_type_name,
        "created": alert.created.to_string(),
        "updated": alert.created.to_string(),
        "status": if open { "OPEN" } else { "CLOSED" },
        "links": [],
    });
    if let Some(fields) = view.as_object_mut() {
        if !open {
            fields.insert("resolved".into(), json!(alert.created.to_string()));
        }
        if let Some(config) = &alert.alert_config_id {
            fields.insert("alertConfigId".into(), json!(config));
        }
        if let Some(acknowledged) = &alert.acknowledged {
            fields.insert(
                "acknowledgedUntil".into(),
                json!(acknowledged.until.to_string()),
            );
            if let Some(comment) = &acknowledged.comment {
                fields.insert("acknowledgementComment".into(), json!(comment));
            }
        }
    }
    view
}

pub(super) fn atlas_alerts(settings: &Settings) -> impl Iterator<Item = (usize, &Alert)> {
    settings
        .project
        .alerts
        .iter()
        .enumerate()
        .filter(|(_, a)| ATLAS_ALERTS.contains(&a.event_type_name.as_str()))
}

pub(super) fn list_alerts(call: &Call<'_>) -> Outcome {
    let settings = call.settings()?;
    let wanted = match call.query.get("status") {
        None => None,
        Some(s @ ("OPEN" | "CLOSED" | "TRACKING")) => Some(s),
        Some(other) => {
            return Err(ApiError::validation(format!("No alert status {other}."))
                .with_parameters(&["status"]))
        }
    };
    let views = atlas_alerts(&settings)
        .map(|(i, a)| alert_view(&settings, i, a))
        .filter(|v| wanted.is_none_or(|w| v["status"] == w))
        .collect();
    Ok((200, Some(page(views, call.query)?)))
}

/// Alert `id` of the project, as Atlas answers an unknown one.
pub(super) fn find_alert<'s>(
    settings: &'s Settings,
    id: &str,
) -> Result<(usize, &'s Alert), ApiError> {
    atlas_alerts(settings)
        .find(|(i, _)| alert_id(settings, *i) == id)
        .ok_or_else(|| {
            ApiError::new(
                404,
                "ALERT_NOT_FOUND",
                format!(
                    "No alert with ID {id} exists in group {}.",
                    settings.project.id
                ),
            )
            .with_parameters(&[id, &settings.project.id])
        })
}

/// The longest acknowledgement comment Atlas takes.
const MAX_COMMENT_CHARS: usize = 200;

/// Acknowledges an alert until a time, or takes the acknowledgement back.
pub(super) fn acknowledge_alert(call: &Call<'_>) -> Outcome {
    let body = call.object(
        &[
            "acknowledgedUntil",
            "acknowledgementComment",
            "unacknowledgeAlert",
        ],
        &["links"],
    )?;
    let settings = call.settings()?;
    let (index, _) = find_alert(&settings, call.param(1))?;
    let acknowledgement = match boolean(&body, "unacknowledgeAlert")? {
        Some(true) => None,
        _ => {
            let until = string(&body, "acknowledgedUntil")?
                .ok_or_else(|| ApiError::missing("acknowledgedUntil"))?;
            let comment = string(&body, "acknowledgementComment")?;
            if comment.is_some_and(|c| c.chars().count() > MAX_COMMENT_CHARS) {
                return Err(ApiError::validation(format!(
                    "acknowledgementComment is limited to {MAX_COMMENT_CHARS} characters."
                ))
                .with_parameters(&["acknowledgementComment"]));
            }
            Some((
                parse_date(until, "acknowledgedUntil")?,
                comment.map(str::to_string),
            ))
        }
    };
    let alert = call
        .root
        .acknowledge_alert(call.acting, index, acknowledgement)?;
    Ok((200, Some(alert_view(&call.settings()?, index, &alert))))
}

pub(super) fn get_alert(call: &Call<'_>) -> Outcome {
    let settings = call.settings()?;
    let (index, alert) = find_alert(&settings, call.param(1))?;
    Ok((200, Some(alert_view(&settings, index, alert))))
}

fn event_id(settings: &Settings, event: &Event) -> String {
    derived_id(&format!("event {} of {}", event.seq, settings.project.id))
}

fn event_view(settings: &Settings, org: &str, event: &Event) -> Value {
    let mut view = json!({
        "id": event_id(settings, event),
        "groupId": settings.project.id,
        "orgId": org,
        "eventTypeName": event.event_type_name,
        "created": event.created.to_string(),
        "isGlobalAdmin": false,
        "links": [],
    });
    if let Some(fields) = view.as_object_mut() {
        if let Some(cluster) = &event.cluster_name {
            fields.insert("clusterName".into(), json!(cluster));
        }
        let by_key = event.by.as_ref().filter(|by| {
            settings
                .project
                .api_keys
                .iter()
                .any(|k| &k.public_key == *by)
        });
        if let Some(key) = by_key {
            fields.insert("publicKey".into(), json!(key));
        }
    }
    view
}

fn date(call: &Call<'_>, name: &str) -> Result<Option<Timestamp>, ApiError> {
    call.query
        .get(name)
        .map(|text| parse_date(text, name))
        .transpose()
}

/// `text`, the value of `name`, as an ISO 8601 date and time.
fn parse_date(text: &str, name: &str) -> Result<Timestamp, ApiError> {
    humantime::parse_rfc3339_weak(text)
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| Timestamp::from_millis(u64::try_from(d.as_millis()).unwrap_or(u64::MAX)))
        .ok_or_else(|| {
            ApiError::validation(format!("{name} must be an ISO 8601 date and time."))
                .with_parameters(&[name])
        })
}

pub(super) fn list_events(call: &Call<'_>) -> Outcome {
    let settings = call.settings()?;
    let org = org_id(call)?;
    let types = call.query.all("eventType");
    let excluded = call.query.all("excludedEventType");
    let clusters = call.query.all("clusterNames");
    let (min, max) = (date(call, "minDate")?, date(call, "maxDate")?);
    // Newest first, as Atlas lists events.
    let views = settings
        .project
        .events
        .iter()
        .rev()
        .filter(|e| types.is_empty() || types.contains(&e.event_type_name.as_str()))
        .filter(|e| !excluded.contains(&e.event_type_name.as_str()))
        .filter(|e| {
            clusters.is_empty()
                || e.cluster_name
                    .as_deref()
                    .is_some_and(|c| clusters.contains(&c))
        })
        .filter(|e| min.is_none_or(|m| e.created >= m) && max.is_none_or(|m| e.created <= m))
        .map(|e| event_view(&settings, &org, e))
        .collect();
    Ok((200, Some(page(views, call.query)?)))
}

pub(super) fn get_event(call: &Call<'_>) -> Outcome {
    let settings = call.settings()?;
    let org = org_id(call)?;
    let id = call.param(1);
    settings
        .project
        .events
        .iter()
        .find(|e| event_id(&settings, e) == id)
        .map(|e| (200, Some(event_view(&settings, &org, e))))
        .ok_or_else(|| {
            ApiError::new(
                404,
                "EVENT_NOT_FOUND",
                format!(
                    "No event with ID {id} exists for group {}.",
                    settings.project.id
                ),
            )
            .with_parameters(&[id, &settings.project.id])
        })
}

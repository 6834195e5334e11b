//! `alertConfigs`: the configurations of the alerts Atlas raises for encryption at rest
//! (the CMK rotation reminder with its threshold in days, the invalid-key alert), listed,
//! created, replaced, toggled and deleted; and the alerts each one raised.

use serde_json::{json, Map, Value};

use super::activity::{alert_view, atlas_alerts, find_alert};
use super::body::{boolean, string};
use super::error::ApiError;
use super::routes::{Call, Outcome};
use super::wire::page;
use crate::control::{AlertConfig, AlertConfigSpec, Settings};

/// Members a configuration's body may set; the others are the server's.
const WRITABLE: &[&str] = &[
    "eventTypeName",
    "enabled",
    "notifications",
    "threshold",
    "matchers",
    "metricThreshold",
    "severityOverride",
];
const READ_ONLY: &[&str] = &["id", "groupId", "created", "updated", "links"];
/// Atlas's fewest minutes between two notifications.
const MIN_INTERVAL_MINUTES: u64 = 5;
/// Atlas's most notification targets per configuration.
const MAX_NOTIFICATIONS: usize = 25;

fn view(settings: &Settings, config: &AlertConfig) -> Value {
    let mut view = json!({
        "id": config.id,
        "groupId": settings.project.id,
        "eventTypeName": config.event_type_name,
        "enabled": config.enabled,
        "created": config.created.to_string(),
        "updated": config.updated.to_string(),
        "matchers": [],
        "notifications": config.notifications,
        "links": [],
    });
    if let (Some(days), Some(fields)) = (config.threshold_days, view.as_object_mut()) {
        fields.insert(
            "threshold".into(),
            json!({ "operator": "GREATER_THAN", "threshold": days, "units": "DAYS" }),
        );
    }
    view
}

fn find(settings: &Settings, id: &str) -> Result<AlertConfig, ApiError> {
    settings
        .project
        .alert_configs()
        .into_iter()
        .find(|c| c.id == id)
        .ok_or_else(|| {
            ApiError::new(
                404,
                "ALERT_CONFIG_NOT_FOUND",
                format!(
                    "No alert configuration with ID {id} exists in group {}.",
                    settings.project.id
                ),
            )
            .with_parameters(&[id, &settings.project.id])
        })
}

/// The body of a POST or PUT, in Atlas's words where it is wrong.
fn spec(call: &Call<'_>) -> Result<AlertConfigSpec, ApiError> {
    let body = call.object(WRITABLE, READ_ONLY)?;
    let event =
        string(&body, "eventTypeName")?.ok_or_else(|| ApiError::missing("eventTypeName"))?;
    if body
        .get("matchers")
        .is_some_and(|m| m.as_array().is_none_or(|m| !m.is_empty()))
    {
        return Err(ApiError::validation(
            "atrest's encryption-at-rest alerts match every object: give no matchers.",
        )
        .with_parameters(&["matchers"]));
    }
    for member in ["metricThreshold", "severityOverride"] {
        if body.get(member).is_some_and(|v| !v.is_null()) {
            return Err(ApiError::new(
                400,
                "METRIC_THRESHOLD_PRESENT",
                format!("{member} does not apply to {event}."),
            )
            .with_parameters(&[member]));
        }
    }
    Ok(AlertConfigSpec {
        event_type_name: event.to_string(),
        enabled: boolean(&body, "enabled")?.unwrap_or(false),
        threshold_days: threshold(&body, event)?,
        notifications: notifications(&body)?,
    })
}

/// `threshold`: `GREATER_THAN` some whole number of `DAYS`.
fn threshold(body: &Map<String, Value>, event: &str) -> Result<Option<u64>, ApiError> {
    let Some(threshold) = body.get("threshold").filter(|t| !t.is_null()) else {
        return Ok(None);
    };
    let operator = threshold.get("operator").and_then(Value::as_str);
    if operator.is_some_and(|o| o != "GREATER_THAN") {
        return Err(ApiError::new(
            400,
            "INVALID_OPERATOR_FOR_EVENT_TYPE",
            format!(
                "Operator {} is not compatible with event type {event}.",
                operator.unwrap_or_default()
            ),
        ));
    }
    let units = threshold.get("units").and_then(Value::as_str);
    if units.is_some_and(|u| u != "DAYS") {
        return Err(ApiError::new(
            400,
            "UNITS_MISMATCH",
            format!(
                "Threshold units {} cannot be converted to DAYS.",
                units.unwrap_or_default()
            ),
        ));
    }
    match threshold.get("threshold").and_then(Value::as_f64) {
        Some(days) if days >= 1.0 && days.fract() == 0.0 && days <= u32::MAX as f64 => {
            Ok(Some(days as u64))
        }
        _ => Err(ApiError::validation(
            "threshold.threshold must be a whole number of days, 1 or more.",
        )
        .with_parameters(&["threshold"])),
    }
}

/// `notifications`: 1 to 25 targets, each with a `typeName`, none more often than every
/// five minutes.
fn notifications(body: &Map<String, Value>) -> Result<Vec<Value>, ApiError> {
    let list = match body.get("notifications") {
        Some(Value::Array(list)) if !list.is_empty() => list,
        _ => {
            return Err(ApiError::new(
                400,
                "MISSING_NOTIFICATIONS",
                "At least one notification must be specified for an alert configuration.",
            ))
        }
    };
    if list.len() > MAX_NOTIFICATIONS {
        return Err(ApiError::new(
            400,
            "MAX_NOTIFICATIONS_PER_ALERT_EXCEEDED",
            format!("An alert configuration takes at most {MAX_NOTIFICATIONS} notifications."),
        ));
    }
    for target in list {
        if target.get("typeName").and_then(Value::as_str).is_none() {
            return Err(ApiError::validation("Each notification needs a typeName.")
                .with_parameters(&["notifications"]));
        }
        if target
            .get("intervalMin")
            .and_then(Value::as_u64)
            .is_some_and(|m| m < MIN_INTERVAL_MINUTES)
        {
            return Err(ApiError::new(
                400,
                "NOTIFICATION_INTERVAL_OUT_OF_RANGE",
                "Notifications must have an interval of at least 5 minutes.",
            ));
        }
    }
    Ok(list.clone())
}

pub(super) fn list(call: &Call<'_>) -> Outcome {
    let settings = call.settings()?;
    let views = settings
        .project
        .alert_configs()
        .iter()
        .map(|c| view(&settings, c))
        .collect();
    Ok((200, Some(page(views, call.query)?)))
}

pub(super) fn get(call: &Call<'_>) -> Outcome {
    let settings = call.settings()?;
    Ok((200, Some(view(&settings, &find(&settings, call.param(1))?))))
}

pub(super) fn create(call: &Call<'_>) -> Outcome {
    let config = call.root.create_alert_config(call.acting, spec(call)?)?;
    Ok((200, Some(view(&call.settings()?, &config))))
}

pub(super) fn replace(call: &Call<'_>) -> Outcome {
    let config = call
        .root
        .update_alert_config(call.acting, call.param(1), spec(call)?)?;
    Ok((200, Some(view(&call.settings()?, &config))))
}

pub(super) fn toggle(call: &Call<'_>) -> Outcome {
    let body = call.object(&["enabled"], &[])?;
    let enabled = boolean(&body, "enabled")?.unwrap_or(false);
    let config = call
        .root
        .enable_alert_config(call.acting, call.param(1), enabled)?;
    Ok((200, Some(view(&call.settings()?, &config))))
}

pub(super) fn delete(call: &Call<'_>) -> Outcome {
    call.root.delete_alert_config(call.acting, call.param(1))?;
    Ok((204, None))
}

/// The alerts configuration `id` raised.
pub(super) fn alerts_of(call: &Call<'_>) -> Outcome {
    let settings = call.settings()?;
    let config = find(&settings, call.param(1))?;
    let views = atlas_alerts(&settings)
        .filter(|(_, a)| a.alert_config_id.as_deref() == Some(config.id.as_str()))
        .map(|(i, a)| alert_view(&settings, i, a))
        .collect();
    Ok((200, Some(page(views, call.query)?)))
}

/// The configuration that raised alert `id`.
pub(super) fn configs_of_alert(call: &Call<'_>) -> Outcome {
    let settings = call.settings()?;
    let (_, alert) = find_alert(&settings, call.param(1))?;
    let views = settings
        .project
        .alert_configs()
        .iter()
        .filter(|c| alert.alert_config_id.as_deref() == Some(c.id.as_str()))
        .map(|c| view(&settings, c))
        .collect();
    Ok((200, Some(page(views, call.query)?)))
}

//! Alert configurations, as Atlas's API keeps them: which of the alerts Atlas raises for
//! encryption at rest are on, and when the CMK rotation reminder fires. A project starts
//! with Atlas's defaults (the reminder after `rotation_reminder_days`, 90 unless set, and
//! the invalid-key alert, both on) and keeps its own list once one is changed. The
//! notification targets are kept as given: atrest sends no notifications, it raises the
//! alerts that `alerts` and Atlas's API show, which Atlas's API may acknowledge.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::ids::atlas_id;
use super::project::{Acknowledgement, Alert, ProjectState};
use super::{ControlError, Root, ALERT_KEY_INVALID, ALERT_NEEDS_ROTATION};
use crate::clock::{Clock, Timestamp};

/// The alerts Atlas raises for encryption at rest with AWS KMS: the ones a configuration
/// turns on and off.
pub const ATLAS_ALERTS: &[&str] = &[ALERT_NEEDS_ROTATION, ALERT_KEY_INVALID];

/// One alert configuration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AlertConfig {
    /// Atlas's id (24 hex digits).
    pub id: String,
    /// The alert it raises: one of [`ATLAS_ALERTS`].
    pub event_type_name: String,
    /// Whether it raises anything.
    pub enabled: bool,
    /// For the rotation reminder: days after the CMK was set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold_days: Option<u64>,
    /// Where Atlas would notify, as the caller gave them.
    #[serde(default)]
    pub notifications: Vec<Value>,
    /// When it was made.
    pub created: Timestamp,
    /// When it last changed.
    pub updated: Timestamp,
}

/// What a new or replaced configuration asks for.
#[derive(Clone, Debug, PartialEq)]
pub struct AlertConfigSpec {
    /// The alert it raises.
    pub event_type_name: String,
    /// Whether it raises anything.
    pub enabled: bool,
    /// Days, for the rotation reminder (required there, refused elsewhere).
    pub threshold_days: Option<u64>,
    /// Notification targets, kept as given.
    pub notifications: Vec<Value>,
}

impl AlertConfigSpec {
    /// A configuration of this spec, made (or last changed) `now`.
    fn made(self, id: String, created: Timestamp, now: Timestamp) -> AlertConfig {
        AlertConfig {
            id,
            event_type_name: self.event_type_name,
            enabled: self.enabled,
            threshold_days: self.threshold_days,
            notifications: self.notifications,
            created,
            updated: now,
        }
    }

    fn check(&self) -> Result<(), ControlError> {
        let event = self.event_type_name.as_str();
        if !ATLAS_ALERTS.contains(&event) {
            return Err(ControlError::UnsupportedAlertEvent {
                event: event.to_string(),
            });
        }
        match (event, self.threshold_days) {
            (ALERT_NEEDS_ROTATION, None | Some(0)) | (ALERT_KEY_INVALID, Some(_)) => {
                Err(ControlError::AlertThreshold {
                    event: event.to_string(),
                })
            }
            _ => Ok(()),
        }
    }
}

/// The id of a project's default configuration for `event`, stable without being stored:
/// the project's id with each hex digit moved on by the event's place among
/// [`ATLAS_ALERTS`] (plus one), so it is neither the project's id nor the other default's.
fn default_config_id(project: &str, event: &str) -> String {
    let place = ATLAS_ALERTS.iter().position(|e| *e == event).unwrap_or(0);
    let shift = u32::try_from(place).unwrap_or(0) + 1;
    project
        .chars()
        .map(|c| {
            c.to_digit(16)
                .and_then(|d| char::from_digit((d + shift) % 16, 16))
                .unwrap_or(c)
        })
        .collect()
}

impl ProjectState {
    /// The alert configurations: the project's own, or Atlas's defaults.
    pub fn alert_configs(&self) -> Vec<AlertConfig> {
        if let Some(configs) = &self.alert_configs {
            return configs.clone();
        }
        let since = self.created.unwrap_or(self.encryption.cmk_set_at);
        let default = |event: &str, threshold_days| AlertConfig {
            id: default_config_id(&self.id, event),
            event_type_name: event.to_string(),
            enabled: true,
            threshold_days,
            // Atlas's defaults email the Project Owners.
            notifications: vec![json!({
                "typeName": "GROUP",
                "intervalMin": 60,
                "delayMin": 0,
                "emailEnabled": true,
                "smsEnabled": false,
                "roles": ["GROUP_OWNER"],
            })],
            created: since,
            updated: since,
        };
        vec![
            default(ALERT_NEEDS_ROTATION, Some(self.rotation_reminder_days)),
            default(ALERT_KEY_INVALID, None),
        ]
    }

    /// The enabled configuration that raises `event` first: the rotation reminder's with
    /// the shortest period.
    pub(super) fn raising_config(&self, event: &str) -> Option<AlertConfig> {
        self.alert_configs()
            .into_iter()
            .filter(|c| c.enabled && c.event_type_name == event)
            .min_by_key(|c| c.threshold_days)
    }

    /// Days after the CMK was set before the rotation reminder fires; `None` when no
    /// enabled configuration raises it.
    pub(super) fn reminder_days(&self) -> Option<u64> {
        self.raising_config(ALERT_NEEDS_ROTATION)
            .and_then(|c| c.threshold_days)
    }

    fn own_alert_configs(&mut self) -> &mut Vec<AlertConfig> {
        let configs = self.alert_configs();
        self.alert_configs.get_or_insert(configs)
    }

    fn alert_config_mut(&mut self, id: &str) -> Result<&mut AlertConfig, ControlError> {
        self.own_alert_configs()
            .iter_mut()
            .find(|c| c.id == id)
            .ok_or_else(|| ControlError::UnknownAlertConfig { id: id.to_string() })
    }
}

impl Root {
    /// Adds an alert configuration. Only a Project Owner may.
    pub fn create_alert_config(
        &self,
        acting: &str,
        spec: AlertConfigSpec,
    ) -> Result<AlertConfig, ControlError> {
        spec.check()?;
        let now = self.clock.now();
        self.transact(|s| {
            s.project.require_owner(acting, "configuring alerts")?;
            let config = spec.made(atlas_id(), now, now);
            s.project.own_alert_configs().push(config.clone());
            Ok(config)
        })
    }

    /// Replaces alert configuration `id`'s settings. Only a Project Owner may.
    pub fn update_alert_config(
        &self,
        acting: &str,
        id: &str,
        spec: AlertConfigSpec,
    ) -> Result<AlertConfig, ControlError> {
        spec.check()?;
        let now = self.clock.now();
        self.transact(|s| {
            s.project.require_owner(acting, "configuring alerts")?;
            let config = s.project.alert_config_mut(id)?;
            *config = spec.made(config.id.clone(), config.created, now);
            Ok(config.clone())
        })
    }

    /// Turns alert configuration `id` on or off. Only a Project Owner may.
    pub fn enable_alert_config(
        &self,
        acting: &str,
        id: &str,
        enabled: bool,
    ) -> Result<AlertConfig, ControlError> {
        let now = self.clock.now();
        self.transact(|s| {
            s.project.require_owner(acting, "configuring alerts")?;
            let config = s.project.alert_config_mut(id)?;
            config.enabled = enabled;
            config.updated = now;
            Ok(config.clone())
        })
    }

    /// Acknowledges the project's alert number `index` (oldest first) until `until` with
    /// `comment`, or, given `None`, takes an acknowledgement back. A Project Owner or
    /// Cluster Manager may.
    pub fn acknowledge_alert(
        &self,
        acting: &str,
        index: usize,
        acknowledgement: Option<(Timestamp, Option<String>)>,
    ) -> Result<Alert, ControlError> {
        self.transact(|s| {
            s.project.require_writer(acting, "acknowledging an alert")?;
            let alert = s
                .project
                .alerts
                .get_mut(index)
                .ok_or(ControlError::UnknownAlert { index })?;
            alert.acknowledged = acknowledgement.map(|(until, comment)| Acknowledgement {
                until,
                comment,
                by: acting.to_string(),
            });
            Ok(alert.clone())
        })
    }

    /// Deletes alert configuration `id`: the alert it raised is raised no more (unless
    /// another configuration raises it). Only a Project Owner may.
    pub fn delete_alert_config(&self, acting: &str, id: &str) -> Result<(), ControlError> {
        self.transact(|s| {
            s.project.require_owner(acting, "configuring alerts")?;
            s.project.alert_config_mut(id)?;
            s.project.own_alert_configs().retain(|c| c.id != id);
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Timestamp;

    fn project() -> ProjectState {
        ProjectState::new("p", "owner", Timestamp::from_millis(0))
    }

    #[test]
    fn defaults_follow_the_reminder_period_until_changed() {
        let mut p = project();
        p.rotation_reminder_days = 30;
        assert_eq!(p.reminder_days(), Some(30));
        let id = p.alert_configs()[0].id.clone();
        assert_eq!(
            id,
            project_with_same_id(&p).alert_configs()[0].id,
            "stable ids"
        );
        p.alert_config_mut(&id).unwrap().threshold_days = Some(7);
        assert_eq!(p.reminder_days(), Some(7));
        p.alert_config_mut(&id).unwrap().enabled = false;
        assert_eq!(p.reminder_days(), None, "no enabled reminder, no reminder");
    }

    fn project_with_same_id(p: &ProjectState) -> ProjectState {
        let mut other = project();
        other.id = p.id.clone();
        other.created = p.created;
        other
    }

    #[test]
    fn a_disabled_configuration_raises_nothing() {
        let mut p = project();
        let invalid = p.alert_configs()[1].id.clone();
        p.raise(ALERT_KEY_INVALID, Timestamp::from_millis(1), "x".into());
        assert_eq!(
            p.alerts[0].alert_config_id.as_deref(),
            Some(invalid.as_str())
        );
        p.alert_config_mut(&invalid).unwrap().enabled = false;
        p.raise(ALERT_KEY_INVALID, Timestamp::from_millis(2), "y".into());
        assert_eq!(p.alerts.len(), 1);
        p.raise(
            "NODE_REBUILT_FROM_REPLICA",
            Timestamp::from_millis(3),
            "z".into(),
        );
        assert_eq!(
            p.alerts.len(),
            2,
            "atrest's own alerts take no configuration"
        );
    }

    #[test]
    fn only_the_reminder_takes_a_threshold() {
        let spec = |event: &str, threshold_days| AlertConfigSpec {
            event_type_name: event.into(),
            enabled: true,
            threshold_days,
            notifications: Vec::new(),
        };
        assert!(spec(ALERT_NEEDS_ROTATION, Some(90)).check().is_ok());
        assert!(spec(ALERT_NEEDS_ROTATION, None).check().is_err());
        assert!(spec(ALERT_KEY_INVALID, Some(1)).check().is_err());
        assert!(spec("HOST_DOWN", None).check().is_err());
    }
}

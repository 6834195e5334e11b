//! The project's activity feed: what happened to its encryption at rest, keys, clusters
//! and backups, under Atlas's event type names, as Atlas's events API lists them. Alerts
//! are what needs a person; events are the record of everything, read by the API and the
//! CLI alike. Bounded: the oldest fall off past [`MAX_EVENTS`].

use serde::{Deserialize, Serialize};

use super::project::ProjectState;
use crate::clock::Timestamp;

/// How many events a project keeps.
pub const MAX_EVENTS: usize = 1000;

/// The encryption-at-rest configuration was changed.
pub const EVENT_CONFIGURATION_UPDATED: &str = "ENCRYPTION_AT_REST_CONFIGURATION_UPDATED";
/// A validity check found the key usable.
pub const EVENT_KEY_VALID: &str = "AWS_ENCRYPTION_KEY_VALID";
/// A validity check found the key unusable.
pub const EVENT_KEY_INVALID: &str = "AWS_ENCRYPTION_KEY_INVALID";
/// The project's CMK rotation began: master keys are being re-wrapped.
pub const EVENT_KEY_ROTATION_STARTED: &str = "ENCRYPTION_AT_REST_KEY_ROTATION_STARTED";
/// The project's CMK rotation finished.
pub const EVENT_KEY_ROTATED: &str = "AWS_ENCRYPTION_KEY_ROTATED";
/// A cluster was created.
pub const EVENT_CLUSTER_CREATED: &str = "CLUSTER_CREATED";
/// A cluster was deleted.
pub const EVENT_CLUSTER_DELETED: &str = "CLUSTER_DELETED";
/// A cluster's change (encryption, tier, backup) was done.
pub const EVENT_CLUSTER_UPDATE_COMPLETED: &str = "CLUSTER_UPDATE_COMPLETED";
/// An on-demand snapshot was taken.
pub const EVENT_SNAPSHOT_SUCCESSFUL: &str = "CPS_SNAPSHOT_SUCCESSFUL";
/// A restore finished.
pub const EVENT_RESTORE_SUCCESSFUL: &str = "CPS_RESTORE_SUCCESSFUL";
/// An access role was authorized.
pub const EVENT_ROLE_ADDED: &str = "CLOUD_PROVIDER_ACCESS_AWS_IAM_ROLE_ADDED";
/// An access role was deauthorized.
pub const EVENT_ROLE_DELETED: &str = "CLOUD_PROVIDER_ACCESS_AWS_IAM_ROLE_DELETED";
/// A private endpoint to the KMS was requested.
pub const EVENT_PRIVATE_ENDPOINT_CREATED: &str = "ENCRYPTION_AT_REST_PRIVATE_ENDPOINT_CREATED";
/// A private endpoint to the KMS was deleted.
pub const EVENT_PRIVATE_ENDPOINT_DELETED: &str = "ENCRYPTION_AT_REST_PRIVATE_ENDPOINT_DELETED";

/// One thing that happened.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    /// Its number in the project, from 1: never reused.
    pub seq: u64,
    /// Atlas's event type name.
    pub event_type_name: String,
    /// When.
    pub created: Timestamp,
    /// The cluster it concerns, if one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_name: Option<String>,
    /// Who asked for it (a user or an API key's public half), if anyone did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
}

impl ProjectState {
    /// Records an event of `event_type_name`, at `created`, about `cluster`, asked for by `by`.
    pub fn record(
        &mut self,
        event_type_name: &str,
        created: Timestamp,
        cluster: Option<&str>,
        by: Option<&str>,
    ) {
        let seq = self.events.last().map_or(1, |e| e.seq + 1);
        self.events.push(Event {
            seq,
            event_type_name: event_type_name.to_string(),
            created,
            cluster_name: cluster.map(str::to_string),
            by: by.map(str::to_string),
        });
        let excess = self.events.len().saturating_sub(MAX_EVENTS);
        self.events.drain(..excess);
    }
}

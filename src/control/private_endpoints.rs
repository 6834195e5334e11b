//! Private endpoints from Atlas to the project's KMS (AWS PrivateLink), as Atlas's API
//! runs them: requested while the project requires private networking, they move from
//! INITIATING through PENDING_ACCEPTANCE to ACTIVE as emulator time passes, and a
//! requested deletion is DELETING for a while, then gone. Their status is a function of
//! the clock, so no background work moves them.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::events::{EVENT_PRIVATE_ENDPOINT_CREATED, EVENT_PRIVATE_ENDPOINT_DELETED};
use super::ids::{atlas_id, atlas_region};
use super::{ControlError, Root};
use crate::clock::{Clock, Timestamp};

/// How long a new endpoint is INITIATING.
pub const ENDPOINT_INITIATING: Duration = Duration::from_secs(60);
/// How long after its request an endpoint becomes ACTIVE (PENDING_ACCEPTANCE before).
pub const ENDPOINT_ACTIVE_AFTER: Duration = Duration::from_secs(5 * 60);
/// How long a deleted endpoint is DELETING before it is gone.
pub const ENDPOINT_DELETING: Duration = Duration::from_secs(60);

/// A private endpoint to the KMS.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PrivateEndpoint {
    /// Atlas's id (24 hex digits).
    pub id: String,
    /// The region, as Atlas writes it (US_EAST_1).
    pub region_name: String,
    /// When it was requested.
    pub requested: Timestamp,
    /// When its deletion was requested.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_requested: Option<Timestamp>,
}

/// Where an endpoint is in its life, by Atlas's names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndpointStatus {
    /// Being made.
    Initiating,
    /// Made, waiting to be accepted.
    PendingAcceptance,
    /// In use.
    Active,
    /// Being deleted.
    Deleting,
    /// Deleted.
    Gone,
}

impl EndpointStatus {
    /// Atlas's name.
    pub fn atlas_name(self) -> &'static str {
        match self {
            EndpointStatus::Initiating => "INITIATING",
            EndpointStatus::PendingAcceptance => "PENDING_ACCEPTANCE",
            EndpointStatus::Active => "ACTIVE",
            EndpointStatus::Deleting | EndpointStatus::Gone => "DELETING",
        }
    }
}

impl PrivateEndpoint {
    /// Its status at `now`.
    pub fn status(&self, now: Timestamp) -> EndpointStatus {
        if let Some(asked) = self.deletion_requested {
            return match now.since(asked) < ENDPOINT_DELETING {
                true => EndpointStatus::Deleting,
                false => EndpointStatus::Gone,
            };
        }
        let age = now.since(self.requested);
        if age < ENDPOINT_INITIATING {
            EndpointStatus::Initiating
        } else if age < ENDPOINT_ACTIVE_AFTER {
            EndpointStatus::PendingAcceptance
        } else {
            EndpointStatus::Active
        }
    }
}

impl Root {
    /// The project's private endpoints that are not gone, at emulator time now.
    pub fn private_endpoints(
        &self,
    ) -> Result<Vec<(PrivateEndpoint, EndpointStatus)>, ControlError> {
        let now = self.clock.now();
        let settings = self.require_settings()?;
        Ok(settings
            .project
            .private_endpoints
            .into_iter()
            .map(|e| {
                let status = e.status(now);
                (e, status)
            })
            .filter(|(_, status)| *status != EndpointStatus::Gone)
            .collect())
    }

    /// Requests a private endpoint in `region_name` (Atlas's spelling), which must be the
    /// project's region, where its KMS is. Refused unless the project requires private
    /// networking. Only a Project Owner may.
    pub fn request_private_endpoint(
        &self,
        acting: &str,
        region_name: &str,
    ) -> Result<PrivateEndpoint, ControlError> {
        let now = self.clock.now();
        self.transact(|settings| {
            settings
                .project
                .require_owner(acting, "requesting a private endpoint")?;
            if !settings.project.encryption.require_private_networking {
                return Err(ControlError::PrivateNetworkingOff);
            }
            let region = atlas_region(&settings.region);
            if region_name != region {
                return Err(ControlError::WrongEndpointRegion {
                    given: region_name.to_string(),
                    region,
                });
            }
            let endpoint = PrivateEndpoint {
                id: atlas_id(),
                region_name: region,
                requested: now,
                deletion_requested: None,
            };
            let project = &mut settings.project;
            project
                .private_endpoints
                .retain(|e| e.status(now) != EndpointStatus::Gone);
            project.private_endpoints.push(endpoint.clone());
            project.record(EVENT_PRIVATE_ENDPOINT_CREATED, now, None, Some(acting));
            Ok(endpoint)
        })
    }

    /// Asks for private endpoint `id` to be deleted. Only a Project Owner may.
    pub fn delete_private_endpoint(&self, acting: &str, id: &str) -> Result<(), ControlError> {
        let now = self.clock.now();
        self.transact(|settings| {
            let project = &mut settings.project;
            project.require_owner(acting, "deleting a private endpoint")?;
            let endpoint = project
                .private_endpoints
                .iter_mut()
                .find(|e| e.id == id && e.status(now) != EndpointStatus::Gone)
                .ok_or_else(|| ControlError::UnknownPrivateEndpoint { id: id.to_string() })?;
            if endpoint.deletion_requested.is_none() {
                endpoint.deletion_requested = Some(now);
                project.record(EVENT_PRIVATE_ENDPOINT_DELETED, now, None, Some(acting));
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_endpoint_moves_through_its_states_on_the_clock() {
        let t0 = Timestamp::from_millis(1_000_000);
        let mut e = PrivateEndpoint {
            id: "x".into(),
            region_name: "US_EAST_1".into(),
            requested: t0,
            deletion_requested: None,
        };
        assert_eq!(e.status(t0), EndpointStatus::Initiating);
        assert_eq!(
            e.status(t0.saturating_add(ENDPOINT_INITIATING)),
            EndpointStatus::PendingAcceptance
        );
        let active = t0.saturating_add(ENDPOINT_ACTIVE_AFTER);
        assert_eq!(e.status(active), EndpointStatus::Active);
        e.deletion_requested = Some(active);
        assert_eq!(e.status(active), EndpointStatus::Deleting);
        assert_eq!(
            e.status(active.saturating_add(ENDPOINT_DELETING)),
            EndpointStatus::Gone
        );
    }
}

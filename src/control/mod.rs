//! The atrest root: one directory holding an Atlas project, its KMS and its clusters.
//!
//! Atlas's control plane over a root, so that the CLI, the servers and an embedding
//! program open the same things the same way. One file per job:
//!
//! | file | owns |
//! |---|---|
//! | `root` | [`Root`]: the directory layout, settings and `Root::transact`, the emulator clock, KMS clients, opening clusters |
//! | `state` | the saved shapes: [`Settings`] in `atrest.json`, the clock file |
//! | `init` | creating a project: owner, access role, CMK, the first cluster |
//! | `rules` | Atlas's checks: who may act, which key and role, which clusters may encrypt |
//! | `access_roles` | cloud provider access roles set up, authorized and deauthorized as Atlas's API does |
//! | `alert_configs` | which of Atlas's alerts are on, and the rotation reminder's period |
//! | `events` | the activity feed under Atlas's event type names |
//! | `private_endpoints` | private endpoints to the KMS, their status a function of the clock |
//! | `restore_jobs` | automated restores asked for through Atlas's API, recorded when done |
//! | `organization` | projects created beside the home project, sharing its KMS and clock |
//! | `api_keys` | programmatic API keys: public half and role; their verifiers kept with the secrets |
//! | `rotation` | master-key rotation, the rolling rewrite, CMK rotation ([`Root::set_key`]) |
//! | `validity` | validity checks, shutdown and recovery, the queue of changes made meanwhile |
//! | `schedule` | [`Root::tick`]: what emulator time has made due |
//! | `load` | the bulk loader: random records into a cluster |
//! | `backup` | snapshots, retention, which snapshots depend on a CMK, restore |
//! | `backup_storage` | where snapshots live (the root's directory or an S3 bucket), moving them |
//! | `status` | the project and its clusters as Atlas's API and `status` show them |
//! | [`project`] | the project's state: users, roles, encryption config, clusters, alerts |
//! | [`ids`] | Atlas's spellings: 24-hex-digit ids, UUIDs, region names |
//! | `cluster_lifecycle` | a project's clusters created (crash-safely) and deleted |
//! | [`cluster`] | a cluster of N nodes: fan-out, rolling operations, the shutdown gate |
//! | `error` | [`ControlError`] |
//!
//! ```text
//! ROOT/atrest.json                 settings and the project's control state
//! ROOT/clock.json                  emulator time: offset added to real time
//! ROOT/kms/                        LocalKms state (the emulated HSM; owner-only), unless
//!                                  the settings point at AWS KMS or another endpoint
//! ROOT/clusters/NAME/node-K/       each node's RocksDB
//! ROOT/snapshots/                  snapshot files, ID.atrsnap; with snapshots in S3,
//!                                  only the record of this machine's unfinished uploads
//! ROOT/projects/ID/                another project of ROOT's organization: a root of its
//!                                  own whose organization.json points its KMS and clock
//!                                  at ROOT's
//! ```

mod access_roles;
mod alert_configs;
mod api_keys;
mod backup;
mod backup_storage;
pub mod cluster;
mod cluster_lifecycle;
mod error;
mod events;
pub mod ids;
mod init;
mod load;
mod organization;
mod private_endpoints;
pub mod project;
mod restore_jobs;
mod root;
mod rotation;
mod rules;
mod schedule;
mod state;
mod status;
mod validity;

pub use alert_configs::{AlertConfig, AlertConfigSpec, ATLAS_ALERTS};
pub use api_keys::{ApiKey, OrgRole};
pub use backup::KeyUsage;
pub use error::ControlError;
pub use events::Event;
pub use init::{
    InitOptions, DEFAULT_ACCOUNT, DEFAULT_CMK_ALIAS, DEFAULT_REGION, DEFAULT_ROLE_NAME,
};
pub use load::{LoadReport, MAX_LOAD_VALUE_SIZE};
pub use organization::MemberProject;
pub use private_endpoints::{EndpointStatus, PrivateEndpoint};
pub use restore_jobs::RestoreJob;
pub use root::{KmsWrapper, Root};
pub use rules::AccessRequest;
pub use schedule::RootTick;
pub use state::{
    AwsSettings, CmkRotation, KmsSettings, Retention, RotationSettings, S3Settings, Settings,
    SnapshotSettings,
};
pub use status::{AwsKmsView, ClusterStatus, EncryptionAtRestView, ProjectStatus};
pub use validity::{Applied, CheckOutcome};

/// Alert event types, as Atlas names them.
pub const ALERT_NEEDS_ROTATION: &str = "AWS_ENCRYPTION_KEY_NEEDS_ROTATION";
/// The validity check found the key unusable; the encrypted clusters are shut down.
pub const ALERT_KEY_INVALID: &str = "AWS_ENCRYPTION_KEY_INVALID";
/// The validity check reached no verdict on the key (the KMS unreachable or failing);
/// nothing was shut down.
pub const ALERT_KMS_UNREACHABLE: &str = "AWS_KMS_UNREACHABLE";
/// A node's master key was rotated.
pub const ALERT_MASTER_KEY_ROTATED: &str = "ENCRYPTION_MASTER_KEY_ROTATED";
/// A damaged node was rebuilt from a healthy replica.
pub const ALERT_NODE_REBUILT: &str = "NODE_REBUILT_FROM_REPLICA";
/// A database's data key was rolled over on demand.
pub const ALERT_DATA_KEY_ROLLED: &str = "ENCRYPTION_DATA_KEY_ROLLED";

//! atrest: encryption at rest with customer-managed keys, on one machine.
//!
//! A RocksDB storage engine whose every value is envelope-encrypted the way MongoDB Atlas
//! does it with AWS KMS: a customer master key (CMK) in a KMS wraps one master key per
//! node; the master key wraps one data key per database; data keys seal records with
//! AES-256-GCM. The KMS is [`kms::LocalKms`], a strict embedded AWS KMS emulator, or any
//! other [`kms::Kms`].
//!
//! Layers, each a module, each using only those below it:
//!
//! | module | holds |
//! |---|---|
//! | [`atlas`](mod@atlas) | `atlas serve`: the Atlas Administration API v2 over the root's project (features `store` and `server`) |
//! | [`world`] | one entry point for embedders: a temporary root on a manual clock, with KMS faults on demand |
//! | [`control`] | the atrest root and Atlas's control plane: project, rules, clusters of N nodes, validity checks, alerts, snapshots, emulator time |
//! | [`bench`](mod@bench) | `atrest bench`: workloads on the store beside plain RocksDB |
//! | [`store`] | one node's encrypted RocksDB: databases, put/get/delete/scan/batch; snapshots; an unencrypted node |
//! | [`keys`] | the envelope: master key wrapped by the CMK, data keys wrapped by it |
//! | [`kms`] | the `Kms` trait, AWS's error vocabulary, `LocalKms`, `AwsKms`, the AWS KMS wire protocol and its server |
//! | [`crypto`], [`format`](mod@format) | AES-256-GCM and secret types; versioned binary encodings |
//! | [`aws`](mod@aws) | the AWS SDK plumbing `AwsKms` and the S3 snapshot storage share: config, credentials, runtime |
//! | [`clock`], [`durable`] | time as a `Clock`; atomic file replacement |
//! | [`http`] | requests and answers as servers see them; the one HTTP server (feature `server`) |
//!
//! # Embedding a test database
//!
//! ```
//! # #[cfg(feature = "store")] {
//! use std::sync::Arc;
//! use atrest::clock::SystemClock;
//! use atrest::kms::{Caller, CreateKeyRequest, LocalKms};
//! use atrest::store::{KeyRange, Store, StoreOptions, WriteBatch};
//!
//! let dir = tempfile::tempdir()?;
//! // The KMS, and a customer master key in it.
//! let kms = LocalKms::open(dir.path().join("kms"), Arc::new(SystemClock))?;
//! let client = kms.client(Caller::account_root("111122223333", "us-east-1")?);
//! let cmk = client.create_key(CreateKeyRequest::default())?.arn;
//!
//! // A node store whose master key the CMK wraps.
//! let store = Store::create(dir.path().join("node-0"), Arc::new(client.clone()), &cmk, StoreOptions::default())?;
//! store.put("users", b"alice", b"admin")?;
//! let mut batch = WriteBatch::new();
//! batch.put("users", "bob", "reader").put("audit", "1", "bob added");
//! store.write(&batch)?;
//! assert_eq!(store.get("users", b"alice")?.as_deref(), Some(&b"admin"[..]));
//! let users: Vec<_> = store.scan("users", KeyRange::All)?.collect::<Result<_, _>>()?;
//! assert_eq!(users.len(), 2);
//! drop(store); // closes RocksDB
//!
//! // Without the CMK, the data is out of reach; with it back, nothing is lost.
//! client.disable_key(&cmk)?;
//! assert!(Store::open(dir.path().join("node-0"), Arc::new(client.clone()), &cmk, StoreOptions::default()).is_err());
//! client.enable_key(&cmk)?;
//! let store = Store::open(dir.path().join("node-0"), Arc::new(client), &cmk, StoreOptions::default())?;
//! assert_eq!(store.get("audit", b"1")?.as_deref(), Some(&b"bob added"[..]));
//! # }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#[cfg(all(feature = "store", feature = "server"))]
pub mod atlas;
#[cfg(feature = "aws")]
pub mod aws;
#[cfg(feature = "store")]
pub mod bench;
pub mod clock;
#[cfg(feature = "store")]
pub mod control;
pub mod crash;
pub mod crypto;
pub mod durable;
pub mod format;
pub mod http;
// A harness: its targets panic on purpose when the engine diverges from the model.
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
pub mod fuzzing;
pub mod keys;
pub mod kms;
#[cfg(feature = "store")]
pub mod store;
#[cfg(feature = "store")]
pub mod world;

#[cfg(feature = "store")]
pub use world::World;

//! `atrest atlas serve`: the Atlas Administration API (v2) for encryption at rest, over
//! the root's organization (its project and the projects created beside it), so that
//! scripts, the Atlas CLI, Terraform and SDKs rehearse against Atlas's own paths, shapes
//! and words. A translation layer only: every change is a call on [`Root`], the same the
//! CLI makes, so the two see one state.
//!
//! | file | owns |
//! |---|---|
//! | `digest` | HTTP Digest authentication with programmatic API keys |
//! | `wire` | versioned media types and 406, `pretty`, `envelope`, paging, the query |
//! | `error` | Atlas's error body, and which one each control-plane error is |
//! | `routes` | the route table: method, path, versions, the role each needs |
//! | `body` | a request body's members: which may be written, each one's JSON type |
//! | `project` | `groups`, `cloudProviderAccess`, `encryptionAtRest` and its private endpoints |
//! | `clusters` | `clusters`: created, read, updated, deleted |
//! | `cluster_shapes` | a cluster in each version's shape (2023-01-01, 2023-02-01, 2024-08-05) |
//! | `backup` | a cluster's `backup/snapshots` and `backup/restoreJobs` |
//! | `activity` | `alerts` and `events` |
//! | `api_keys` | `apiKeys` of a project: listed, created, changed, removed |
//! | `alert_configs` | `alertConfigs`: the rotation reminder and the invalid-key alert, editable |
//! | `emulator` | `/atrest/v1/...`: what a test needs and Atlas lacks (clock, tick, KMS faults) |

mod activity;
mod alert_configs;
mod api_keys;
mod backup;
mod body;
mod cluster_shapes;
mod clusters;
mod digest;
mod emulator;
mod error;
mod project;
mod routes;
mod wire;

use std::sync::Arc;

use zeroize::Zeroizing;

pub use digest::{authorization, REALM};
pub use error::ApiError;

use crate::clock::SharedClock;
use crate::control::ids::uuid_string;
use crate::control::project::ProjectRole;
use crate::control::{ApiKey, ControlError, OrgRole, Root, DEFAULT_ACCOUNT, DEFAULT_REGION};
use crate::http::{Handler, HttpServer, Request, Response};
use crate::kms::{Caller, FaultyKms};
use digest::{Credentials, Digest, Refusal};
use wire::{error_response, Query};

/// The largest request body taken.
const MAX_BODY_BYTES: usize = 1024 * 1024;

/// The API over one root's organization: authentication, then the route table.
pub struct AtlasApi {
    root: Root,
    digest: Digest,
    faults: Arc<FaultyKms>,
}

impl std::fmt::Debug for AtlasApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AtlasApi")
            .field("root", &self.root)
            .finish_non_exhaustive()
    }
}

impl AtlasApi {
    /// Serves `root` (an initialised project) and the projects of its organization. Their
    /// KMS calls go through a fault injector that `/atrest/v1/kmsFaults` drives; digest
    /// nonces age on `nonce_clock` (real time, unless a test moves it), not on the emulator
    /// clock a test jumps by days.
    pub fn new(mut root: Root, nonce_clock: SharedClock) -> Result<Self, ControlError> {
        root.require_settings()?;
        // The injector's own client is never called: each KMS client the root makes is
        // wrapped to share its schedule.
        let unused = root
            .local_kms()
            .client(Caller::account_root(DEFAULT_ACCOUNT, DEFAULT_REGION)?);
        let faults = Arc::new(FaultyKms::new(Arc::new(unused)));
        let schedule = faults.clone();
        root.wrap_kms(Arc::new(move |inner| {
            Arc::new(schedule.sharing_schedule(inner))
        }));
        // Requests wait their turn for a cluster the CLI or a cron tick holds, as Atlas
        // queues changes, instead of failing.
        root.wait_for_clusters(true);
        Ok(AtlasApi {
            root,
            digest: Digest::new(nonce_clock),
            faults,
        })
    }

    /// The root served.
    pub fn root(&self) -> &Root {
        &self.root
    }

    /// Listens on `listen` (port 0 picks a free one) and serves this API until the server
    /// is dropped. An address other than loopback is refused unless `allow_remote`: this
    /// is plain HTTP.
    pub fn serve(self, listen: &str, allow_remote: bool) -> std::io::Result<HttpServer> {
        HttpServer::start(listen, allow_remote, Arc::new(self))
    }

    fn unauthorized(&self, refusal: Refusal) -> Response {
        let mut response = error_response(
            &ApiError::new(
                401,
                "UNAUTHORIZED",
                "You are not authorized for this resource.",
            ),
            false,
        );
        response.headers.push((
            "WWW-Authenticate",
            self.digest.challenge(refusal == Refusal::Stale),
        ));
        response
    }

    /// The public half of the API key a request authenticates as.
    fn authenticate(&self, request: &Request<'_>) -> Result<String, Refusal> {
        let credentials = request
            .header("authorization")
            .and_then(Credentials::parse)
            .ok_or(Refusal::Unauthenticated)?;
        let verifier = self
            .verifier(&credentials.username)
            .map_err(|_| Refusal::Unauthenticated)?;
        self.digest.check(
            &credentials,
            request.method,
            request.uri,
            verifier.as_ref().map(|v| v.as_str()),
        )?;
        verifier
            .map(|_| credentials.username)
            .ok_or(Refusal::Unauthenticated)
    }

    /// The verifier of API key `public_key`: the home project's keys first (organization
    /// keys among them), then each other project's own.
    fn verifier(&self, public_key: &str) -> Result<Option<Zeroizing<String>>, ControlError> {
        if let Some((_, verifier)) = self.root.api_key(public_key)? {
            return Ok(Some(verifier));
        }
        // Only the projects whose listing names the key are opened for their secrets.
        let holders = self.root.member_projects()?.into_iter().filter(|m| {
            m.settings
                .project
                .api_keys
                .iter()
                .any(|k| k.public_key == public_key)
        });
        for member in holders {
            if let Some((_, verifier)) =
                self.root.member_project(&member.id)?.api_key(public_key)?
            {
                return Ok(Some(verifier));
            }
        }
        Ok(None)
    }

    /// Project `group` of the organization served, as Atlas answers an id it does not
    /// know.
    fn project(&self, group: &str) -> Result<Project<'_>, ApiError> {
        if group == self.root.require_settings()?.project.id {
            return Ok(Project::Home(&self.root));
        }
        Ok(Project::Member(Box::new(self.root.member_project(group)?)))
    }
}

/// A project of the organization served: the home, or one opened for the request.
enum Project<'a> {
    Home(&'a Root),
    Member(Box<Root>),
}

impl std::ops::Deref for Project<'_> {
    type Target = Root;

    fn deref(&self) -> &Root {
        match self {
            Project::Home(root) => root,
            Project::Member(root) => root,
        }
    }
}

impl Handler for AtlasApi {
    fn handle(&self, request: &Request<'_>) -> Response {
        let key = match self.authenticate(request) {
            Ok(key) => key,
            Err(refusal) => return self.unauthorized(refusal),
        };
        if let Err(e) = self.root.sync_clock() {
            return error_response(&e.into(), false);
        }
        let (path, query) = request.uri.split_once('?').unwrap_or((request.uri, ""));
        let query = match Query::parse(query) {
            Ok(query) => query,
            Err(e) => return error_response(&e, false),
        };
        if let Some(rest) = path.strip_prefix(emulator::PREFIX) {
            return emulator::handle(self, &key, request, rest, &query);
        }
        routes::handle(self, &key, request, path, &query)
    }

    fn max_body(&self) -> usize {
        MAX_BODY_BYTES
    }

    fn too_large(&self) -> Response {
        error_response(
            &ApiError::validation(format!(
                "The request body is larger than {MAX_BODY_BYTES} bytes."
            )),
            false,
        )
    }
}

/// A new programmatic API key with a project role (and, in the organization's home, an
/// organization role): its public half (8 lowercase letters, as Atlas's) and private half
/// (a UUID), of which the root keeps only the digest verifier. The private half is shown
/// once, here.
pub fn create_api_key(
    root: &Root,
    acting: &str,
    roles: (ProjectRole, Option<OrgRole>),
    description: &str,
) -> Result<(ApiKey, Zeroizing<String>), ControlError> {
    let mut letters = [0u8; 8];
    crate::crypto::fill_random(&mut letters);
    let public: String = letters.iter().map(|b| char::from(b'a' + b % 26)).collect();
    let mut bytes = Zeroizing::new([0u8; 16]);
    crate::crypto::fill_random(bytes.as_mut());
    let private = Zeroizing::new(uuid_string(&bytes));
    let verifier = digest::verifier(&public, &private);
    let key = root.add_api_key(acting, &public, roles, description, &verifier)?;
    Ok((key, private))
}

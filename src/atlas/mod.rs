//! `atrest atlas serve`: the Atlas Administration API (v2) for encryption at rest, over
//! the root's project, so that scripts, the Atlas CLI, Terraform and SDKs rehearse against
//! Atlas's own paths, shapes and words. A translation layer only: every change is a call
//! on [`Root`], the same the CLI makes, so the two see one state.
//!
//! | file | owns |
//! |---|---|
//! | `digest` | HTTP Digest authentication with programmatic API keys |
//! | `wire` | versioned media types and 406, `pretty`, `envelope`, paging, the query |
//! | `error` | Atlas's error body, and which one each control-plane error is |
//! | `routes` | the route table: method, path, versions, the role each needs |
//! | `project` | `groups`, `cloudProviderAccess`, `encryptionAtRest` and its private endpoints |
//! | `clusters` | `clusters`, their `backup/snapshots` and `backup/restoreJobs` |
//! | `activity` | `alerts` and `events` |
//! | `emulator` | `/atrest/v1/...`: what a test needs and Atlas lacks (clock, tick, KMS faults) |

mod activity;
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
use crate::control::project::{uuid_string, ProjectRole};
use crate::control::{ApiKey, ControlError, Root, DEFAULT_ACCOUNT, DEFAULT_REGION};
use crate::http::{Handler, HttpServer, Request, Response};
use crate::kms::{Caller, FaultyKms};
use digest::{Credentials, Digest, Refusal};
use wire::{error_response, Query};

/// The largest request body taken.
const MAX_BODY_BYTES: usize = 1024 * 1024;

/// The API over one root: authentication, then the route table.
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
    /// Serves `root` (an initialised project). Its KMS calls go through a fault injector
    /// that `/atrest/v1/kmsFaults` drives; digest nonces age on `nonce_clock` (real time,
    /// unless a test moves it), not on the emulator clock a test jumps by days.
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

    /// The API key a request authenticates as, with its role.
    fn authenticate(&self, request: &Request<'_>) -> Result<ApiKey, Refusal> {
        let credentials = request
            .header("authorization")
            .and_then(Credentials::parse)
            .ok_or(Refusal::Unauthenticated)?;
        let found = self
            .root
            .api_key(&credentials.username)
            .map_err(|_| Refusal::Unauthenticated)?;
        let verifier = found.as_ref().map(|(_, v)| v.as_str());
        self.digest
            .check(&credentials, request.method, request.uri, verifier)?;
        found.map(|(key, _)| key).ok_or(Refusal::Unauthenticated)
    }
}

impl Handler for AtlasApi {
    fn handle(&self, request: &Request<'_>) -> Response {
        let key = match self.authenticate(request) {
            Ok(key) => key,
            Err(refusal) => return self.unauthorized(refusal),
        };
        let (path, query) = request.uri.split_once('?').unwrap_or((request.uri, ""));
        let query = match Query::parse(query) {
            Ok(query) => query,
            Err(e) => return error_response(&e, false),
        };
        if let Some(rest) = path.strip_prefix(emulator::PREFIX) {
            return emulator::handle(self, &key, request, rest, &query);
        }
        routes::handle(&self.root, &key, request, path, &query)
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

/// A new programmatic API key: its public half (8 lowercase letters, as Atlas's) and
/// private half (a UUID), of which the root keeps only the digest verifier. The private
/// half is shown once, here.
pub fn create_api_key(
    root: &Root,
    acting: &str,
    role: ProjectRole,
    description: &str,
) -> Result<(ApiKey, Zeroizing<String>), ControlError> {
    let mut letters = [0u8; 8];
    crate::crypto::fill_random(&mut letters);
    let public: String = letters.iter().map(|b| char::from(b'a' + b % 26)).collect();
    let mut bytes = Zeroizing::new([0u8; 16]);
    crate::crypto::fill_random(bytes.as_mut());
    let private = Zeroizing::new(uuid_string(&bytes));
    let verifier = digest::verifier(&public, &private);
    let key = root.add_api_key(acting, &public, role, description, &verifier)?;
    Ok((key, private))
}

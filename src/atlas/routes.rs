//! The route table: each operation's method and path (as the OpenAPI document spells them,
//! `{}` for a path parameter), the resource versions it is served at, the least project
//! role it takes, and its handler; and what every call shares.

use serde_json::{Map, Value};

use super::body::check_members;
use super::error::ApiError;
use super::wire::{error_response, negotiate, Query, Style};
use super::{activity, alert_configs, api_keys, backup, clusters, project, AtlasApi, Project};
use crate::control::project::ProjectRole;
use crate::control::{Root, Settings};
use crate::http::{Request, Response};

/// What a handler answers: a status and a body, or an error.
pub(super) type Outcome = Result<(u16, Option<Value>), ApiError>;

/// The least role an operation takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Need {
    /// Any member: reads.
    Read,
    /// Project Cluster Manager or Owner.
    Clusters,
    /// Project Owner.
    Owner,
}

fn rank(role: ProjectRole) -> Need {
    match role {
        ProjectRole::ReadOnly => Need::Read,
        ProjectRole::ClusterManager => Need::Clusters,
        ProjectRole::Owner => Need::Owner,
    }
}

/// One operation.
pub(super) struct Route {
    method: &'static str,
    path: &'static str,
    versions: &'static [&'static str],
    need: Need,
    run: fn(&Call<'_>) -> Outcome,
}

const V1: &[&str] = &["2023-01-01"];
/// The cluster resource's versions: LegacyAtlasCluster, AdvancedClusterDescription,
/// ClusterDescription20240805 (which 2024-10-23 also writes).
const CLUSTER_VERSIONS: &[&str] = &["2023-01-01", "2023-02-01", "2024-08-05", "2024-10-23"];
const CLUSTER_READ_VERSIONS: &[&str] = &["2023-01-01", "2023-02-01", "2024-08-05"];
/// Acknowledging an alert.
const ALERT_VERSIONS: &[&str] = &["2023-01-01", "2024-05-30"];
/// Deleting a cluster answers no body: every version that has it.
const CLUSTER_DELETE_VERSIONS: &[&str] = &["2023-01-01", "2023-02-01"];

const fn route(
    method: &'static str,
    path: &'static str,
    versions: &'static [&'static str],
    need: Need,
    run: fn(&Call<'_>) -> Outcome,
) -> Route {
    Route {
        method,
        path,
        versions,
        need,
        run,
    }
}

/// Every operation served, under `/api/atlas/v2`.
const ROUTES: &[Route] = &[
    route("GET", "/groups", V1, Need::Read, project::list_groups),
    route("POST", "/groups", V1, Need::Read, project::create_group),
    route("GET", "/groups/{}", V1, Need::Read, project::get_group),
    route(
        "DELETE",
        "/groups/{}",
        V1,
        Need::Owner,
        project::delete_group,
    ),
    route("GET", "/groups/{}/apiKeys", V1, Need::Owner, api_keys::list),
    route(
        "POST",
        "/groups/{}/apiKeys",
        V1,
        Need::Owner,
        api_keys::create,
    ),
    route(
        "PATCH",
        "/groups/{}/apiKeys/{}",
        V1,
        Need::Owner,
        api_keys::update,
    ),
    route(
        "DELETE",
        "/groups/{}/apiKeys/{}",
        V1,
        Need::Owner,
        api_keys::remove,
    ),
    route(
        "GET",
        "/groups/{}/cloudProviderAccess",
        V1,
        Need::Read,
        project::list_roles,
    ),
    route(
        "POST",
        "/groups/{}/cloudProviderAccess",
        V1,
        Need::Owner,
        project::create_role,
    ),
    route(
        "GET",
        "/groups/{}/cloudProviderAccess/{}",
        V1,
        Need::Read,
        project::get_role,
    ),
    route(
        "PATCH",
        "/groups/{}/cloudProviderAccess/{}",
        V1,
        Need::Owner,
        project::authorize_role,
    ),
    route(
        "DELETE",
        "/groups/{}/cloudProviderAccess/{}/{}",
        V1,
        Need::Owner,
        project::deauthorize_role,
    ),
    route(
        "GET",
        "/groups/{}/encryptionAtRest",
        V1,
        Need::Owner,
        project::get_encryption,
    ),
    route(
        "PATCH",
        "/groups/{}/encryptionAtRest",
        V1,
        Need::Owner,
        project::update_encryption,
    ),
    route(
        "GET",
        "/groups/{}/encryptionAtRest/{}/privateEndpoints",
        V1,
        Need::Owner,
        project::list_endpoints,
    ),
    route(
        "POST",
        "/groups/{}/encryptionAtRest/{}/privateEndpoints",
        V1,
        Need::Owner,
        project::create_endpoint,
    ),
    route(
        "GET",
        "/groups/{}/encryptionAtRest/{}/privateEndpoints/{}",
        V1,
        Need::Owner,
        project::get_endpoint,
    ),
    route(
        "DELETE",
        "/groups/{}/encryptionAtRest/{}/privateEndpoints/{}",
        V1,
        Need::Owner,
        project::delete_endpoint,
    ),
    route(
        "GET",
        "/groups/{}/clusters",
        CLUSTER_READ_VERSIONS,
        Need::Read,
        clusters::list,
    ),
    route(
        "POST",
        "/groups/{}/clusters",
        CLUSTER_VERSIONS,
        Need::Clusters,
        clusters::create,
    ),
    route(
        "GET",
        "/groups/{}/clusters/{}",
        CLUSTER_READ_VERSIONS,
        Need::Read,
        clusters::get,
    ),
    route(
        "PATCH",
        "/groups/{}/clusters/{}",
        CLUSTER_VERSIONS,
        Need::Clusters,
        clusters::update,
    ),
    route(
        "DELETE",
        "/groups/{}/clusters/{}",
        CLUSTER_DELETE_VERSIONS,
        Need::Owner,
        clusters::delete,
    ),
    route(
        "GET",
        "/groups/{}/clusters/{}/backup/snapshots",
        V1,
        Need::Read,
        backup::list_snapshots,
    ),
    route(
        "POST",
        "/groups/{}/clusters/{}/backup/snapshots",
        V1,
        Need::Clusters,
        backup::take_snapshot,
    ),
    route(
        "GET",
        "/groups/{}/clusters/{}/backup/snapshots/{}",
        V1,
        Need::Read,
        backup::get_snapshot,
    ),
    route(
        "DELETE",
        "/groups/{}/clusters/{}/backup/snapshots/{}",
        V1,
        Need::Owner,
        backup::delete_snapshot,
    ),
    route(
        "GET",
        "/groups/{}/clusters/{}/backup/restoreJobs",
        V1,
        Need::Read,
        backup::list_restore_jobs,
    ),
    route(
        "POST",
        "/groups/{}/clusters/{}/backup/restoreJobs",
        V1,
        Need::Owner,
        backup::create_restore_job,
    ),
    route(
        "GET",
        "/groups/{}/clusters/{}/backup/restoreJobs/{}",
        V1,
        Need::Read,
        backup::get_restore_job,
    ),
    route(
        "GET",
        "/groups/{}/alerts",
        V1,
        Need::Read,
        activity::list_alerts,
    ),
    route(
        "GET",
        "/groups/{}/alerts/{}",
        V1,
        Need::Read,
        activity::get_alert,
    ),
    route(
        "PATCH",
        "/groups/{}/alerts/{}",
        ALERT_VERSIONS,
        Need::Clusters,
        activity::acknowledge_alert,
    ),
    route(
        "GET",
        "/groups/{}/alerts/{}/alertConfigs",
        V1,
        Need::Read,
        alert_configs::configs_of_alert,
    ),
    route(
        "GET",
        "/groups/{}/alertConfigs",
        V1,
        Need::Read,
        alert_configs::list,
    ),
    route(
        "POST",
        "/groups/{}/alertConfigs",
        V1,
        Need::Owner,
        alert_configs::create,
    ),
    route(
        "GET",
        "/groups/{}/alertConfigs/{}",
        V1,
        Need::Read,
        alert_configs::get,
    ),
    route(
        "PUT",
        "/groups/{}/alertConfigs/{}",
        V1,
        Need::Owner,
        alert_configs::replace,
    ),
    route(
        "PATCH",
        "/groups/{}/alertConfigs/{}",
        V1,
        Need::Owner,
        alert_configs::toggle,
    ),
    route(
        "DELETE",
        "/groups/{}/alertConfigs/{}",
        V1,
        Need::Owner,
        alert_configs::delete,
    ),
    route(
        "GET",
        "/groups/{}/alertConfigs/{}/alerts",
        V1,
        Need::Read,
        alert_configs::alerts_of,
    ),
    route(
        "GET",
        "/groups/{}/events",
        V1,
        Need::Read,
        activity::list_events,
    ),
    route(
        "GET",
        "/groups/{}/events/{}",
        V1,
        Need::Read,
        activity::get_event,
    ),
];

/// The path every route is under.
const BASE: &str = "/api/atlas/v2";

/// The parameters of `path` if it has the shape of `pattern`.
fn matches<'p>(pattern: &str, path: &'p str) -> Option<Vec<&'p str>> {
    let mut params = Vec::new();
    let mut wanted = pattern.split('/');
    let mut given = path.split('/');
    loop {
        match (wanted.next(), given.next()) {
            (None, None) => return Some(params),
            (Some("{}"), Some(segment)) if !segment.is_empty() => params.push(segment),
            (Some(w), Some(g)) if w == g => {}
            _ => return None,
        }
    }
}

/// Answers a request for `path` under `/api/atlas/v2`, authenticated as API key `key`.
pub(super) fn handle(
    api: &AtlasApi,
    key: &str,
    request: &Request<'_>,
    path: &str,
    query: &Query,
) -> Response {
    let pretty = query.flag("pretty", false).unwrap_or(false);
    let Some(path) = path.strip_prefix(BASE) else {
        return error_response(
            &ApiError::not_found(format!("No resource at {path}.")),
            pretty,
        );
    };
    let path = path.strip_suffix('/').unwrap_or(path);
    let shaped: Vec<(&Route, Vec<&str>)> = ROUTES
        .iter()
        .filter_map(|r| matches(r.path, path).map(|params| (r, params)))
        .collect();
    let Some((route, params)) = shaped.iter().find(|(r, _)| r.method == request.method) else {
        let error = match shaped.is_empty() {
            true => ApiError::not_found(format!("No resource at {BASE}{path}.")),
            false => ApiError::new(
                405,
                "METHOD_NOT_ALLOWED",
                format!("{} is not allowed on {BASE}{path}.", request.method),
            ),
        };
        return error_response(&error, pretty);
    };
    let version = match negotiate(request.header("accept"), route.versions) {
        Ok(version) => version,
        Err(e) => return error_response(&e, pretty),
    };
    let style = match Style::of(query, version) {
        Ok(style) => style,
        Err(e) => return error_response(&e, pretty),
    };
    let project = match params.first() {
        Some(group) => match api.project(group) {
            Ok(project) => project,
            Err(e) => return style.error(&e),
        },
        None => Project::Home(api.root()),
    };
    let call = Call {
        api,
        root: &project,
        acting: key,
        version,
        query,
        body: request.body,
        params: params.clone(),
    };
    match call.authorize(route.need).and_then(|()| (route.run)(&call)) {
        Ok((status, body)) => style.answer(status, body),
        Err(e) => style.error(&e),
    }
}

/// What a handler is given.
pub(super) struct Call<'a> {
    /// The API served: the organization's other projects.
    pub api: &'a AtlasApi,
    /// The project the path names (the organization's home for `/groups`).
    pub root: &'a Root,
    /// Who asks: the API key's public half.
    pub acting: &'a str,
    /// The resource version the request named (or the oldest the route has).
    pub version: &'static str,
    /// The query.
    pub query: &'a Query,
    /// The body as sent.
    body: &'a [u8],
    /// The path parameters, in order (the group id first, where there is one).
    pub params: Vec<&'a str>,
}

impl Call<'_> {
    /// Path parameter `n`.
    pub fn param(&self, n: usize) -> &str {
        self.params.get(n).copied().unwrap_or_default()
    }

    /// The project's settings.
    pub fn settings(&self) -> Result<Settings, ApiError> {
        Ok(self.root.require_settings()?)
    }

    /// Refuses a key without a role in the project the path names, or with a lesser role
    /// than `need`. Paths that name no project take any key.
    fn authorize(&self, need: Need) -> Result<(), ApiError> {
        if self.params.is_empty() {
            return Ok(());
        }
        let role = self
            .settings()?
            .project
            .role_of(self.acting)
            .map_err(|_| cannot_access(self.param(0)))?;
        if rank(role) < need {
            return Err(ApiError::new(
                401,
                "USER_UNAUTHORIZED",
                format!(
                    "Current user is not authorized to perform this action: API key {} has the {} role.",
                    self.acting,
                    role.atlas_name()
                ),
            ));
        }
        Ok(())
    }

    /// The body as a JSON object whose members are among `writable` (those in
    /// `read_only` refused as Atlas refuses them, any other as an invalid attribute).
    pub fn object(
        &self,
        writable: &[&str],
        read_only: &[&str],
    ) -> Result<Map<String, Value>, ApiError> {
        let object = self.json_object()?;
        check_members(&object, writable, read_only)?;
        Ok(object)
    }

    /// The body as a JSON object (`{}` when there is none), members unchecked.
    pub fn json_object(&self) -> Result<Map<String, Value>, ApiError> {
        let text = if self.body.iter().all(u8::is_ascii_whitespace) {
            &b"{}"[..]
        } else {
            self.body
        };
        let value: Value = serde_json::from_slice(text).map_err(|e| {
            ApiError::new(
                400,
                "INVALID_JSON",
                format!("The request body is not valid JSON: {e}."),
            )
        })?;
        let Value::Object(object) = value else {
            return Err(ApiError::new(
                400,
                "INVALID_JSON",
                "The request body must be a JSON object.",
            ));
        };
        Ok(object)
    }
}

/// 401 for a key that has no role in project `group`.
pub(super) fn cannot_access(group: &str) -> ApiError {
    ApiError::new(
        401,
        "USER_CANNOT_ACCESS_GROUP",
        format!("User cannot access group {group}."),
    )
    .with_parameters(&[group])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_match_their_patterns_only() {
        assert_eq!(matches("/groups/{}", "/groups/abc"), Some(vec!["abc"]));
        assert_eq!(matches("/groups/{}", "/groups/"), None);
        assert_eq!(matches("/groups/{}", "/groups/abc/clusters"), None);
        assert_eq!(
            matches("/groups/{}/clusters/{}", "/groups/a/clusters/b"),
            Some(vec!["a", "b"])
        );
    }

    #[test]
    fn every_route_is_distinct() {
        for (i, a) in ROUTES.iter().enumerate() {
            for b in ROUTES.iter().skip(i + 1) {
                assert!(
                    !(a.method == b.method && a.path == b.path),
                    "{} {}",
                    a.method,
                    a.path
                );
            }
        }
    }
}

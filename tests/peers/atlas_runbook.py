"""The Atlas encryption-at-rest runbook over HTTP against `atrest atlas serve`, as a
Python user of Atlas's Administration API runs it: `requests` with HTTP Digest
authentication, and every response checked against Atlas's OpenAPI document (its status
documented for the operation, its content type the version asked for, its body valid
against the schema). Requests are checked against the document's request schemas before
they are sent; the ones the document rejects are sent too, and must be refused.

The KMS side (a new key, disabling one) goes through the atrest CLI on the same root, as
an operator would use the AWS console; the data side (a record written, read, and every
node compared) too.

usage: atlas_runbook.py URL ROOT ATREST SPEC OWNER_PUBLIC OWNER_PRIVATE READER_PUBLIC READER_PRIVATE
"""

import json
import os
import re
import subprocess
import sys

import requests
import yaml
from openapi_schema_validator import (
    OAS30ReadValidator,
    OAS30WriteValidator,
    oas30_format_checker,
)
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4
from requests.auth import HTTPDigestAuth

URL, ROOT, ATREST, SPEC = sys.argv[1:5]
OWNER = HTTPDigestAuth(sys.argv[5], sys.argv[6])
READER = HTTPDigestAuth(sys.argv[7], sys.argv[8])
BASE = "/api/atlas/v2"


def load_spec(path):
    with open(path, encoding="utf-8") as f:
        spec = yaml.load(f, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    # Python's re has no \p{..} classes; the document's name patterns use them.
    def fix(node):
        if isinstance(node, dict):
            for k, v in node.items():
                if k == "pattern" and isinstance(v, str):
                    node[k] = v.replace(r"\p{L}", "^\\W\\d_").replace(r"\p{N}", "\\d")
                    # A negated class inside a class is not Python either: letters are
                    # "not a non-word, digit or underscore", written out.
                    node[k] = node[k].replace("[^\\W\\d_", "[\\w")
                else:
                    fix(v)
        elif isinstance(node, list):
            for v in node:
                fix(v)

    fix(spec)
    # The vendored document flattens EventViewForNdsGroup's variants and keeps one
    # variant's eventTypeName enum; the operation's own eventType parameter names the
    # project event types, so an event's name is checked against that.
    events = spec["components"]["schemas"]["EventViewForNdsGroup"]["properties"]
    events["eventTypeName"] = {"$ref": "#/components/schemas/EventTypeForNdsGroup"}
    # HardwareSpec20240805 and HardwareSpec (2023-02-01) are flattened the same way,
    # keeping the tenant sizes (M0, M2, M5) only: a dedicated cluster's size is one of
    # DedicatedHardwareSpec20240805's.
    schemas = spec["components"]["schemas"]
    dedicated = schemas["DedicatedHardwareSpec20240805"]["properties"]["instanceSize"]["enum"]
    for hardware in ("HardwareSpec20240805", "HardwareSpec"):
        sizes = schemas[hardware]["properties"]["instanceSize"]
        sizes["enum"] = sizes["enum"] + dedicated
    # ApiError.parameters types its items as objects (a list of anything, as generated);
    # Atlas sends the values its detail names, strings, and so does atrest.
    spec["components"]["schemas"]["ApiError"]["properties"]["parameters"]["items"] = {}
    # GroupAlertsConfig is flattened to its stream-processor variant: its event type, its
    # threshold (units RAW) and its notification types (WEBHOOK, roles of the ORG variant)
    # are that variant's. An encryption-at-rest configuration takes the alert event types
    # the alerts themselves carry, a threshold in DAYS, and GROUP notifications to project
    # roles.
    # ClusterProviderSettings (the 2023-01-01 cluster's) is flattened to its FLEX variant:
    # a dedicated cluster's instanceSizeName is one of the dedicated sizes.
    provider_sizes = schemas["ClusterProviderSettings"]["properties"]["instanceSizeName"]
    provider_sizes["enum"] = provider_sizes["enum"] + dedicated
    alert_types = schemas["AlertViewForNdsGroup"]["properties"]["eventTypeName"]["enum"]
    config = schemas["GroupAlertsConfig"]["properties"]
    config["eventTypeName"] = {"type": "string", "enum": alert_types}
    config["threshold"] = {"type": "object", "properties": {
        "operator": {"type": "string", "enum": ["GREATER_THAN", "LESS_THAN"]},
        "threshold": {"type": "number"}, "units": {"type": "string"}}}
    notification = schemas["AlertsNotificationRootForGroup"]["properties"]
    notification["typeName"]["enum"] += ["GROUP", "EMAIL"]
    notification["roles"]["items"]["enum"] += ["GROUP_OWNER", "GROUP_CLUSTER_MANAGER", "GROUP_READ_ONLY"]
    return spec


SPEC_DOC = load_spec(SPEC)
REGISTRY = Registry().with_resource(
    "urn:atlas", Resource.from_contents(SPEC_DOC, default_specification=DRAFT4)
)
CHECKED = []


def schema_of(content):
    schema = content["schema"]
    if "$ref" in schema:
        return {"$ref": "urn:atlas" + schema["$ref"]}
    return {"allOf": [schema], "components": SPEC_DOC["components"]}


def validate(instance, content, cls, what):
    validator = cls(schema_of(content), registry=REGISTRY, format_checker=oas30_format_checker)
    errors = sorted(validator.iter_errors(instance), key=lambda e: list(e.path))
    if errors:
        detail = "; ".join(f"{list(e.path)}: {e.message[:300]}" for e in errors[:5])
        raise AssertionError(f"{what} does not match Atlas's OpenAPI document: {detail}")


def operation(method, template):
    return SPEC_DOC["paths"][BASE + template][method.lower()]


def check_response(method, template, response, version):
    op = operation(method, template)
    status = str(response.status_code)
    assert status in op["responses"], f"{method} {template} answered {status}, which the document does not list"
    documented = op["responses"][status]
    if "$ref" in documented:
        documented = SPEC_DOC["components"]["responses"][documented["$ref"].split("/")[-1]]
    content = documented.get("content") or {}
    if not response.content:
        assert status in ("204", "202") or not content, f"{method} {template} {status}: empty body"
        CHECKED.append((method, template, status))
        return None
    media = response.headers["Content-Type"].split(";")[0]
    if response.status_code < 400:
        assert media == f"application/vnd.atlas.{version}+json", f"{method} {template}: content type {media}"
    assert media in content, f"{method} {template} {status}: {media} is not among {list(content)}"
    body = response.json()
    validate(body, content[media], OAS30ReadValidator, f"{method} {template} {status}")
    CHECKED.append((method, template, status))
    return body


def call(method, template, expect, params=None, body=None, key=OWNER, version="2023-01-01",
         query=None, raw_body=None, check_request=True):
    params = params or {}
    path = BASE + template.format(**params)
    headers = {"Accept": f"application/vnd.atlas.{version}+json"}
    data = None
    if body is not None:
        if check_request:
            content = operation(method, template)["requestBody"]["content"]
            validate(body, content[f"application/vnd.atlas.{version}+json"], OAS30WriteValidator,
                     f"the request {method} {template}")
        data = json.dumps(body)
    if raw_body is not None:
        data = raw_body
    if data is not None:
        headers["Content-Type"] = f"application/vnd.atlas.{version}+json"
    response = requests.request(method, URL + path, params=query, data=data, headers=headers,
                                auth=key, timeout=120)
    assert response.status_code == expect, (
        f"{method} {path}: expected {expect}, got {response.status_code}: {response.text[:600]}"
    )
    return check_response(method, template, response, version)


def atrest(*args, root=ROOT):
    out = subprocess.run([ATREST, "--root", root, "--wait", *args], capture_output=True, text=True)
    assert out.returncode == 0, f"atrest {args}: {out.stderr}"
    return out.stdout


def atrest_json(*args, root=ROOT):
    return json.loads(atrest(*args, "--json", root=root))


def atrest_fails(*args):
    out = subprocess.run([ATREST, "--root", ROOT, "--wait", *args], capture_output=True, text=True)
    assert out.returncode != 0, f"atrest {args} should have failed: {out.stdout}"
    return out.stderr


def emulator(method, path, body=None, expect=200):
    response = requests.request(method, f"{URL}/atrest/v1/{path}", json=body, auth=OWNER, timeout=120)
    assert response.status_code == expect, f"{method} /atrest/v1/{path}: {response.status_code} {response.text[:400]}"
    return response.json() if response.content else None


def every_node_holds(cluster, records, root=ROOT):
    verification = atrest_json("cluster", "verify", cluster, root=root)
    assert verification["consistent"], verification
    for node in verification["nodes"]:
        assert node["databases"].get("runbook", {}).get("records") == records, verification


def event_names():
    events = call("GET", "/groups/{groupId}/events", 200, {"groupId": group}, query={"itemsPerPage": 500})
    return [e["eventTypeName"] for e in events["results"]]


# --- Authentication, versions, errors -----------------------------------------------------

r = requests.get(URL + BASE + "/groups", timeout=30)
assert r.status_code == 401, r.status_code
challenge = r.headers["WWW-Authenticate"]
assert challenge.startswith("Digest ") and 'realm="MMS Public API"' in challenge and "qop=\"auth\"" in challenge, challenge
check_response("GET", "/groups", r, "2023-01-01")
wrong = requests.get(URL + BASE + "/groups", auth=HTTPDigestAuth(sys.argv[5], "not-the-key"), timeout=30)
assert wrong.status_code == 401, wrong.status_code
print("digest: unauthenticated and wrong keys refused with a challenge")

groups = call("GET", "/groups", 200)
assert groups["totalCount"] == 1, groups
group = groups["results"][0]["id"]
status = atrest_json("project", "status")
assert status["id"] == group, (status["id"], group)
call("GET", "/groups/{groupId}", 200, {"groupId": group})
call("GET", "/groups/{groupId}", 404, {"groupId": "0123456789abcdef01234567"})
org = groups["results"][0]["orgId"]
refused = call("POST", "/groups", 401, body={"name": "runbook-two", "orgId": org})
assert refused["errorCode"] == "NOT_ORG_GROUP_CREATOR", refused
r = requests.get(URL + BASE + f"/groups/{group}", headers={"Accept": "application/vnd.atlas.1999-01-01+json"},
                 auth=OWNER, timeout=30)
assert r.status_code == 406 and r.json()["error"] == 406, r.text
r = requests.get(URL + BASE + f"/groups/{group}?envelope=true&pretty=true", auth=OWNER, timeout=30)
assert r.status_code == 200 and r.json()["status"] == 200 and r.json()["content"]["id"] == group, r.text
assert "\n  " in r.text, "pretty=true indents"
for bad in ({"itemsPerPage": "0"}, {"pageNum": "0"}, {"includeCount": "maybe"}):
    call("GET", "/groups", 400, query=bad)
print("groups, 404, 406, envelope, pretty and paging as the document says")

# --- A second project, made by an organization key ---------------------------------------

made_key = atrest_json("project", "api-key", "create", "--role", "GROUP_OWNER",
                       "--org-role", "ORG_GROUP_CREATOR", "--description", "runbook creator")
CREATOR = HTTPDigestAuth(made_key["publicKey"], made_key["privateKey"])
call("POST", "/groups", 404, body={"name": "runbook-two", "orgId": "0123456789abcdef01234567"}, key=CREATOR)
two = call("POST", "/groups", 200, body={"name": "runbook-two", "orgId": org}, key=CREATOR)
assert two["orgId"] == org and two["clusterCount"] == 0, two
again = call("POST", "/groups", 409, body={"name": "runbook-two", "orgId": org}, key=CREATOR)
assert again["errorCode"] == "GROUP_ALREADY_EXISTS", again
call("POST", "/groups", 400, body={"name": "no spaces", "orgId": org}, key=CREATOR, check_request=False)
assert call("GET", "/groups", 200, key=CREATOR)["totalCount"] == 2
assert call("GET", "/groups", 200)["totalCount"] == 1, "the owner key has no role in the new project"
denied = call("GET", "/groups/{groupId}", 401, {"groupId": two["id"]})
assert denied["errorCode"] == "USER_CANNOT_ACCESS_GROUP", denied
TWO_ROOT = next(p["dir"] for p in atrest_json("org", "projects") if p["id"] == two["id"])
two_status = atrest_json("project", "status", root=TWO_ROOT)
assert two_status["name"] == "runbook-two" and not two_status["encryptionAtRest"]["awsKms"]["enabled"], two_status
print("project runbook-two created by an ORG_GROUP_CREATOR key; the CLI opens it at", TWO_ROOT)

# --- Roles: a read-only key reads and changes nothing ------------------------------------

call("GET", "/groups/{groupId}/clusters", 200, {"groupId": group}, key=READER, version="2024-08-05")
call("GET", "/groups/{groupId}/encryptionAtRest", 401, {"groupId": group}, key=READER)
denied = call("PATCH", "/groups/{groupId}/encryptionAtRest", 401, {"groupId": group}, key=READER,
              body={"awsKms": {"enabled": True}})
assert denied["errorCode"] == "USER_UNAUTHORIZED", denied
call("POST", "/groups/{groupId}/cloudProviderAccess", 401, {"groupId": group}, key=READER,
     body={"providerName": "AWS"})
print("read-only key: reads, cannot PATCH")

# --- API keys through the API ---------------------------------------------------------------

keys = "/groups/{groupId}/apiKeys"
one_key = keys + "/{apiUserId}"
listed = call("GET", keys, 200, {"groupId": group})
assert {sys.argv[5], sys.argv[7]} <= {k["publicKey"] for k in listed["results"]}, listed
assert all(k["privateKey"].startswith("****") for k in listed["results"]), listed
call("GET", keys, 401, {"groupId": group}, key=READER)
api_made = call("POST", keys, 200, {"groupId": group}, body={"desc": "runbook made", "roles": ["GROUP_READ_ONLY"]})
assert re.fullmatch(r"[0-9a-f-]{36}", api_made["privateKey"]), api_made
MADE = HTTPDigestAuth(api_made["publicKey"], api_made["privateKey"])
call("GET", "/groups/{groupId}", 200, {"groupId": group}, key=MADE)
call("GET", "/groups/{groupId}/encryptionAtRest", 401, {"groupId": group}, key=MADE)
where_key = {"groupId": group, "apiUserId": api_made["id"]}
bad = call("PATCH", one_key, 400, where_key, body={"roles": ["GROUP_DATA_ACCESS_ADMIN"]})
assert bad["errorCode"] == "INVALID_ROLE_FOR_GROUP", bad
call("PATCH", one_key, 400, where_key, body={"roles": ["GROUP_OWNER", "GROUP_READ_ONLY"]})
changed = call("PATCH", one_key, 200, where_key, body={"roles": ["GROUP_OWNER"], "desc": "promoted"})
assert changed["roles"] == [{"groupId": group, "roleName": "GROUP_OWNER"}] and changed["desc"] == "promoted", changed
call("GET", "/groups/{groupId}/encryptionAtRest", 200, {"groupId": group}, key=MADE)
call("DELETE", one_key, 204, where_key)
gone = requests.get(URL + BASE + "/groups", auth=MADE, timeout=30)
assert gone.status_code == 401, gone.status_code
print("an API key made, promoted and deleted through the API; deleted, it authenticates nothing")

# --- Authorize a role ---------------------------------------------------------------------

role = call("POST", "/groups/{groupId}/cloudProviderAccess", 200, {"groupId": group}, body={"providerName": "AWS"})
assert "iamAssumedRoleArn" not in role and role["atlasAssumedRoleExternalId"], role
account = status["cloudProviderAccessRoles"][0]["iamAssumedRoleArn"].split(":")[4]
arn = f"arn:aws:iam::{account}:role/atlas-runbook"
authorized = call("PATCH", "/groups/{groupId}/cloudProviderAccess/{roleId}", 200,
                  {"groupId": group, "roleId": role["roleId"]},
                  body={"providerName": "AWS", "iamAssumedRoleArn": arn})
assert authorized["iamAssumedRoleArn"] == arn and authorized["authorizedDate"], authorized
assert authorized["atlasAssumedRoleExternalId"] == role["atlasAssumedRoleExternalId"], authorized
listed = call("GET", "/groups/{groupId}/cloudProviderAccess", 200, {"groupId": group})
assert role["roleId"] in [r["roleId"] for r in listed["awsIamRoles"]], listed
call("PATCH", "/groups/{groupId}/cloudProviderAccess/{roleId}", 400,
     {"groupId": group, "roleId": role["roleId"]}, body={"providerName": "GCP", "iamAssumedRoleArn": arn})
print("role set up and authorized:", role["roleId"])

# --- Enable encryption at rest with that role ----------------------------------------------

old_cmk = status["encryptionAtRest"]["awsKms"]["customerMasterKeyID"]
ear = call("PATCH", "/groups/{groupId}/encryptionAtRest", 200, {"groupId": group},
           body={"awsKms": {"enabled": True, "customerMasterKeyID": old_cmk, "region": "US_EAST_1",
                            "roleId": role["roleId"]}})
assert ear["awsKms"]["enabled"] and ear["awsKms"]["valid"], ear
assert "roleId" not in ear["awsKms"], "roleId is write-only"
call("PATCH", "/groups/{groupId}/encryptionAtRest", 400, {"groupId": group},
     body={"awsKms": {"valid": True}}, check_request=False)
call("PATCH", "/groups/{groupId}/encryptionAtRest", 400, {"groupId": group},
     body={"awsKms": {"enabled": True, "colour": "blue"}}, check_request=False)
call("PATCH", "/groups/{groupId}/encryptionAtRest", 400, {"groupId": group},
     body={"azureKeyVault": {"enabled": True}})
call("PATCH", "/groups/{groupId}/encryptionAtRest", 400, {"groupId": group}, raw_body="{not json")
roles = call("GET", "/groups/{groupId}/cloudProviderAccess/{roleId}", 200, {"groupId": group, "roleId": role["roleId"]})
assert roles["featureUsages"] == [{"featureType": "ENCRYPTION_AT_REST"}], roles
assert atrest_json("project", "status")["encryptionAtRest"]["awsKms"]["roleId"] == role["roleId"]
call("DELETE", "/groups/{groupId}/cloudProviderAccess/{cloudProvider}/{roleId}", 400,
     {"groupId": group, "cloudProvider": "AWS", "roleId": role["roleId"]})
print("encryption at rest enabled through the role; the CLI sees it")

# --- An M10 cluster with the AWS provider ---------------------------------------------------

def cluster_body(name, size, provider="AWS"):
    return {
        "name": name,
        "clusterType": "REPLICASET",
        "backupEnabled": True,
        "encryptionAtRestProvider": provider,
        "replicationSpecs": [{"regionConfigs": [{
            "providerName": "AWS", "regionName": "US_EAST_1", "priority": 7,
            "electableSpecs": {"instanceSize": size, "nodeCount": 3, "diskSizeGB": 10},
        }]}],
    }


clusters = "/groups/{groupId}/clusters"
one_cluster = "/groups/{groupId}/clusters/{clusterName}"
made = call("POST", clusters, 201, {"groupId": group}, body=cluster_body("Runbook", "M10"), version="2024-08-05")
assert made["encryptionAtRestProvider"] == "AWS" and made["stateName"] == "IDLE", made
small = call("POST", clusters, 400, {"groupId": group}, body=cluster_body("Small", "M5"), version="2024-08-05")
assert small["errorCode"] == "CANNOT_USE_ENCRYPTION_AT_REST_TENANT", small
call("POST", clusters, 400, {"groupId": group}, body=cluster_body("Runbook", "M10"), version="2024-08-05")
call("POST", clusters, 201, {"groupId": group}, body=cluster_body("Other", "M10", "NONE"), version="2024-10-23")
r = requests.post(URL + BASE + f"/groups/{group}/clusters", json=cluster_body("Old", "M10"),
                  headers={"Accept": "application/vnd.atlas.2025-01-01+json"}, auth=OWNER, timeout=30)
assert r.status_code == 406, r.text
got = call("GET", one_cluster, 200, {"groupId": group, "clusterName": "Runbook"}, version="2024-08-05")
assert got["replicationSpecs"][0]["regionConfigs"][0]["electableSpecs"]["instanceSize"] == "M10", got
call("GET", one_cluster, 404, {"groupId": group, "clusterName": "Nothing"}, version="2024-08-05")
cli_clusters = [c["spec"]["name"] for c in atrest_json("project", "status")["clusters"]]
assert "Runbook" in cli_clusters and "Other" in cli_clusters, cli_clusters
atrest("--cluster", "Runbook", "put", "runbook", "k1", "written before the snapshot")
print("cluster Runbook created (M10, AWS); an M5 with AWS refused")

# --- Switch a cluster's provider: the rolling rewrite ---------------------------------------

atrest("--cluster", "Other", "put", "runbook", "k1", "plain, then encrypted")
switched = call("PATCH", one_cluster, 200, {"groupId": group, "clusterName": "Other"},
                body={"encryptionAtRestProvider": "AWS"}, version="2024-08-05")
assert switched["encryptionAtRestProvider"] == "AWS" and switched["stateName"] == "IDLE", switched
every_node_holds("Other", 1)
assert all(n["encrypted"] for n in atrest_json("cluster", "status", "Other")["nodes"])
call("PATCH", one_cluster, 400, {"groupId": group, "clusterName": "Other"},
     body={"replicationSpecs": [{"regionConfigs": [{"providerName": "AWS", "regionName": "US_EAST_1",
           "electableSpecs": {"instanceSize": "M5", "nodeCount": 3}}]}]}, version="2024-08-05")
print("cluster Other rewritten encrypted, node by node; its data on every node")

# --- The older cluster shapes: 2023-01-01 (legacy) and 2023-02-01 ---------------------------

legacy = call("POST", clusters, 201, {"groupId": group}, version="2023-01-01", body={
    "name": "Legacy", "clusterType": "REPLICASET", "providerBackupEnabled": True, "diskSizeGB": 10,
    "encryptionAtRestProvider": "AWS", "replicationFactor": 3,
    "providerSettings": {"providerName": "AWS", "instanceSizeName": "M10", "regionName": "US_EAST_1"}})
assert legacy["providerSettings"]["instanceSizeName"] == "M10" and legacy["replicationFactor"] == 3, legacy
where_legacy = {"groupId": group, "clusterName": "Legacy"}
advanced = call("GET", one_cluster, 200, where_legacy, version="2023-02-01")
assert advanced["replicationSpecs"][0]["numShards"] == 1 and advanced["encryptionAtRestProvider"] == "AWS", advanced
call("PATCH", one_cluster, 200, where_legacy, version="2023-02-01", body={"replicationSpecs": [{"numShards": 1,
     "regionConfigs": [{"providerName": "AWS", "regionName": "US_EAST_1", "priority": 7,
                        "electableSpecs": {"instanceSize": "M20", "nodeCount": 3}}]}]})
assert call("GET", one_cluster, 200, where_legacy, version="2023-01-01")["providerSettings"]["instanceSizeName"] == "M20"
assert [n for n in atrest_json("cluster", "status", "Legacy")["nodes"] if n["encrypted"]].__len__() == 3
call("POST", clusters, 400, {"groupId": group}, version="2023-01-01", check_request=False, body={
    "name": "Sharded", "numShards": 2,
    "providerSettings": {"providerName": "AWS", "instanceSizeName": "M10", "regionName": "US_EAST_1"}})
call("POST", clusters, 400, {"groupId": group}, version="2023-02-01", check_request=False,
     body=dict(cluster_body("Newer", "M10"), retainBackups=True))
legacy_list = call("GET", clusters, 200, {"groupId": group}, version="2023-01-01")
assert "Legacy" in [c["name"] for c in legacy_list["results"]], legacy_list
print("a cluster made in the 2023-01-01 shape, read in 2023-02-01's, resized in it, read back in 2023-01-01's")

# --- A snapshot under the current CMK ----------------------------------------------------

snaps = "/groups/{groupId}/clusters/{clusterName}/backup/snapshots"
one_snap = snaps + "/{snapshotId}"
snapshot = call("POST", snaps, 200, {"groupId": group, "clusterName": "Runbook"},
                body={"description": "before the rotation", "retentionInDays": 7})
old_key_id = old_cmk.rsplit("/", 1)[1]
assert snapshot["masterKeyUUID"] == old_key_id and snapshot["status"] == "completed", snapshot
listed = call("GET", snaps, 200, {"groupId": group, "clusterName": "Runbook"})
assert [s["id"] for s in listed["results"]] == [snapshot["id"]], listed
call("GET", one_snap, 200, {"groupId": group, "clusterName": "Runbook", "snapshotId": snapshot["id"]})
call("GET", one_snap, 404, {"groupId": group, "clusterName": "Runbook", "snapshotId": "0" * 24})
atrest("--cluster", "Runbook", "put", "runbook", "k2", "written after the snapshot")
print("snapshot", snapshot["id"], "under", old_key_id)

# --- Rotate the CMK by PATCHing a new key -------------------------------------------------

new_cmk = atrest_json("kms", "create-key", "--description", "runbook rotation")["KeyMetadata"]["Arn"]
rotated = call("PATCH", "/groups/{groupId}/encryptionAtRest", 200, {"groupId": group},
               body={"awsKms": {"enabled": True, "customerMasterKeyID": new_cmk, "region": "US_EAST_1",
                                "roleId": role["roleId"]}})
assert rotated["awsKms"]["customerMasterKeyID"] == new_cmk and rotated["awsKms"]["valid"], rotated
for cluster in ("Runbook", "Other"):
    for node in atrest_json("cluster", "status", cluster)["nodes"]:
        assert node["keys"]["cmk_arn"] == new_cmk, node
names = event_names()
assert "ENCRYPTION_AT_REST_KEY_ROTATION_STARTED" in names and "AWS_ENCRYPTION_KEY_ROTATED" in names, names
print("CMK rotated to", new_cmk)

# --- Disable the old key: the cluster keeps working, the old snapshot cannot restore --------

atrest("kms", "disable-key", "--key-id", old_cmk)
assert "written before the snapshot" in atrest("--cluster", "Runbook", "get", "runbook", "k1")
every_node_holds("Runbook", 2)
jobs = "/groups/{groupId}/clusters/{clusterName}/backup/restoreJobs"
refused = call("POST", jobs, 400, {"groupId": group, "clusterName": "Runbook"},
               body={"snapshotId": snapshot["id"], "deliveryType": "automated",
                     "targetClusterName": "Runbook", "targetGroupId": group})
assert refused["errorCode"] == "AWS_KMS_CUSTOMER_MASTER_KEY_NOT_ENABLED", refused
print("old key disabled: cluster up, old snapshot refused:", refused["detail"][:100])

# --- Disable the current key: valid false now, shut down at the next check -----------------

atrest("kms", "disable-key", "--key-id", new_cmk)
ear = call("GET", "/groups/{groupId}/encryptionAtRest", 200, {"groupId": group})
assert ear["awsKms"]["valid"] is False, ear
assert emulator("GET", "status")["shutDown"] is None
emulator("POST", "clock", {"advance": "16m"})
tick = emulator("POST", "tick")
assert tick["check"]["result"] == "invalid", tick
assert emulator("GET", "status")["shutDown"], "shut down after the check"
assert "shut down" in atrest_fails("--cluster", "Runbook", "get", "runbook", "k1")
alerts = call("GET", "/groups/{groupId}/alerts", 200, {"groupId": group}, query={"status": "OPEN"})
assert [a["eventTypeName"] for a in alerts["results"]] == ["AWS_ENCRYPTION_KEY_INVALID"], alerts
where_alert = {"groupId": group, "alertId": alerts["results"][0]["id"]}
call("GET", "/groups/{groupId}/alerts/{alertId}", 200, where_alert)
acked = call("PATCH", "/groups/{groupId}/alerts/{alertId}", 200, where_alert,
             body={"acknowledgedUntil": "2099-01-01T00:00:00Z", "acknowledgementComment": "on it"})
assert acked["acknowledgedUntil"].startswith("2099-01-01") and acked["acknowledgementComment"] == "on it", acked
call("PATCH", "/groups/{groupId}/alerts/{alertId}", 401, where_alert, key=READER,
     body={"acknowledgedUntil": "2099-01-01T00:00:00Z"})
call("PATCH", "/groups/{groupId}/alerts/{alertId}", 400, where_alert, body={"acknowledgementComment": "no date"})
unacked = call("PATCH", "/groups/{groupId}/alerts/{alertId}", 200, where_alert, body={"unacknowledgeAlert": True})
assert "acknowledgedUntil" not in unacked and unacked["status"] == "OPEN", unacked
assert "AWS_ENCRYPTION_KEY_INVALID" in event_names()
print("current key disabled: valid false, clusters shut down after the check, alert open")

# --- Re-enable, recover -------------------------------------------------------------------

atrest("kms", "enable-key", "--key-id", new_cmk)
check = emulator("POST", "check")
assert check["result"] == "valid", check
assert "written before the snapshot" in atrest("--cluster", "Runbook", "get", "runbook", "k1")
every_node_holds("Runbook", 2)
assert call("GET", "/groups/{groupId}/encryptionAtRest", 200, {"groupId": group})["awsKms"]["valid"] is True
assert call("GET", "/groups/{groupId}/alerts", 200, {"groupId": group}, query={"status": "OPEN"})["results"] == []
atrest("kms", "enable-key", "--key-id", old_cmk)
job = call("POST", jobs, 200, {"groupId": group, "clusterName": "Runbook"},
           body={"snapshotId": snapshot["id"], "deliveryType": "automated",
                 "targetClusterName": "Runbook", "targetGroupId": group})
assert job["snapshotId"] == snapshot["id"] and job["finishedAt"], job
every_node_holds("Runbook", 1)
assert "written before the snapshot" in atrest("--cluster", "Runbook", "get", "runbook", "k1")
listed = call("GET", jobs, 200, {"groupId": group, "clusterName": "Runbook"})
assert [j["id"] for j in listed["results"]] == [job["id"]], listed
call("GET", jobs + "/{restoreJobId}", 200, {"groupId": group, "clusterName": "Runbook", "restoreJobId": job["id"]})
print("key re-enabled: clusters back, restore of the old snapshot done, every node holds it")

# --- Restore into a cluster of the other project ------------------------------------------

where_two = {"groupId": two["id"]}
role_two = call("POST", "/groups/{groupId}/cloudProviderAccess", 200, where_two, body={"providerName": "AWS"},
                key=CREATOR)
call("PATCH", "/groups/{groupId}/cloudProviderAccess/{roleId}", 200,
     {"groupId": two["id"], "roleId": role_two["roleId"]},
     body={"providerName": "AWS", "iamAssumedRoleArn": f"arn:aws:iam::{account}:role/atlas-runbook-two"},
     key=CREATOR)
two_cmk = atrest_json("kms", "create-key", "--description", "runbook-two", root=TWO_ROOT)["KeyMetadata"]["Arn"]
ear_two = call("PATCH", "/groups/{groupId}/encryptionAtRest", 200, where_two, key=CREATOR,
               body={"awsKms": {"enabled": True, "customerMasterKeyID": two_cmk, "region": "US_EAST_1",
                                "roleId": role_two["roleId"]}})
assert ear_two["awsKms"]["valid"], ear_two
call("POST", clusters, 201, where_two, body=cluster_body("Target", "M10"), version="2024-08-05", key=CREATOR)
denied = call("POST", jobs, 401, {"groupId": group, "clusterName": "Runbook"},
              body={"snapshotId": snapshot["id"], "deliveryType": "automated",
                    "targetClusterName": "Target", "targetGroupId": two["id"]})
assert denied["errorCode"] == "USER_CANNOT_ACCESS_GROUP", denied
across = call("POST", jobs, 200, {"groupId": group, "clusterName": "Runbook"}, key=CREATOR,
              body={"snapshotId": snapshot["id"], "deliveryType": "automated",
                    "targetClusterName": "Target", "targetGroupId": two["id"]})
assert across["targetGroupId"] == two["id"] and across["targetClusterName"] == "Target", across
every_node_holds("Target", 1, root=TWO_ROOT)
assert "written before the snapshot" in atrest("--cluster", "Target", "get", "runbook", "k1", root=TWO_ROOT)
for node in atrest_json("cluster", "status", "Target", root=TWO_ROOT)["nodes"]:
    assert node["keys"]["cmk_arn"] == two_cmk, node
# One KMS for the organization: the key made through the second project is the first's too.
assert two_cmk in atrest("kms", "list-keys")
assert "CPS_RESTORE_SUCCESSFUL" in [e["eventTypeName"] for e in call(
    "GET", "/groups/{groupId}/events", 200, where_two, key=CREATOR)["results"]]
print("snapshot of Runbook restored into runbook-two's Target, every node, under that project's CMK")

# --- Private endpoints on the emulator clock ----------------------------------------------

endpoints = "/groups/{groupId}/encryptionAtRest/{cloudProvider}/privateEndpoints"
one_endpoint = endpoints + "/{endpointId}"
where = {"groupId": group, "cloudProvider": "AWS"}
r = requests.post(URL + BASE + endpoints.format(**where), json={"regionName": "US_EAST_1"},
                  headers={"Accept": "application/vnd.atlas.2023-01-01+json"}, auth=OWNER, timeout=30)
assert r.status_code == 400 and "requirePrivateNetworking" in r.json()["detail"], r.text
call("PATCH", "/groups/{groupId}/encryptionAtRest", 200, {"groupId": group},
     body={"awsKms": {"requirePrivateNetworking": True}})
endpoint = call("POST", endpoints, 202, where, body={"regionName": "US_EAST_1"})
assert endpoint["status"] == "INITIATING", endpoint
seen = {"groupId": group, "cloudProvider": "AWS", "endpointId": endpoint["id"]}
for advance, expected in (("2m", "PENDING_ACCEPTANCE"), ("5m", "ACTIVE")):
    emulator("POST", "clock", {"advance": advance})
    assert call("GET", one_endpoint, 200, seen)["status"] == expected
assert [e["id"] for e in call("GET", endpoints, 200, where)["results"]] == [endpoint["id"]]
call("DELETE", one_endpoint, 204, seen)
assert call("GET", one_endpoint, 200, seen)["status"] == "DELETING"
emulator("POST", "clock", {"advance": "2m"})
call("GET", one_endpoint, 404, seen)
print("private endpoint INITIATING -> PENDING_ACCEPTANCE -> ACTIVE -> DELETING -> gone")

# --- Alert configurations: the reminder after 30 days instead of 90 ---------------------

configs = "/groups/{groupId}/alertConfigs"
one_config = configs + "/{alertConfigId}"
by_type = {c["eventTypeName"]: c for c in call("GET", configs, 200, {"groupId": group})["results"]}
reminder = by_type["AWS_ENCRYPTION_KEY_NEEDS_ROTATION"]
assert reminder["enabled"] and reminder["threshold"] == {
    "operator": "GREATER_THAN", "threshold": 90, "units": "DAYS"}, reminder
notify = [{"typeName": "GROUP", "intervalMin": 60, "delayMin": 0, "emailEnabled": True,
           "smsEnabled": False, "roles": ["GROUP_OWNER"]}]
in_30_days = {"eventTypeName": "AWS_ENCRYPTION_KEY_NEEDS_ROTATION", "enabled": True, "notifications": notify,
              "threshold": {"operator": "GREATER_THAN", "threshold": 30, "units": "DAYS"}}
where_reminder = {"groupId": group, "alertConfigId": reminder["id"]}
call("PUT", one_config, 401, where_reminder, body=in_30_days, key=READER)
changed = call("PUT", one_config, 200, where_reminder, body=in_30_days)
assert changed["threshold"]["threshold"] == 30 and changed["notifications"] == notify, changed
assert call("GET", one_config, 200, where_reminder)["threshold"]["threshold"] == 30
where_invalid = {"groupId": group, "alertConfigId": by_type["AWS_ENCRYPTION_KEY_INVALID"]["id"]}
assert call("PATCH", one_config, 200, where_invalid, body={"enabled": False})["enabled"] is False
assert call("PATCH", one_config, 200, where_invalid, body={"enabled": True})["enabled"] is True
for body, code in (
    ({"eventTypeName": "HOST_DOWN", "enabled": True, "notifications": notify}, "INVALID_EVENT_TYPE_FOR_ALERT"),
    ({"eventTypeName": "AWS_ENCRYPTION_KEY_NEEDS_ROTATION", "enabled": True, "notifications": notify},
     "MISSING_THRESHOLD"),
    ({"eventTypeName": "AWS_ENCRYPTION_KEY_INVALID", "enabled": True, "notifications": []}, "MISSING_NOTIFICATIONS"),
):
    refused = call("POST", configs, 400, {"groupId": group}, body=body, check_request=False)
    assert refused["errorCode"] == code, refused
extra = call("POST", configs, 200, {"groupId": group},
             body={"eventTypeName": "AWS_ENCRYPTION_KEY_INVALID", "enabled": True, "notifications": notify})
call("DELETE", one_config, 204, {"groupId": group, "alertConfigId": extra["id"]})
gone = call("GET", one_config, 404, {"groupId": group, "alertConfigId": extra["id"]})
assert gone["errorCode"] == "ALERT_CONFIG_NOT_FOUND", gone
emulator("POST", "clock", {"advance": "31d"})
emulator("POST", "tick")
alerts = call("GET", "/groups/{groupId}/alerts", 200, {"groupId": group}, query={"status": "OPEN"})
reminders = [a for a in alerts["results"] if a["eventTypeName"] == "AWS_ENCRYPTION_KEY_NEEDS_ROTATION"]
assert len(reminders) == 1 and reminders[0]["alertConfigId"] == reminder["id"], alerts
raised = call("GET", one_config + "/alerts", 200, where_reminder)
assert [a["id"] for a in raised["results"]] == [reminders[0]["id"]], raised
by_alert = call("GET", "/groups/{groupId}/alerts/{alertId}/alertConfigs", 200,
                {"groupId": group, "alertId": reminders[0]["id"]})
assert [c["id"] for c in by_alert["results"]] == [reminder["id"]], by_alert
print("alert configurations: the reminder edited to 30 days fires after 31; bad ones refused")
page = call("GET", "/groups/{groupId}/events", 200, {"groupId": group}, query={"itemsPerPage": 2, "pageNum": 2})
assert len(page["results"]) == 2 and page["totalCount"] > 4, page
one = page["results"][0]
call("GET", "/groups/{groupId}/events/{eventId}", 200, {"groupId": group, "eventId": one["id"]})
filtered = call("GET", "/groups/{groupId}/events", 200, {"groupId": group},
                query={"eventType": "CPS_SNAPSHOT_SUCCESSFUL"})
assert [e["eventTypeName"] for e in filtered["results"]] == ["CPS_SNAPSHOT_SUCCESSFUL"], filtered
print("events page and filter")

# --- The CLI's changes show through the API ------------------------------------------------

atrest("cluster", "create", "FromCli", "--tier", "M10", "--nodes", "1")
names = [c["name"] for c in call("GET", clusters, 200, {"groupId": group}, version="2024-08-05")["results"]]
assert "FromCli" in names, names
call("DELETE", one_snap, 204, {"groupId": group, "clusterName": "Runbook", "snapshotId": snapshot["id"]})
assert call("GET", snaps, 200, {"groupId": group, "clusterName": "Runbook"})["results"] == []
call("DELETE", "/groups/{groupId}/cloudProviderAccess/{cloudProvider}/{roleId}", 404,
     {"groupId": group, "cloudProvider": "AWS", "roleId": "0" * 24})
print("a cluster made by the CLI is listed by the API")

# --- Deleting clusters and projects ---------------------------------------------------------

busy = call("DELETE", "/groups/{groupId}", 409, where_two, key=CREATOR)
assert busy["errorCode"] == "CANNOT_CLOSE_GROUP_ACTIVE_ATLAS_CLUSTERS", busy
call("DELETE", one_cluster, 401, {"groupId": group, "clusterName": "Other"}, key=READER, version="2023-02-01")
call("DELETE", one_cluster, 202, {"groupId": two["id"], "clusterName": "Target"}, key=CREATOR, version="2023-02-01")
call("GET", one_cluster, 404, {"groupId": two["id"], "clusterName": "Target"}, key=CREATOR, version="2024-08-05")
assert atrest_json("project", "status", root=TWO_ROOT)["clusters"] == []
call("DELETE", "/groups/{groupId}", 204, where_two, key=CREATOR)
call("GET", "/groups/{groupId}", 404, where_two, key=CREATOR)
assert [p["id"] for p in atrest_json("org", "projects")] == [group]
call("DELETE", "/groups/{groupId}", 400, {"groupId": group})
kept = call("POST", snaps, 200, {"groupId": group, "clusterName": "Other"}, body={"description": "kept"})
call("DELETE", one_cluster, 202, {"groupId": group, "clusterName": "Other"}, query={"retainBackups": "true"})
assert kept["id"] in [s["id"][:24] for s in atrest_json("snapshot", "list")["snapshots"]]
print("clusters and the second project deleted; a snapshot kept with retainBackups")

for dirpath, _, files in os.walk(ROOT):
    for name in files:
        with open(os.path.join(dirpath, name), "rb") as f:
            held = f.read()
            for private in (made_key["privateKey"], api_made["privateKey"]):
                assert private.encode() not in held, f"{name} holds a private key"

operations = sorted({(m, t) for m, t, _ in CHECKED})
# Every route atlas serve has (src/atlas/routes.rs) answered at least once here.
assert len(operations) == 44, operations
print(f"{len(CHECKED)} responses of {len(operations)} operations valid against Atlas's OpenAPI document")
print("runbook ok")

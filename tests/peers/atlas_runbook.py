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
    # HardwareSpec20240805 is flattened the same way, keeping the tenant sizes (M0, M2,
    # M5) only: a dedicated cluster's size is one of DedicatedHardwareSpec20240805's.
    schemas = spec["components"]["schemas"]
    sizes = schemas["HardwareSpec20240805"]["properties"]["instanceSize"]
    sizes["enum"] = sizes["enum"] + schemas["DedicatedHardwareSpec20240805"]["properties"]["instanceSize"]["enum"]
    # ApiError.parameters types its items as objects (a list of anything, as generated);
    # Atlas sends the values its detail names, strings, and so does atrest.
    spec["components"]["schemas"]["ApiError"]["properties"]["parameters"]["items"] = {}
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


def atrest(*args):
    out = subprocess.run([ATREST, "--root", ROOT, "--wait", *args], capture_output=True, text=True)
    assert out.returncode == 0, f"atrest {args}: {out.stderr}"
    return out.stdout


def atrest_json(*args):
    return json.loads(atrest(*args, "--json"))


def atrest_fails(*args):
    out = subprocess.run([ATREST, "--root", ROOT, "--wait", *args], capture_output=True, text=True)
    assert out.returncode != 0, f"atrest {args} should have failed: {out.stdout}"
    return out.stderr


def emulator(method, path, body=None, expect=200):
    response = requests.request(method, f"{URL}/atrest/v1/{path}", json=body, auth=OWNER, timeout=120)
    assert response.status_code == expect, f"{method} /atrest/v1/{path}: {response.status_code} {response.text[:400]}"
    return response.json() if response.content else None


def every_node_holds(cluster, records):
    verification = atrest_json("cluster", "verify", cluster)
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
call("POST", "/groups", 403, body={"name": "another", "orgId": "0123456789abcdef01234567"})
r = requests.get(URL + BASE + f"/groups/{group}", headers={"Accept": "application/vnd.atlas.1999-01-01+json"},
                 auth=OWNER, timeout=30)
assert r.status_code == 406 and r.json()["error"] == 406, r.text
r = requests.get(URL + BASE + f"/groups/{group}?envelope=true&pretty=true", auth=OWNER, timeout=30)
assert r.status_code == 200 and r.json()["status"] == 200 and r.json()["content"]["id"] == group, r.text
assert "\n  " in r.text, "pretty=true indents"
for bad in ({"itemsPerPage": "0"}, {"pageNum": "0"}, {"includeCount": "maybe"}):
    call("GET", "/groups", 400, query=bad)
print("groups, 404, 406, envelope, pretty and paging as the document says")

# --- Roles: a read-only key reads and changes nothing ------------------------------------

call("GET", "/groups/{groupId}/clusters", 200, {"groupId": group}, key=READER, version="2024-08-05")
call("GET", "/groups/{groupId}/encryptionAtRest", 403, {"groupId": group}, key=READER)
call("PATCH", "/groups/{groupId}/encryptionAtRest", 403, {"groupId": group}, key=READER,
     body={"awsKms": {"enabled": True}})
call("POST", "/groups/{groupId}/cloudProviderAccess", 403, {"groupId": group}, key=READER,
     body={"providerName": "AWS"})
print("read-only key: reads, cannot PATCH")

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
call("POST", clusters, 400, {"groupId": group}, body=cluster_body("Small", "M5"), version="2024-08-05")
call("POST", clusters, 400, {"groupId": group}, body=cluster_body("Runbook", "M10"), version="2024-08-05")
call("POST", clusters, 201, {"groupId": group}, body=cluster_body("Other", "M10", "NONE"), version="2024-10-23")
r = requests.post(URL + BASE + f"/groups/{group}/clusters", json=cluster_body("Old", "M10"),
                  headers={"Accept": "application/vnd.atlas.2023-02-01+json"}, auth=OWNER, timeout=30)
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
call("GET", "/groups/{groupId}/alerts/{alertId}", 200, {"groupId": group, "alertId": alerts["results"][0]["id"]})
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

# --- The rotation reminder, 90 days on ----------------------------------------------------

emulator("POST", "clock", {"advance": "91d"})
emulator("POST", "tick")
alerts = call("GET", "/groups/{groupId}/alerts", 200, {"groupId": group}, query={"status": "OPEN"})
assert "AWS_ENCRYPTION_KEY_NEEDS_ROTATION" in [a["eventTypeName"] for a in alerts["results"]], alerts
page = call("GET", "/groups/{groupId}/events", 200, {"groupId": group}, query={"itemsPerPage": 2, "pageNum": 2})
assert len(page["results"]) == 2 and page["totalCount"] > 4, page
one = page["results"][0]
call("GET", "/groups/{groupId}/events/{eventId}", 200, {"groupId": group, "eventId": one["id"]})
filtered = call("GET", "/groups/{groupId}/events", 200, {"groupId": group},
                query={"eventType": "CPS_SNAPSHOT_SUCCESSFUL"})
assert [e["eventTypeName"] for e in filtered["results"]] == ["CPS_SNAPSHOT_SUCCESSFUL"], filtered
print("rotation reminder open after 90 days; events page and filter")

# --- The CLI's changes show through the API ------------------------------------------------

atrest("cluster", "create", "FromCli", "--tier", "M10", "--nodes", "1")
names = [c["name"] for c in call("GET", clusters, 200, {"groupId": group}, version="2024-08-05")["results"]]
assert "FromCli" in names, names
call("DELETE", one_snap, 204, {"groupId": group, "clusterName": "Runbook", "snapshotId": snapshot["id"]})
assert call("GET", snaps, 200, {"groupId": group, "clusterName": "Runbook"})["results"] == []
call("DELETE", "/groups/{groupId}/cloudProviderAccess/{cloudProvider}/{roleId}", 404,
     {"groupId": group, "cloudProvider": "AWS", "roleId": "0" * 24})
print("a cluster made by the CLI is listed by the API")

operations = sorted({(m, t) for m, t, _ in CHECKED})
print(f"{len(CHECKED)} responses of {len(operations)} operations valid against Atlas's OpenAPI document")
print("runbook ok")

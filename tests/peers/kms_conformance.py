"""Every operation `atrest kms serve` answers, checked against AWS's own KMS model.

Usage: python kms_conformance.py ENDPOINT_URL  (credentials and region from the environment)

botocore ships AWS KMS's service model (every operation, member, length, pattern and enum);
`kms_model` checks each raw answer against it. Then the AWS CLI runs the newer operations
over the wire. Exits non-zero, saying what differs, at the first difference. The
operations on asymmetric, HMAC and ML-KEM keys are `kms_asymmetric.py`'s.
"""
import base64
import json
import os
import subprocess
import sys

import boto3
from botocore.exceptions import ClientError

from kms_model import answered, checked, refused

ENDPOINT = sys.argv[1]
kms = checked(boto3.client("kms", endpoint_url=ENDPOINT))
MODEL = kms.meta.service_model
# Keys, their lifecycle and metadata.
key = kms.create_key(
    Description="conformance", Tags=[{"TagKey": "team", "TagValue": "storage"}]
)["KeyMetadata"]
key_id, key_arn = key["KeyId"], key["Arn"]
other = kms.create_key()["KeyMetadata"]["KeyId"]
kms.create_key(KeySpec="RSA_2048", KeyUsage="SIGN_VERIFY")
kms.create_key(KeySpec="HMAC_256", KeyUsage="GENERATE_VERIFY_MAC")
kms.describe_key(KeyId=key_id)
kms.list_keys(Limit=2)
kms.update_key_description(KeyId=key_id, Description="renamed")
assert "KeyLastUsage" not in kms.get_key_last_usage(KeyId=key_id), "a new key has no use"
kms.disable_key(KeyId=other)
refused(kms.encrypt, "DisabledException", KeyId=other, Plaintext=b"x")
kms.enable_key(KeyId=other)
refused(kms.describe_key, "NotFoundException", KeyId="alias/none")

# Cryptography.
blob = kms.encrypt(KeyId=key_id, Plaintext=b"conformance", EncryptionContext={"a": "1"})[
    "CiphertextBlob"
]
kms.decrypt(CiphertextBlob=blob, EncryptionContext={"a": "1"})
refused(kms.decrypt, "InvalidCiphertextException", CiphertextBlob=blob)
refused(kms.decrypt, "IncorrectKeyException", KeyId=other, CiphertextBlob=blob,
        EncryptionContext={"a": "1"})
kms.generate_data_key(KeyId=key_id, KeySpec="AES_256")
kms.generate_data_key_without_plaintext(KeyId=key_id, NumberOfBytes=16)
kms.generate_random(NumberOfBytes=32)
refused(kms.generate_random, "ValidationException", NumberOfBytes=1025)
usage = kms.get_key_last_usage(KeyId=key_id)["KeyLastUsage"]
assert usage["Operation"] == "GenerateDataKeyWithoutPlaintext", usage
moved = kms.re_encrypt(CiphertextBlob=blob, SourceEncryptionContext={"a": "1"},
                       DestinationKeyId=other, DestinationEncryptionContext={"b": "2"})
assert moved["SourceKeyId"] == key_arn, moved
opened = kms.decrypt(CiphertextBlob=moved["CiphertextBlob"], EncryptionContext={"b": "2"})
assert opened["Plaintext"] == b"conformance", opened
refused(kms.encrypt, "DryRunOperationException", KeyId=key_id, Plaintext=b"x", DryRun=True)

# Rotation.
kms.enable_key_rotation(KeyId=key_id, RotationPeriodInDays=90)
kms.get_key_rotation_status(KeyId=key_id)
kms.rotate_key_on_demand(KeyId=key_id)
kms.list_key_rotations(KeyId=key_id)
everything = kms.list_key_rotations(KeyId=key_id, IncludeKeyMaterial="ALL_KEY_MATERIAL")["Rotations"]
assert "RotationDate" not in everything[0] and len(everything) == 2, everything
kms.disable_key_rotation(KeyId=key_id)

# Aliases.
kms.create_alias(AliasName="alias/conformance", TargetKeyId=key_id)
refused(kms.create_alias, "AlreadyExistsException", AliasName="alias/conformance",
        TargetKeyId=other)
kms.update_alias(AliasName="alias/conformance", TargetKeyId=other)
kms.list_aliases(KeyId=other)
kms.delete_alias(AliasName="alias/conformance")

# Policies.
policy = kms.get_key_policy(KeyId=key_id, PolicyName="default")["Policy"]
kms.put_key_policy(KeyId=key_id, PolicyName="default", Policy=policy)
kms.list_key_policies(KeyId=key_id)
refused(kms.put_key_policy, "MalformedPolicyDocumentException", KeyId=key_id,
        PolicyName="default", Policy='{"Statement": []}')

# Tags.
kms.tag_resource(KeyId=key_id, Tags=[{"TagKey": "env", "TagValue": "ci"}])
tags = kms.list_resource_tags(KeyId=key_id)["Tags"]
assert tags == [{"TagKey": "team", "TagValue": "storage"}, {"TagKey": "env", "TagValue": "ci"}], tags
kms.untag_resource(KeyId=key_id, TagKeys=["env"])
refused(kms.tag_resource, "TagException", KeyId=key_id,
        Tags=[{"TagKey": "aws:reserved", "TagValue": "x"}])

# Grants: a role of another account gets Encrypt under a constraint, by grant only.
partner = "arn:aws:iam::444455556666:role/partner"
retirer = key_arn.split(":")[4].join(["arn:aws:iam::", ":role/retirer"])
made = kms.create_grant(KeyId=key_id, GranteePrincipal=partner, RetiringPrincipal=retirer,
                        Operations=["Encrypt", "Decrypt"], Name="conformance",
                        Constraints={"EncryptionContextSubset": {"app": "orders"}})
again = kms.create_grant(KeyId=key_id, GranteePrincipal=partner, RetiringPrincipal=retirer,
                         Operations=["Encrypt", "Decrypt"], Name="conformance",
                         Constraints={"EncryptionContextSubset": {"app": "orders"}})
assert made["GrantId"] == again["GrantId"], (made, again)
kms.encrypt(KeyId=key_id, Plaintext=b"x", GrantTokens=[made["GrantToken"]])
refused(kms.encrypt, "InvalidGrantTokenException", KeyId=key_id, Plaintext=b"x",
        GrantTokens=["forged"])
grants = kms.list_grants(KeyId=key_id, Limit=1)["Grants"]
assert grants[0]["Constraints"] == {"EncryptionContextSubset": {"app": "orders"}}, grants
assert kms.list_retirable_grants(RetiringPrincipal=retirer)["Grants"][0]["GrantId"] == made["GrantId"]
refused(kms.create_grant, "DryRunOperationException", KeyId=key_id, GranteePrincipal=partner,
        Operations=["Decrypt"], DryRun=True)
assert len(kms.list_grants(KeyId=key_id)["Grants"]) == 1, "a dry run made a grant"
refused(kms.create_grant, "InvalidArnException", KeyId=key_id, GranteePrincipal="bob",
        Operations=["Decrypt"])
kms.retire_grant(KeyId=key_arn, GrantId=made["GrantId"])
second = kms.create_grant(KeyId=key_id, GranteePrincipal=partner, Operations=["Decrypt"])
kms.revoke_grant(KeyId=key_id, GrantId=second["GrantId"])
refused(kms.revoke_grant, "NotFoundException", KeyId=key_id, GrantId=second["GrantId"])

# Deletion last.
kms.schedule_key_deletion(KeyId=other, PendingWindowInDays=7)
refused(kms.encrypt, "KMSInvalidStateException", KeyId=other, Plaintext=b"x")
kms.cancel_key_deletion(KeyId=other)
kms.enable_key(KeyId=other)  # a cancelled deletion leaves the key disabled, as in AWS

served = {
    "CreateKey", "DescribeKey", "ListKeys", "EnableKey", "DisableKey", "ScheduleKeyDeletion",
    "CancelKeyDeletion", "EnableKeyRotation", "DisableKeyRotation", "GetKeyRotationStatus",
    "RotateKeyOnDemand", "ListKeyRotations", "CreateAlias", "DeleteAlias", "ListAliases",
    "PutKeyPolicy", "GetKeyPolicy", "Encrypt", "Decrypt", "GenerateDataKey",
    "GenerateDataKeyWithoutPlaintext", "GenerateRandom", "UpdateKeyDescription", "UpdateAlias",
    "ListKeyPolicies", "ReEncrypt", "TagResource", "UntagResource", "ListResourceTags",
    "CreateGrant", "ListGrants", "ListRetirableGrants", "RetireGrant", "RevokeGrant",
    "GetKeyLastUsage",
}
# Generated from the model: every served operation that names a key, called with its
# required members filled in, on a key in each state that refuses, and on a key that does
# not exist. Each answer must be one the model lists for that operation.
disabled = kms.create_key()["KeyMetadata"]["KeyId"]
kms.disable_key(KeyId=disabled)
pending = kms.create_key()["KeyMetadata"]["KeyId"]
kms.schedule_key_deletion(KeyId=pending, PendingWindowInDays=7)
missing = "11111111-2222-4333-8444-555555555555"
filler = {
    "Plaintext": b"x", "CiphertextBlob": blob, "Policy": policy, "PolicyName": "default",
    "Tags": [{"TagKey": "k", "TagValue": "v"}], "TagKeys": ["k"], "NumberOfBytes": 16,
    "GranteePrincipal": partner, "Operations": ["Decrypt"], "GrantId": "0" * 64,
    "AliasName": "alias/generated", "Description": "generated", "RetiringPrincipal": retirer,
}
client_names = {op: MODEL.operation_model(op) for op in served}
provoked = 0
for name, op in sorted(client_names.items()):
    members = op.input_shape.members if op.input_shape else {}
    key_member = next((m for m in ("KeyId", "TargetKeyId", "DestinationKeyId") if m in members), None)
    # Operations that would take a key out of the state the loop relies on.
    if key_member is None or name in ("EnableKey", "CancelKeyDeletion", "ScheduleKeyDeletion"):
        continue
    method = getattr(kms, "".join("_" + c.lower() if c.isupper() else c for c in name).lstrip("_"))
    for target in (disabled, pending, missing):
        params = {m: filler[m] for m in op.input_shape.required_members if m in filler}
        params[key_member] = target
        if name == "Decrypt":
            params["KeyId"] = target
        try:
            method(**params)
        except ClientError:
            provoked += 1  # conforms() has checked the error against the model already
print(f"{provoked} errors provoked from the model's input shapes, all listed for their operations")

untested = sorted(op for op in served if "ok" not in answered.get(op, ()))
assert not untested, f"never answered successfully: {untested}"
print(f"{len(answered)} operations conform to botocore {MODEL.api_version} model:",
      ", ".join(f"{op} {sorted(codes)}" for op, codes in sorted(answered.items())))

# The AWS CLI, as a user types it, on the newer operations.
aws = os.path.join(os.path.dirname(sys.executable), "aws")


def cli(*args):
    out = subprocess.run([aws, "--endpoint-url", ENDPOINT, "--output", "json", "kms", *args],
                         capture_output=True, text=True)
    assert out.returncode == 0, f"aws kms {' '.join(args)}: {out.stderr}"
    return json.loads(out.stdout) if out.stdout.strip() else {}


cli("tag-resource", "--key-id", key_id, "--tags", "TagKey=cli,TagValue=yes")
assert {"TagKey": "cli", "TagValue": "yes"} in cli("list-resource-tags", "--key-id", key_id)["Tags"]
cli("untag-resource", "--key-id", key_id, "--tag-keys", "cli")
# The CLI takes binary input from files (fileb://), as AWS's documentation shows.
scratch = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"atrest-conformance-{os.getpid()}")
with open(scratch + ".txt", "wb") as f:
    f.write(b"from the cli")
sealed = cli("encrypt", "--key-id", key_id, "--plaintext", f"fileb://{scratch}.txt")
with open(scratch + ".bin", "wb") as f:
    f.write(base64.b64decode(sealed["CiphertextBlob"]))
moved = cli("re-encrypt", "--ciphertext-blob", f"fileb://{scratch}.bin",
            "--destination-key-id", other)
for suffix in (".txt", ".bin"):
    os.remove(scratch + suffix)
assert moved["KeyId"].endswith(other), moved
cli("update-key-description", "--key-id", key_id, "--description", "from the cli")
cli("generate-data-key-without-plaintext", "--key-id", key_id, "--key-spec", "AES_256")
cli("list-key-policies", "--key-id", key_id)
grant = cli("create-grant", "--key-id", key_id, "--grantee-principal", partner,
            "--operations", "Decrypt", "DescribeKey",
            "--constraints", "EncryptionContextEquals={app=cli}")
assert any(g["GrantId"] == grant["GrantId"]
           for g in cli("list-grants", "--key-id", key_id)["Grants"])
cli("revoke-grant", "--key-id", key_id, "--grant-id", grant["GrantId"])
retired = cli("create-grant", "--key-id", key_id, "--grantee-principal", partner,
              "--retiring-principal", retirer, "--operations", "Decrypt")
assert any(g["GrantId"] == retired["GrantId"]
           for g in cli("list-retirable-grants", "--retiring-principal", retirer)["Grants"])
cli("retire-grant", "--grant-token", retired["GrantToken"])
usage = cli("get-key-last-usage", "--key-id", other)
assert usage["KeyLastUsage"]["Operation"] == "ReEncrypt", usage
assert len(base64.b64decode(cli("generate-random", "--number-of-bytes", "24")["Plaintext"])) == 24
cli("create-alias", "--alias-name", "alias/cli", "--target-key-id", key_id)
cli("update-alias", "--alias-name", "alias/cli", "--target-key-id", other)
cli("enable-key-rotation", "--key-id", other)
cli("disable-key-rotation", "--key-id", other)
print("aws cli ok")

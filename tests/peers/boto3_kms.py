"""boto3 against `atrest kms serve`: what a user of another language sees.

Usage: python boto3_kms.py ENDPOINT_URL  (credentials and region from the environment)
Exits non-zero, saying why, if any step differs from AWS KMS's documented behaviour.
"""
import sys

import boto3
from botocore.exceptions import ClientError

kms = boto3.client("kms", endpoint_url=sys.argv[1])

key = kms.create_key(Description="from boto3")["KeyMetadata"]
assert key["KeyState"] == "Enabled" and key["KeySpec"] == "SYMMETRIC_DEFAULT", key
key_id = key["KeyId"]
print("created", key["Arn"])

context = {"app": "boto3"}
blob = kms.encrypt(KeyId=key_id, Plaintext=b"hello from python", EncryptionContext=context)
plain = kms.decrypt(KeyId=key_id, CiphertextBlob=blob["CiphertextBlob"], EncryptionContext=context)
assert plain["Plaintext"] == b"hello from python", plain
assert plain["KeyId"] == key["Arn"], plain
print("round trip ok")

try:
    kms.decrypt(KeyId=key_id, CiphertextBlob=blob["CiphertextBlob"])
    sys.exit("decrypt without the encryption context succeeded")
except ClientError as e:
    assert e.response["Error"]["Code"] == "InvalidCiphertextException", e.response
print("context enforced")

kms.disable_key(KeyId=key_id)
try:
    kms.encrypt(KeyId=key_id, Plaintext=b"x")
    sys.exit("a disabled key encrypted")
except ClientError as e:
    code = e.response["Error"]["Code"]
    assert code == "DisabledException", e.response
    print("disabled key refused:", code)

try:
    kms.describe_key(KeyId="alias/does-not-exist")
    sys.exit("an unknown alias was found")
except ClientError as e:
    assert e.response["Error"]["Code"] == "NotFoundException", e.response
print("not found ok")

# Pagination as boto3's paginators follow it: pages of 2, every key once.
for _ in range(4):
    kms.create_key(Description="page filler")
pages = list(kms.get_paginator("list_keys").paginate(PaginationConfig={"PageSize": 2}))
assert len(pages) >= 3 and all(len(p["Keys"]) <= 2 for p in pages), pages
ids = [k["KeyId"] for p in pages for k in p["Keys"]]
assert len(ids) == len(set(ids)) == 5, ids
assert pages[0]["Truncated"] and "NextMarker" in pages[0] and not pages[-1]["Truncated"], pages
try:
    kms.list_keys(Marker="not-a-marker")
    sys.exit("a made-up marker was accepted")
except ClientError as e:
    assert e.response["Error"]["Code"] == "InvalidMarkerException", e.response
print("pagination ok")

"""Asymmetric, HMAC and ML-KEM keys, imported key material and multi-Region keys of
`atrest kms serve`,
checked by an independent implementation: Python's `cryptography` (OpenSSL) verifies what
LocalKms signs, encrypts what it decrypts, agrees on ECDH secrets and encapsulates ML-KEM
secrets it opens, uses the data key pairs it makes, and wraps the key material it imports. Every answer is checked against botocore's KMS model
(`kms_model`); then the AWS CLI runs the same operations.

Usage: python kms_asymmetric.py ENDPOINT_URL  (credentials and region from the environment)
Exits non-zero, saying what differs, at the first difference.
"""
import base64
import json
import os
import subprocess
import sys

import boto3
from cryptography.hazmat.primitives import hashes, keywrap, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, mldsa, mlkem, padding, utils

import ed25519ph
from kms_model import answered, checked, refused

ENDPOINT = sys.argv[1]
kms = checked(boto3.client("kms", endpoint_url=ENDPOINT))
MESSAGE = b"signed by LocalKms, checked by OpenSSL"
HASHES = {"256": hashes.SHA256, "384": hashes.SHA384, "512": hashes.SHA512}


def create(spec, usage):
    return kms.create_key(KeySpec=spec, KeyUsage=usage)["KeyMetadata"]


def public_key(key_id):
    answer = kms.get_public_key(KeyId=key_id)
    return answer, serialization.load_der_public_key(answer["PublicKey"])


def hash_of(algorithm):
    return HASHES[algorithm.rsplit("_", 1)[1]]()


def verify_outside(public, algorithm, signature, message=MESSAGE, prehashed=False):
    """Verifies with OpenSSL, through `cryptography`; raises InvalidSignature if wrong."""
    if algorithm.startswith("ML_DSA") or algorithm == "ED25519_SHA_512":
        public.verify(signature, message)
        return
    h = hash_of(algorithm)
    chosen = utils.Prehashed(h) if prehashed else h
    if algorithm.startswith("RSASSA_PSS"):
        public.verify(signature, message,
                      padding.PSS(mgf=padding.MGF1(h), salt_length=h.digest_size), chosen)
    elif algorithm.startswith("RSASSA_PKCS1"):
        public.verify(signature, message, padding.PKCS1v15(), chosen)
    else:
        public.verify(signature, message, ec.ECDSA(chosen))


# Signing keys: every spec and every algorithm it lists, RAW and DIGEST.
signers = {}
for spec in ["RSA_2048", "RSA_3072", "RSA_4096", "ECC_NIST_P256", "ECC_NIST_P384",
             "ECC_NIST_P521", "ECC_SECG_P256K1", "ECC_NIST_EDWARDS25519", "ML_DSA_44",
             "ML_DSA_65", "ML_DSA_87"]:
    meta = create(spec, "SIGN_VERIFY")
    answer, public = public_key(meta["KeyId"])
    assert answer["KeySpec"] == spec and answer["KeyUsage"] == "SIGN_VERIFY", answer
    assert answer["SigningAlgorithms"] == meta["SigningAlgorithms"], (answer, meta)
    signers[spec] = meta["KeyId"]
    for algorithm in meta["SigningAlgorithms"]:
        if algorithm == "ED25519_PH_SHA_512":
            continue  # below: OpenSSL has no HashEdDSA to check it with
        signed = kms.sign(KeyId=meta["KeyId"], Message=MESSAGE, SigningAlgorithm=algorithm)
        assert signed["SigningAlgorithm"] == algorithm, signed
        verify_outside(public, algorithm, signed["Signature"])
        kms.verify(KeyId=meta["KeyId"], Message=MESSAGE, Signature=signed["Signature"],
                   SigningAlgorithm=algorithm)
        refused(kms.verify, "KMSInvalidSignatureException", KeyId=meta["KeyId"],
                Message=MESSAGE + b"!", Signature=signed["Signature"], SigningAlgorithm=algorithm)
        if algorithm.startswith(("RSASSA", "ECDSA")):
            h = hashes.Hash(hash_of(algorithm))
            h.update(MESSAGE)
            digest = h.finalize()
            signed = kms.sign(KeyId=meta["KeyId"], Message=digest, MessageType="DIGEST",
                              SigningAlgorithm=algorithm)
            verify_outside(public, algorithm, signed["Signature"], digest, prehashed=True)
            kms.verify(KeyId=meta["KeyId"], Message=MESSAGE, Signature=signed["Signature"],
                       SigningAlgorithm=algorithm)
            refused(kms.sign, "ValidationException", KeyId=meta["KeyId"], Message=digest[1:],
                    MessageType="DIGEST", SigningAlgorithm=algorithm)
    if spec.startswith("ML_DSA"):
        # FIPS 204's external mu: OpenSSL computes the representative, LocalKms signs it,
        # and the signature verifies as one over the message itself.
        hasher = mldsa.MLDSAMuHasher(public)
        hasher.update(MESSAGE)
        mu = hasher.finalize()
        signed = kms.sign(KeyId=meta["KeyId"], Message=mu, MessageType="EXTERNAL_MU",
                          SigningAlgorithm="ML_DSA_SHAKE_256")
        public.verify(signed["Signature"], MESSAGE)
        kms.verify(KeyId=meta["KeyId"], Message=MESSAGE, Signature=signed["Signature"],
                   SigningAlgorithm="ML_DSA_SHAKE_256")
        refused(kms.sign, "ValidationException", KeyId=meta["KeyId"], Message=mu[1:],
                MessageType="EXTERNAL_MU", SigningAlgorithm="ML_DSA_SHAKE_256")
print(f"signatures of {len(signers)} key specs verified by OpenSSL")

# Ed25519ph: the DIGEST is hashed once more inside HashEdDSA, as AWS documents; checked
# with an RFC 8032 verifier of the test's own.
ed = signers["ECC_NIST_EDWARDS25519"]
ed_public = public_key(ed)[1].public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
digest = hashes.Hash(hashes.SHA512())
digest.update(MESSAGE)
digest = digest.finalize()
signed = kms.sign(KeyId=ed, Message=digest, MessageType="DIGEST", SigningAlgorithm="ED25519_PH_SHA_512")
assert ed25519ph.verify(ed_public, digest, signed["Signature"]), "HashEdDSA signature invalid"
assert not ed25519ph.verify(ed_public, MESSAGE, signed["Signature"])
kms.verify(KeyId=ed, Message=digest, MessageType="DIGEST", Signature=signed["Signature"],
           SigningAlgorithm="ED25519_PH_SHA_512")
refused(kms.sign, "ValidationException", KeyId=ed, Message=MESSAGE, MessageType="DIGEST",
        SigningAlgorithm="ED25519_SHA_512")
refused(kms.sign, "ValidationException", KeyId=ed, Message=MESSAGE,
        SigningAlgorithm="ED25519_PH_SHA_512")
print("Ed25519ph signatures verified by RFC 8032")
refused(kms.sign, "InvalidKeyUsageException", KeyId=signers["ECC_NIST_P256"], Message=MESSAGE,
        SigningAlgorithm="ECDSA_SHA_384")
refused(kms.sign, "ValidationException", KeyId=signers["RSA_2048"], Message=bytes(4097),
        SigningAlgorithm="RSASSA_PSS_SHA_256")

# RSA encryption: OpenSSL encrypts under the public key, LocalKms decrypts; and LocalKms's
# own ciphertexts decrypt, within AWS's plaintext limits.
for spec, limits in [("RSA_2048", (214, 190)), ("RSA_3072", (342, 318)), ("RSA_4096", (470, 446))]:
    key_id = create(spec, "ENCRYPT_DECRYPT")["KeyId"]
    answer, public = public_key(key_id)
    assert answer["EncryptionAlgorithms"] == ["RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256"], answer
    for algorithm, limit in zip(answer["EncryptionAlgorithms"], limits):
        h = hashes.SHA1() if algorithm.endswith("SHA_1") else hashes.SHA256()
        outside = public.encrypt(b"x" * limit, padding.OAEP(mgf=padding.MGF1(h), algorithm=h, label=None))
        opened = kms.decrypt(KeyId=key_id, CiphertextBlob=outside, EncryptionAlgorithm=algorithm)
        assert opened["Plaintext"] == b"x" * limit and opened["EncryptionAlgorithm"] == algorithm
        inside = kms.encrypt(KeyId=key_id, Plaintext=b"y" * limit, EncryptionAlgorithm=algorithm)
        assert kms.decrypt(KeyId=key_id, CiphertextBlob=inside["CiphertextBlob"],
                           EncryptionAlgorithm=algorithm)["Plaintext"] == b"y" * limit
        refused(kms.encrypt, "ValidationException", KeyId=key_id, Plaintext=b"z" * (limit + 1),
                EncryptionAlgorithm=algorithm)
    refused(kms.encrypt, "InvalidKeyUsageException", KeyId=key_id, Plaintext=b"x")
    refused(kms.decrypt, "InvalidCiphertextException", KeyId=key_id, CiphertextBlob=outside,
            EncryptionAlgorithm="RSAES_OAEP_SHA_1")
print("RSA-OAEP ciphertexts interoperate with OpenSSL")

# HMAC keys.
for bits in ["224", "256", "384", "512"]:
    key_id = create(f"HMAC_{bits}", "GENERATE_VERIFY_MAC")["KeyId"]
    algorithm = f"HMAC_SHA_{bits}"
    mac = kms.generate_mac(KeyId=key_id, Message=MESSAGE, MacAlgorithm=algorithm)["Mac"]
    assert len(mac) == int(bits) // 8, mac
    assert kms.verify_mac(KeyId=key_id, Message=MESSAGE, Mac=mac, MacAlgorithm=algorithm)["MacValid"]
    refused(kms.verify_mac, "KMSInvalidMacException", KeyId=key_id, Message=MESSAGE + b"!",
            Mac=mac, MacAlgorithm=algorithm)
    refused(kms.get_public_key, "UnsupportedOperationException", KeyId=key_id)
refused(kms.generate_mac, "InvalidKeyUsageException", KeyId=key_id, Message=MESSAGE,
        MacAlgorithm="HMAC_SHA_256")

# ECDH: both sides derive the same secret.
for spec, curve in [("ECC_NIST_P256", ec.SECP256R1()), ("ECC_NIST_P384", ec.SECP384R1()),
                    ("ECC_NIST_P521", ec.SECP521R1())]:
    key_id = create(spec, "KEY_AGREEMENT")["KeyId"]
    answer, public = public_key(key_id)
    assert answer["KeyAgreementAlgorithms"] == ["ECDH"], answer
    peer = ec.generate_private_key(curve)
    peer_der = peer.public_key().public_bytes(serialization.Encoding.DER,
                                              serialization.PublicFormat.SubjectPublicKeyInfo)
    derived = kms.derive_shared_secret(KeyId=key_id, KeyAgreementAlgorithm="ECDH", PublicKey=peer_der)
    assert derived["SharedSecret"] == peer.exchange(ec.ECDH(), public), spec
    other_curve = ec.generate_private_key(ec.SECP256K1()).public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    refused(kms.derive_shared_secret, "ValidationException", KeyId=key_id,
            KeyAgreementAlgorithm="ECDH", PublicKey=other_curve)
refused(create, "ValidationException", spec="ECC_SECG_P256K1", usage="KEY_AGREEMENT")
print("ECDH secrets agree with OpenSSL's")

# ML-KEM: OpenSSL encapsulates to the key's public key, LocalKms decapsulates; and the
# other way round through the KMS alone.
for spec, python_key in [("ML_KEM_512", None), ("ML_KEM_768", mlkem.MLKEM768PublicKey),
                         ("ML_KEM_1024", mlkem.MLKEM1024PublicKey)]:
    key_id = create(spec, "ENCAPSULATE_DECAPSULATE")["KeyId"]
    answer = kms.get_public_key(KeyId=key_id)
    assert answer["EncapsulationAlgorithms"] == ["ML_KEM"], answer
    if python_key is not None:  # OpenSSL through `cryptography` has no ML-KEM-512
        public = serialization.load_der_public_key(answer["PublicKey"])
        secret, ciphertext = public.encapsulate()
        opened = kms.decapsulate(KeyId=key_id, SharedSecretCiphertextBlob=ciphertext,
                                 EncapsulationAlgorithm="ML_KEM")
        assert opened["SharedSecret"] == secret, spec
    made = kms.encapsulate(KeyId=key_id, EncapsulationAlgorithm="ML_KEM")
    opened = kms.decapsulate(KeyId=key_id, SharedSecretCiphertextBlob=made["SharedSecretCiphertextBlob"],
                             EncapsulationAlgorithm="ML_KEM")
    assert opened["SharedSecret"] == made["SharedSecret"] and len(made["SharedSecret"]) == 32
    refused(kms.decapsulate, "InvalidCiphertextException", KeyId=key_id,
            SharedSecretCiphertextBlob=b"short", EncapsulationAlgorithm="ML_KEM")
print("ML-KEM secrets agree with OpenSSL's")

# Data key pairs: OpenSSL reads the private key, its public half is the one returned, a
# signature it makes verifies with that public key, and Decrypt opens the wrapped copy.
wrapper = kms.create_key()["KeyMetadata"]["KeyId"]
context = {"purpose": "data-key-pair"}
for spec in ["RSA_2048", "ECC_NIST_P256", "ECC_NIST_P521", "ECC_SECG_P256K1", "ECC_NIST_EDWARDS25519"]:
    pair = kms.generate_data_key_pair(KeyId=wrapper, KeyPairSpec=spec, EncryptionContext=context)
    private = serialization.load_der_private_key(pair["PrivateKeyPlaintext"], None)
    assert private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo) == pair["PublicKey"]
    public = serialization.load_der_public_key(pair["PublicKey"])
    if isinstance(private, ed25519.Ed25519PrivateKey):
        public.verify(private.sign(MESSAGE), MESSAGE)
    elif spec.startswith("RSA"):
        public.verify(private.sign(MESSAGE, padding.PKCS1v15(), hashes.SHA256()), MESSAGE,
                      padding.PKCS1v15(), hashes.SHA256())
    else:
        public.verify(private.sign(MESSAGE, ec.ECDSA(hashes.SHA256())), MESSAGE, ec.ECDSA(hashes.SHA256()))
    opened = kms.decrypt(CiphertextBlob=pair["PrivateKeyCiphertextBlob"], EncryptionContext=context)
    assert opened["Plaintext"] == pair["PrivateKeyPlaintext"], spec
    bare = kms.generate_data_key_pair_without_plaintext(KeyId=wrapper, KeyPairSpec=spec)
    assert "PrivateKeyPlaintext" not in bare and bare["KeyPairSpec"] == spec, bare
# ML-KEM pairs: the private key is a PKCS #8 seed, which OpenSSL expands to the same key.
for spec, python_key in [("ML_KEM_768", mlkem.MLKEM768PrivateKey), ("ML_KEM_1024", mlkem.MLKEM1024PrivateKey)]:
    pair = kms.generate_data_key_pair(KeyId=wrapper, KeyPairSpec=spec)
    private = serialization.load_der_private_key(pair["PrivateKeyPlaintext"], None)
    assert isinstance(private, python_key), (spec, private)
    secret, ciphertext = serialization.load_der_public_key(pair["PublicKey"]).encapsulate()
    assert private.decapsulate(ciphertext) == secret, spec
refused(kms.generate_data_key_pair, "InvalidKeyUsageException", KeyId=signers["RSA_2048"],
        KeyPairSpec="RSA_2048")
refused(kms.generate_data_key_pair, "UnsupportedOperationException", KeyId=wrapper, KeyPairSpec="SM2")
print("data key pairs work in OpenSSL")

# Key states and usages, with AWS's errors.
disabled = signers["ECC_NIST_P384"]
kms.disable_key(KeyId=disabled)
refused(kms.sign, "DisabledException", KeyId=disabled, Message=MESSAGE, SigningAlgorithm="ECDSA_SHA_384")
refused(kms.get_public_key, "DisabledException", KeyId=disabled)
kms.enable_key(KeyId=disabled)
pending = signers["ML_DSA_87"]
kms.schedule_key_deletion(KeyId=pending, PendingWindowInDays=7)
refused(kms.sign, "KMSInvalidStateException", KeyId=pending, Message=MESSAGE,
        SigningAlgorithm="ML_DSA_SHAKE_256")
refused(kms.get_public_key, "UnsupportedOperationException", KeyId=wrapper)
refused(kms.sign, "InvalidKeyUsageException", KeyId=wrapper, Message=MESSAGE,
        SigningAlgorithm="ECDSA_SHA_256")
refused(kms.create_key, "ValidationException", KeySpec="ML_DSA_44")
refused(kms.sign, "DryRunOperationException", KeyId=ed, Message=MESSAGE,
        SigningAlgorithm="ED25519_SHA_512", DryRun=True)

# Imported key material: OpenSSL wraps it under LocalKms's wrapping key (RSA-OAEP, or an
# AES key under RSA-OAEP and the material under AES key wrap with padding).
OAEP_256 = padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)
external = kms.create_key(Origin="EXTERNAL")["KeyMetadata"]
assert external["KeyState"] == "PendingImport" and external["Origin"] == "EXTERNAL", external
byok = external["KeyId"]
material = os.urandom(32)


def wrapped_for(key_id, algorithm, secret):
    params = kms.get_parameters_for_import(KeyId=key_id, WrappingAlgorithm=algorithm,
                                           WrappingKeySpec="RSA_3072")
    wrapping = serialization.load_der_public_key(params["PublicKey"])
    if algorithm == "RSAES_OAEP_SHA_256":
        return params["ImportToken"], wrapping.encrypt(secret, OAEP_256)
    aes = os.urandom(32)
    return params["ImportToken"], wrapping.encrypt(aes, OAEP_256) + keywrap.aes_key_wrap_with_padding(aes, secret)


token, wrapped = wrapped_for(byok, "RSAES_OAEP_SHA_256", material)
imported = kms.import_key_material(KeyId=byok, ImportToken=token, EncryptedKeyMaterial=wrapped,
                                   ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE")
sealed = kms.encrypt(KeyId=byok, Plaintext=b"bring your own key")["CiphertextBlob"]
assert kms.describe_key(KeyId=byok)["KeyMetadata"]["ExpirationModel"] == "KEY_MATERIAL_DOES_NOT_EXPIRE"
kms.delete_imported_key_material(KeyId=byok)
refused(kms.decrypt, "KMSInvalidStateException", CiphertextBlob=sealed)
token, wrapped = wrapped_for(byok, "RSA_AES_KEY_WRAP_SHA_256", material)
again = kms.import_key_material(KeyId=byok, ImportToken=token, EncryptedKeyMaterial=wrapped,
                                ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE")
assert again["KeyMaterialId"] == imported["KeyMaterialId"], (again, imported)
assert kms.decrypt(CiphertextBlob=sealed)["Plaintext"] == b"bring your own key"
token, wrapped = wrapped_for(byok, "RSAES_OAEP_SHA_256", os.urandom(32))
refused(kms.import_key_material, "IncorrectKeyMaterialException", KeyId=byok, ImportToken=token,
        EncryptedKeyMaterial=wrapped, ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE")
refused(kms.import_key_material, "InvalidImportTokenException", KeyId=byok, ImportToken=bytes(32),
        EncryptedKeyMaterial=wrapped, ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE")
listed = kms.list_key_rotations(KeyId=byok, IncludeKeyMaterial="ALL_KEY_MATERIAL")["Rotations"]
assert listed[0]["ImportState"] == "IMPORTED" and listed[0]["KeyMaterialState"] == "CURRENT", listed
refused(kms.get_parameters_for_import, "UnsupportedOperationException", KeyId=wrapper,
        WrappingAlgorithm="RSAES_OAEP_SHA_256", WrappingKeySpec="RSA_2048")
signing_import = kms.create_key(Origin="EXTERNAL", KeySpec="ECC_NIST_P384",
                                KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
own = ec.generate_private_key(ec.SECP384R1())
token, wrapped = wrapped_for(signing_import, "RSA_AES_KEY_WRAP_SHA_256", own.private_bytes(
    serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
kms.import_key_material(KeyId=signing_import, ImportToken=token, EncryptedKeyMaterial=wrapped,
                        ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE")
signed = kms.sign(KeyId=signing_import, Message=MESSAGE, SigningAlgorithm="ECDSA_SHA_384")
own.public_key().verify(signed["Signature"], MESSAGE, ec.ECDSA(hashes.SHA384()))
# An ML-KEM key imported as OpenSSL's PKCS #8: LocalKms decapsulates what OpenSSL
# encapsulates to the key's public half.
kem_import = kms.create_key(Origin="EXTERNAL", KeySpec="ML_KEM_768",
                            KeyUsage="ENCAPSULATE_DECAPSULATE")["KeyMetadata"]["KeyId"]
own_kem = mlkem.MLKEM768PrivateKey.generate()
token, wrapped = wrapped_for(kem_import, "RSA_AES_KEY_WRAP_SHA_256", own_kem.private_bytes(
    serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
kms.import_key_material(KeyId=kem_import, ImportToken=token, EncryptedKeyMaterial=wrapped,
                        ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE")
secret, ciphertext = own_kem.public_key().encapsulate()
assert kms.decapsulate(KeyId=kem_import, SharedSecretCiphertextBlob=ciphertext,
                       EncapsulationAlgorithm="ML_KEM")["SharedSecret"] == secret
print("imported key material wrapped by OpenSSL works")

# Multi-Region keys: a client of another region (the region comes from its SigV4 scope)
# decrypts through the replica what the primary encrypted.
west = checked(boto3.client("kms", endpoint_url=ENDPOINT, region_name="eu-west-1"))
mrk = kms.create_key(MultiRegion=True)["KeyMetadata"]
mrk_id = mrk["KeyId"]
assert mrk_id.startswith("mrk-") and mrk["MultiRegion"], mrk
assert mrk["MultiRegionConfiguration"]["MultiRegionKeyType"] == "PRIMARY", mrk
replica = kms.replicate_key(KeyId=mrk_id, ReplicaRegion="eu-west-1", Description="failover",
                            Tags=[{"TagKey": "role", "TagValue": "dr"}])
assert replica["ReplicaKeyMetadata"]["MultiRegionConfiguration"]["MultiRegionKeyType"] == "REPLICA"
assert replica["ReplicaTags"] == [{"TagKey": "role", "TagValue": "dr"}], replica
sealed = kms.encrypt(KeyId=mrk_id, Plaintext=b"across regions", EncryptionContext={"r": "1"})
assert west.decrypt(CiphertextBlob=sealed["CiphertextBlob"], EncryptionContext={"r": "1"},
                    KeyId=replica["ReplicaKeyMetadata"]["Arn"])["Plaintext"] == b"across regions"
refused(kms.replicate_key, "AlreadyExistsException", KeyId=mrk_id, ReplicaRegion="eu-west-1")
refused(kms.replicate_key, "UnsupportedOperationException", KeyId=wrapper, ReplicaRegion="eu-west-1")
kms.update_primary_region(KeyId=mrk_id, PrimaryRegion="eu-west-1")
moved = west.describe_key(KeyId=mrk_id)["KeyMetadata"]["MultiRegionConfiguration"]
assert moved["MultiRegionKeyType"] == "PRIMARY" and moved["ReplicaKeys"][0]["Region"] == "us-east-1", moved
print("multi-Region replicas decrypt across regions")

operations = ["Sign", "Verify", "GetPublicKey", "GenerateDataKeyPair",
              "GenerateDataKeyPairWithoutPlaintext", "GenerateMac", "VerifyMac",
              "DeriveSharedSecret", "Encapsulate", "Decapsulate", "Encrypt", "Decrypt",
              "GetParametersForImport", "ImportKeyMaterial", "DeleteImportedKeyMaterial",
              "ReplicateKey", "UpdatePrimaryRegion"]
untested = [op for op in operations if "ok" not in answered.get(op, ())]
assert not untested, f"never answered successfully: {untested}"
print(f"{len(operations)} operations conform to botocore's model:",
      ", ".join(f"{op} {sorted(answered[op])}" for op in operations))

# The AWS CLI (v1 on PyPI, whose own botocore has no Encapsulate or Decapsulate yet).
aws = os.path.join(os.path.dirname(sys.executable), "aws")
scratch = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"atrest-asymmetric-{os.getpid()}")


def cli(*args):
    out = subprocess.run([aws, "--endpoint-url", ENDPOINT, "--output", "json", "kms", *args],
                         capture_output=True, text=True)
    assert out.returncode == 0, f"aws kms {' '.join(args)}: {out.stderr}"
    return json.loads(out.stdout) if out.stdout.strip() else {}


def write(suffix, data):
    with open(scratch + suffix, "wb") as f:
        f.write(data)
    return f"fileb://{scratch}{suffix}"


rsa = cli("create-key", "--key-spec", "RSA_2048", "--key-usage", "SIGN_VERIFY")["KeyMetadata"]["KeyId"]
message = write(".msg", MESSAGE)
signed = cli("sign", "--key-id", rsa, "--message", message, "--signing-algorithm", "RSASSA_PSS_SHA_256")
signature = write(".sig", base64.b64decode(signed["Signature"]))
assert cli("verify", "--key-id", rsa, "--message", message, "--signature", signature,
           "--signing-algorithm", "RSASSA_PSS_SHA_256")["SignatureValid"] is True
der = base64.b64decode(cli("get-public-key", "--key-id", rsa)["PublicKey"])
verify_outside(serialization.load_der_public_key(der), "RSASSA_PSS_SHA_256",
               base64.b64decode(signed["Signature"]))
hmac_key = cli("create-key", "--key-spec", "HMAC_384", "--key-usage",
               "GENERATE_VERIFY_MAC")["KeyMetadata"]["KeyId"]
mac = cli("generate-mac", "--key-id", hmac_key, "--message", message, "--mac-algorithm", "HMAC_SHA_384")
assert cli("verify-mac", "--key-id", hmac_key, "--message", message, "--mac-algorithm", "HMAC_SHA_384",
           "--mac", write(".mac", base64.b64decode(mac["Mac"])))["MacValid"] is True
agreeing = cli("create-key", "--key-spec", "ECC_NIST_P256", "--key-usage",
               "KEY_AGREEMENT")["KeyMetadata"]["KeyId"]
peer = ec.generate_private_key(ec.SECP256R1())
peer_der = peer.public_key().public_bytes(serialization.Encoding.DER,
                                          serialization.PublicFormat.SubjectPublicKeyInfo)
derived = cli("derive-shared-secret", "--key-id", agreeing, "--key-agreement-algorithm", "ECDH",
              "--public-key", write(".peer", peer_der))
kms_public = serialization.load_der_public_key(
    base64.b64decode(cli("get-public-key", "--key-id", agreeing)["PublicKey"]))
assert base64.b64decode(derived["SharedSecret"]) == peer.exchange(ec.ECDH(), kms_public)
pair = cli("generate-data-key-pair", "--key-id", wrapper, "--key-pair-spec", "ECC_NIST_P384")
serialization.load_der_private_key(base64.b64decode(pair["PrivateKeyPlaintext"]), None)
cli("generate-data-key-pair-without-plaintext", "--key-id", wrapper, "--key-pair-spec", "RSA_3072")
encrypting = cli("create-key", "--key-spec", "RSA_3072", "--key-usage",
                 "ENCRYPT_DECRYPT")["KeyMetadata"]["KeyId"]
sealed = cli("encrypt", "--key-id", encrypting, "--plaintext", message,
             "--encryption-algorithm", "RSAES_OAEP_SHA_256")
opened = cli("decrypt", "--key-id", encrypting, "--encryption-algorithm", "RSAES_OAEP_SHA_256",
             "--ciphertext-blob", write(".rsa", base64.b64decode(sealed["CiphertextBlob"])))
assert base64.b64decode(opened["Plaintext"]) == MESSAGE
byok = cli("create-key", "--origin", "EXTERNAL")["KeyMetadata"]["KeyId"]
params = cli("get-parameters-for-import", "--key-id", byok, "--wrapping-algorithm",
             "RSAES_OAEP_SHA_256", "--wrapping-key-spec", "RSA_2048")
wrapping = serialization.load_der_public_key(base64.b64decode(params["PublicKey"]))
cli("import-key-material", "--key-id", byok,
    "--import-token", write(".token", base64.b64decode(params["ImportToken"])),
    "--encrypted-key-material", write(".wrapped", wrapping.encrypt(os.urandom(32), OAEP_256)),
    "--expiration-model", "KEY_MATERIAL_DOES_NOT_EXPIRE")
cli("encrypt", "--key-id", byok, "--plaintext", message)
cli("delete-imported-key-material", "--key-id", byok)
assert cli("describe-key", "--key-id", byok)["KeyMetadata"]["KeyState"] == "PendingImport"
primary = cli("create-key", "--multi-region")["KeyMetadata"]["KeyId"]
made = cli("replicate-key", "--key-id", primary, "--replica-region", "ap-southeast-2")
assert made["ReplicaKeyMetadata"]["Arn"].startswith("arn:aws:kms:ap-southeast-2:"), made
cli("update-primary-region", "--key-id", primary, "--primary-region", "ap-southeast-2")
for suffix in (".msg", ".sig", ".mac", ".peer", ".rsa", ".token", ".wrapped"):
    os.remove(scratch + suffix)
print("aws cli ok")

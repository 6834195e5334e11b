"""AWS KMS's model, as botocore ships it, applied to every answer a boto3 client gets.

Each raw answer is checked before botocore parses it: a success body has no member the
output shape lacks and every value within its constraints; an error names one of the
errors the model lists for the operation (or one every AWS service may answer). A
mismatch exits the script, saying what differs. `answered` records, per operation, "ok"
and the errors seen.
"""
import base64
import json
import re
import sys

from botocore.exceptions import ClientError

# Errors any AWS service may answer, which the model does not list per operation.
COMMON_ERRORS = {
    "AccessDeniedException",
    "ValidationException",
    "ThrottlingException",
    "UnrecognizedClientException",
    "IncompleteSignatureException",
    "InvalidSignatureException",
    "SerializationException",
}
answered = {}


def check(shape, value, path):
    """Raises AssertionError naming `path` where `value` breaks `shape`."""
    kind = shape.type_name
    if kind == "structure":
        assert isinstance(value, dict), f"{path}: {value!r} is not an object"
        for name in value:
            assert name in shape.members, f"{path}.{name}: not a member of {shape.name}"
            check(shape.members[name], value[name], f"{path}.{name}")
        for name in shape.required_members:
            assert name in value, f"{path}.{name}: required by {shape.name}, missing"
    elif kind == "list":
        assert isinstance(value, list), f"{path}: {value!r} is not a list"
        for i, item in enumerate(value):
            check(shape.member, item, f"{path}[{i}]")
    elif kind == "map":
        assert isinstance(value, dict), f"{path}: {value!r} is not a map"
        for k, v in value.items():
            check(shape.key, k, f"{path} key")
            check(shape.value, v, f"{path}.{k}")
    elif kind == "string":
        assert isinstance(value, str), f"{path}: {value!r} is not a string"
        meta = shape.metadata
        if "min" in meta:
            assert len(value) >= meta["min"], f"{path}: {value!r} shorter than {meta['min']}"
        if "max" in meta:
            assert len(value) <= meta["max"], f"{path}: {value!r} longer than {meta['max']}"
        if "pattern" in meta:
            assert re.search(meta["pattern"], value), f"{path}: {value!r} !~ {meta['pattern']}"
        if shape.enum:
            assert value in shape.enum, f"{path}: {value!r} not in {shape.enum}"
    elif kind == "blob":
        assert isinstance(value, str), f"{path}: a blob must be base64 text"
        raw = base64.b64decode(value, validate=True)
        meta = shape.metadata
        assert meta.get("min", 0) <= len(raw) <= meta.get("max", 1 << 30), f"{path}: {len(raw)} bytes"
    elif kind in ("integer", "long"):
        assert isinstance(value, int) and not isinstance(value, bool), f"{path}: {value!r}"
        meta = shape.metadata
        assert meta.get("min", value) <= value <= meta.get("max", value), f"{path}: {value} out of range"
    elif kind == "boolean":
        assert isinstance(value, bool), f"{path}: {value!r} is not a boolean"
    elif kind == "timestamp":
        assert isinstance(value, (int, float)) and not isinstance(value, bool), f"{path}: {value!r}"
    else:
        raise AssertionError(f"{path}: no check for shape type {kind}")


def conforms(response_dict, operation_model, **_):
    body = response_dict["body"] or b"{}"
    name = operation_model.name
    try:
        doc = json.loads(body)
    except ValueError as e:
        sys.exit(f"{name}: the body is not JSON ({e}): {body[:200]!r}")
    try:
        if response_dict["status_code"] < 300:
            if operation_model.output_shape is not None:
                check(operation_model.output_shape, doc, name)
            else:
                assert doc == {}, f"{name}: answers {doc}, the model has no output"
            answered.setdefault(name, set()).add("ok")
        else:
            error = doc.get("__type", "").split("#")[-1]
            listed = {e.name for e in operation_model.error_shapes}
            assert error in listed | COMMON_ERRORS, (
                f"{name}: {error} is not an error the model lists for it ({sorted(listed)})"
            )
            assert isinstance(doc.get("message"), str), f"{name}: error without a message: {doc}"
            answered.setdefault(name, set()).add(error)
    except AssertionError as e:
        sys.exit(f"model mismatch: {e}")


def checked(client):
    """`client`, with every raw answer checked against the model before it is parsed."""
    client.meta.events.register("before-parse.kms.*", conforms)
    return client


def refused(call, code, **kwargs):
    try:
        call(**kwargs)
    except ClientError as e:
        got = e.response["Error"]["Code"]
        assert got == code, f"{call.__name__}: {got}, expected {code}: {e}"
        return e
    sys.exit(f"{call.__name__} succeeded where AWS answers {code}")



"""HashEdDSA (Ed25519ph, RFC 8032 section 5.1) verification in plain Python, because the
OpenSSL behind `cryptography` does not offer it: an implementation independent of aws-lc
to check LocalKms's ED25519_PH_SHA_512 signatures against. Slow, and only a verifier.
"""
import hashlib

P = 2**255 - 19
L = 2**252 + 27742317777372353535851937790883648493
D = -121665 * pow(121666, P - 2, P) % P
SQRT_M1 = pow(2, (P - 1) // 4, P)


def _add(a, b):
    """Adds two points in extended coordinates (X, Y, Z, T)."""
    x1, y1, z1, t1 = a
    x2, y2, z2, t2 = b
    pa = (y1 - x1) * (y2 - x2) % P
    pb = (y1 + x1) * (y2 + x2) % P
    pc = t1 * 2 * D * t2 % P
    pd = z1 * 2 * z2 % P
    e, f, g, h = pb - pa, pd - pc, pd + pc, pb + pa
    return (e * f % P, g * h % P, f * g % P, e * h % P)


def _times(n, point):
    result = (0, 1, 1, 0)
    while n:
        if n & 1:
            result = _add(result, point)
        point = _add(point, point)
        n >>= 1
    return result


def _decode(encoded):
    """The point 32 bytes encode, or None."""
    y = int.from_bytes(encoded, "little")
    sign = y >> 255
    y &= (1 << 255) - 1
    if y >= P:
        return None
    u, v = (y * y - 1) % P, (D * y * y + 1) % P
    x = u * pow(v, 3, P) * pow(u * pow(v, 7, P), (P - 5) // 8, P) % P
    if (v * x * x - u) % P:
        x = x * SQRT_M1 % P
    if (v * x * x - u) % P or (x == 0 and sign):
        return None
    if x & 1 != sign:
        x = P - x
    return (x, y, 1, x * y % P)


def _same(a, b):
    return (a[0] * b[2] - b[0] * a[2]) % P == 0 and (a[1] * b[2] - b[1] * a[2]) % P == 0


_BY = 4 * pow(5, P - 2, P) % P
BASE = _decode(_BY.to_bytes(32, "little"))


def verify(public_key, message, signature):
    """Whether `signature` (64 bytes) is an Ed25519ph signature of `message` (hashed here
    with SHA-512, as PH) by `public_key` (32 bytes), with an empty context."""
    a, r = _decode(public_key), _decode(signature[:32])
    s = int.from_bytes(signature[32:], "little")
    if a is None or r is None or s >= L:
        return False
    dom2 = b"SigEd25519 no Ed25519 collisions" + bytes([1, 0])
    k = int.from_bytes(hashlib.sha512(dom2 + signature[:32] + public_key
                                      + hashlib.sha512(message).digest()).digest(), "little")
    return _same(_times(s, BASE), _add(r, _times(k % L, a)))

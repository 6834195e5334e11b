//! What KMS offers that aws-lc-rs does not expose, called in aws-lc (the library under
//! aws-lc-rs, through its own `aws-lc-sys` bindings): HashEdDSA (Ed25519ph, RFC 8032),
//! ML-DSA over an external message representative μ (FIPS 204, section 6.2), and ML-KEM
//! keys read from PKCS #8 in seed form (RFC 9935), as AWS hands out and takes them. The
//! only unsafe code in atrest: every pointer passed is a live slice of the length the
//! function reads (or null, for a length query), checked before the call, and every object
//! aws-lc allocates is freed by a guard.
#![allow(unsafe_code)]

use aws_lc_sys as ffi;
use zeroize::Zeroizing;

/// An Ed25519 private key as aws-lc takes it: the seed, then the public key.
pub(super) struct Ed25519Private<'a> {
    pub(super) seed: &'a [u8; 32],
    pub(super) public: &'a [u8; 32],
}

/// HashEdDSA: SHA-512 of `message`, signed with an empty context.
pub(super) fn ed25519ph_sign(key: &Ed25519Private<'_>, message: &[u8]) -> Option<[u8; 64]> {
    let mut private = Zeroizing::new([0u8; 64]);
    for (byte, from) in private.iter_mut().zip(key.seed.iter().chain(key.public)) {
        *byte = *from;
    }
    let mut signature = [0u8; 64];
    // SAFETY: `signature` and `private` are 64 bytes, as ED25519ph_sign writes and reads;
    // `message` is read for its own length; the context is empty (null, 0).
    let ok = unsafe {
        ffi::ED25519ph_sign(
            signature.as_mut_ptr(),
            message.as_ptr(),
            message.len(),
            private.as_ptr(),
            std::ptr::null(),
            0,
        )
    };
    (ok == 1).then_some(signature)
}

/// Whether `signature` is a HashEdDSA signature of `message` by `public`.
pub(super) fn ed25519ph_verify(public: &[u8; 32], message: &[u8], signature: &[u8]) -> bool {
    let Ok(signature) = <&[u8; 64]>::try_from(signature) else {
        return false;
    };
    // SAFETY: `signature` is 64 bytes and `public` 32, as ED25519ph_verify reads; `message`
    // is read for its own length; the context is empty.
    let ok = unsafe {
        ffi::ED25519ph_verify(
            message.as_ptr(),
            message.len(),
            signature.as_ptr(),
            public.as_ptr(),
            std::ptr::null(),
            0,
        )
    };
    ok == 1
}

/// An EVP_PKEY aws-lc parsed, freed on drop.
struct Pkey(*mut ffi::EVP_PKEY);

impl Drop for Pkey {
    fn drop(&mut self) {
        // SAFETY: the pointer came from EVP_parse_private_key, non-null, freed once.
        unsafe { ffi::EVP_PKEY_free(self.0) }
    }
}

/// An EVP_PKEY_CTX, freed on drop.
struct PkeyCtx(*mut ffi::EVP_PKEY_CTX);

impl Drop for PkeyCtx {
    fn drop(&mut self) {
        // SAFETY: the pointer came from EVP_PKEY_CTX_new, non-null, freed once.
        unsafe { ffi::EVP_PKEY_CTX_free(self.0) }
    }
}

/// The private key PKCS #8 `pkcs8` holds, whole (nothing left over).
fn parse_private_key(pkcs8: &[u8]) -> Option<Pkey> {
    let mut cbs = ffi::CBS {
        data: pkcs8.as_ptr(),
        len: pkcs8.len(),
    };
    // SAFETY: `cbs` points into `pkcs8`, alive for the call; aws-lc copies what it keeps.
    let pkey = unsafe { ffi::EVP_parse_private_key(&mut cbs) };
    if pkey.is_null() {
        return None;
    }
    let pkey = Pkey(pkey);
    (cbs.len == 0).then_some(pkey)
}

/// A raw key of `pkey` by `get` (EVP_PKEY_get_raw_private_key or _public_key): asked
/// for its length, then written.
fn raw_key(
    pkey: &Pkey,
    get: unsafe extern "C" fn(*const ffi::EVP_PKEY, *mut u8, *mut usize) -> std::os::raw::c_int,
) -> Option<Zeroizing<Vec<u8>>> {
    let mut len = 0usize;
    // SAFETY: a null buffer asks only for the length, written to `len`.
    if unsafe { get(pkey.0, std::ptr::null_mut(), &mut len) } != 1 {
        return None;
    }
    let mut out = Zeroizing::new(vec![0u8; len]);
    // SAFETY: `out` has the `len` writable bytes aws-lc reported; it writes at most those.
    if unsafe { get(pkey.0, out.as_mut_ptr(), &mut len) } != 1 || len > out.len() {
        return None;
    }
    out.truncate(len);
    Some(out)
}

/// An ML-KEM key from its PKCS #8 (seed or expanded form): the expanded decapsulation
/// key FIPS 203 defines, and the encapsulation (public) key.
pub(super) fn ml_kem_from_pkcs8(pkcs8: &[u8]) -> Option<(Zeroizing<Vec<u8>>, Vec<u8>)> {
    let pkey = parse_private_key(pkcs8)?;
    let private = raw_key(&pkey, ffi::EVP_PKEY_get_raw_private_key)?;
    let public = raw_key(&pkey, ffi::EVP_PKEY_get_raw_public_key)?;
    Some((private, public.to_vec()))
}

/// A signing or verifying context for the ML-DSA key in `pkcs8`.
fn ml_dsa_context(pkcs8: &[u8]) -> Option<(Pkey, PkeyCtx)> {
    let pkey = parse_private_key(pkcs8)?;
    // SAFETY: `pkey.0` is a valid EVP_PKEY; the context takes its own reference.
    let ctx = unsafe { ffi::EVP_PKEY_CTX_new(pkey.0, std::ptr::null_mut()) };
    if ctx.is_null() {
        return None;
    }
    Some((pkey, PkeyCtx(ctx)))
}

/// The 64 bytes of μ ML-DSA signs in place of a message.
pub(super) const MU_LEN: usize = 64;

/// ML-DSA's signature over the message representative `mu` (64 bytes), with the key in
/// `pkcs8`; `signature_len` is the parameter set's.
pub(super) fn ml_dsa_sign_mu(pkcs8: &[u8], mu: &[u8], signature_len: usize) -> Option<Vec<u8>> {
    if mu.len() != MU_LEN {
        return None;
    }
    let (_pkey, ctx) = ml_dsa_context(pkcs8)?;
    let mut signature = vec![0u8; signature_len];
    let mut len = signature.len();
    // SAFETY: `ctx.0` is a valid context; `signature` has `len` writable bytes, which
    // aws-lc checks against the signature size before writing; `mu` is read for its length.
    let ok = unsafe {
        ffi::EVP_PKEY_sign_init(ctx.0) == 1
            && ffi::EVP_PKEY_sign(
                ctx.0,
                signature.as_mut_ptr(),
                &mut len,
                mu.as_ptr(),
                mu.len(),
            ) == 1
    };
    if !ok || len > signature.len() {
        return None;
    }
    signature.truncate(len);
    Some(signature)
}

/// Whether `signature` is ML-DSA's over the representative `mu` by the key in `pkcs8`.
pub(super) fn ml_dsa_verify_mu(pkcs8: &[u8], mu: &[u8], signature: &[u8]) -> bool {
    if mu.len() != MU_LEN {
        return false;
    }
    let Some((_pkey, ctx)) = ml_dsa_context(pkcs8) else {
        return false;
    };
    // SAFETY: `ctx.0` is a valid context; both slices are read for their own lengths.
    unsafe {
        ffi::EVP_PKEY_verify_init(ctx.0) == 1
            && ffi::EVP_PKEY_verify(
                ctx.0,
                signature.as_ptr(),
                signature.len(),
                mu.as_ptr(),
                mu.len(),
            ) == 1
    }
}

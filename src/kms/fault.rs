//! Fault injection: a [`Kms`] that fails on a schedule or at random, for tests that
//! rehearse a KMS outage, throttling or a revoked grant.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::{
    Decrypted, Encrypted, EncryptionContext, GeneratedDataKey, KeyMetadata, Kms, KmsError,
};

/// The kinds of failure [`FaultyKms`] injects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The KMS cannot be reached (retryable).
    Unavailable,
    /// The KMS refuses the call rate (retryable).
    Throttled,
    /// The caller's grant was revoked.
    AccessDenied,
    /// A failure atrest has no name for (not retryable): says nothing about the key.
    Unrecognized,
}

impl Fault {
    fn error(self, operation: &str) -> KmsError {
        let what = format!("injected fault on {operation}");
        match self {
            Fault::Unavailable => KmsError::Unavailable(what),
            Fault::Throttled => KmsError::Throttled(what),
            Fault::AccessDenied => KmsError::AccessDenied(what),
            Fault::Unrecognized => KmsError::unrecognized("InjectedFault", what, false),
        }
    }
}

#[derive(Debug)]
struct Schedule {
    /// Fail this many of the next calls with this fault.
    next: Option<(u64, Fault)>,
    /// Fail each call with this probability and fault.
    random: Option<(f64, Fault, StdRng)>,
}

/// Wraps a KMS and fails its calls when told to. Calls that are not failed go through.
#[derive(Debug)]
pub struct FaultyKms {
    inner: Arc<dyn Kms>,
    schedule: Arc<Mutex<Schedule>>,
    injected: Arc<AtomicU64>,
}

impl FaultyKms {
    /// A wrapper that fails nothing until told to.
    pub fn new(inner: Arc<dyn Kms>) -> Self {
        FaultyKms {
            inner,
            schedule: Arc::new(Mutex::new(Schedule {
                next: None,
                random: None,
            })),
            injected: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Another client, `inner`, failing on this one's schedule: a fault scheduled on
    /// either is met by the next call through either. For callers that make clients as
    /// they go, like [`Root::wrap_kms`](crate::control::Root::wrap_kms).
    pub fn sharing_schedule(&self, inner: Arc<dyn Kms>) -> FaultyKms {
        FaultyKms {
            inner,
            schedule: self.schedule.clone(),
            injected: self.injected.clone(),
        }
    }

    /// Fails the next `calls` calls with `fault`.
    pub fn fail_next(&self, calls: u64, fault: Fault) {
        self.lock().next = (calls > 0).then_some((calls, fault));
    }

    /// Fails each call with `probability` (clamped to 0..=1), reproducibly from `seed`;
    /// 0 turns it off.
    pub fn fail_randomly(&self, probability: f64, fault: Fault, seed: u64) {
        let p = if probability.is_finite() {
            probability.clamp(0.0, 1.0)
        } else {
            0.0
        };
        self.lock().random = (p > 0.0).then(|| (p, fault, StdRng::seed_from_u64(seed)));
    }

    /// Stops every scheduled failure.
    pub fn heal(&self) {
        let mut schedule = self.lock();
        schedule.next = None;
        schedule.random = None;
    }

    /// Calls failed so far.
    pub fn injected(&self) -> u64 {
        self.injected.load(Ordering::Relaxed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Schedule> {
        self.schedule.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn check(&self, operation: &str) -> Result<(), KmsError> {
        let mut schedule = self.lock();
        let fault = match schedule.next {
            Some((left, fault)) => {
                schedule.next = (left > 1).then_some((left - 1, fault));
                Some(fault)
            }
            None => match schedule.random.as_mut() {
                Some((p, fault, rng)) => rng.random_bool(*p).then_some(*fault),
                None => None,
            },
        };
        match fault {
            Some(fault) => {
                self.injected.fetch_add(1, Ordering::Relaxed);
                Err(fault.error(operation))
            }
            None => Ok(()),
        }
    }
}

impl Kms for FaultyKms {
    fn describe_key(&self, key_id: &str) -> Result<KeyMetadata, KmsError> {
        self.check("DescribeKey")?;
        self.inner.describe_key(key_id)
    }

    fn encrypt(
        &self,
        key_id: &str,
        plaintext: &[u8],
        context: &EncryptionContext,
    ) -> Result<Encrypted, KmsError> {
        self.check("Encrypt")?;
        self.inner.encrypt(key_id, plaintext, context)
    }

    fn decrypt(
        &self,
        key_id: &str,
        blob: &[u8],
        context: &EncryptionContext,
    ) -> Result<Decrypted, KmsError> {
        self.check("Decrypt")?;
        self.inner.decrypt(key_id, blob, context)
    }

    fn generate_data_key(
        &self,
        key_id: &str,
        context: &EncryptionContext,
    ) -> Result<GeneratedDataKey, KmsError> {
        self.check("GenerateDataKey")?;
        self.inner.generate_data_key(key_id, context)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::kms::{Caller, CreateKeyRequest, LocalKms};

    #[test]
    fn fails_on_schedule_then_recovers() {
        let local = LocalKms::in_memory(Arc::new(ManualClock::starting_now()));
        let client = local.client(Caller::account_root("111122223333", "us-east-1").unwrap());
        let key = client.create_key(CreateKeyRequest::default()).unwrap().arn;
        let kms = FaultyKms::new(Arc::new(client));
        kms.fail_next(2, Fault::Throttled);
        assert!(matches!(
            kms.describe_key(&key),
            Err(KmsError::Throttled(_))
        ));
        assert!(matches!(
            kms.describe_key(&key),
            Err(KmsError::Throttled(_))
        ));
        assert!(kms.describe_key(&key).is_ok());
        kms.fail_randomly(1.0, Fault::AccessDenied, 7);
        assert!(matches!(
            kms.encrypt(&key, b"x", &EncryptionContext::new()),
            Err(KmsError::AccessDenied(_))
        ));
        kms.heal();
        assert!(kms.encrypt(&key, b"x", &EncryptionContext::new()).is_ok());
        assert_eq!(kms.injected(), 3);
    }
}

//! Every KMS operation `kms serve` answers, listed once: dispatch matches on [`Operation`]
//! and error messages list [`Operation::ALL`], so the two cannot drift apart.

macro_rules! operations {
    ($($name:ident),* $(,)?) => {
        /// A KMS operation LocalKms serves, by its AWS name.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum Operation {
            $(
                #[doc = concat!("`", stringify!($name), "`")]
                $name,
            )*
        }

        impl Operation {
            /// Every operation served, in the order of AWS's API reference.
            pub const ALL: &'static [Operation] = &[$(Operation::$name),*];

            /// The operation's AWS name, as in `X-Amz-Target: TrentService.<name>`.
            pub fn name(self) -> &'static str {
                match self {
                    $(Operation::$name => stringify!($name),)*
                }
            }
        }
    };
}

operations! {
    CreateKey,
    DescribeKey,
    ListKeys,
    EnableKey,
    DisableKey,
    ScheduleKeyDeletion,
    CancelKeyDeletion,
    EnableKeyRotation,
    DisableKeyRotation,
    GetKeyRotationStatus,
    RotateKeyOnDemand,
    ListKeyRotations,
    CreateAlias,
    DeleteAlias,
    ListAliases,
    PutKeyPolicy,
    GetKeyPolicy,
    Encrypt,
    Decrypt,
    GenerateDataKey,
    GenerateDataKeyWithoutPlaintext,
    GenerateRandom,
    UpdateKeyDescription,
    UpdateAlias,
    ListKeyPolicies,
    ReEncrypt,
    TagResource,
    UntagResource,
    ListResourceTags,
    CreateGrant,
    ListGrants,
    ListRetirableGrants,
    RetireGrant,
    RevokeGrant,
    GetKeyLastUsage,
    Sign,
    Verify,
    GetPublicKey,
    GenerateDataKeyPair,
    GenerateDataKeyPairWithoutPlaintext,
    GenerateMac,
    VerifyMac,
    DeriveSharedSecret,
    Encapsulate,
    Decapsulate,
    GetParametersForImport,
    ImportKeyMaterial,
    DeleteImportedKeyMaterial,
    ReplicateKey,
    UpdatePrimaryRegion,
}

impl Operation {
    /// The operation named `name` (`Encrypt`), if served.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|op| op.name() == name)
    }

    /// Whether the operation takes `DryRun` (AWS's model lists it on these).
    pub fn takes_dry_run(self) -> bool {
        matches!(
            self,
            Operation::Encrypt
                | Operation::Decrypt
                | Operation::GenerateDataKey
                | Operation::GenerateDataKeyWithoutPlaintext
                | Operation::ReEncrypt
                | Operation::CreateGrant
                | Operation::RetireGrant
                | Operation::RevokeGrant
                | Operation::Sign
                | Operation::Verify
                | Operation::GenerateDataKeyPair
                | Operation::GenerateDataKeyPairWithoutPlaintext
                | Operation::GenerateMac
                | Operation::VerifyMac
                | Operation::DeriveSharedSecret
                | Operation::Encapsulate
                | Operation::Decapsulate
        )
    }

    /// Every served operation's name, comma-separated.
    pub(super) fn list() -> String {
        Self::ALL
            .iter()
            .map(|op| op.name())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

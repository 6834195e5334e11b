//! The KMS JSON 1.1 members of the operations on asymmetric, HMAC and ML-KEM keys and of
//! data key pairs, read as AWS reads them, and their answers.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use zeroize::Zeroizing;

use super::json::body;
use super::params::{member_name, Params};
use super::{Operation, WireError};
use crate::kms::responses::{
    DataKeyPairResponse, DecapsulateResponse, DeriveSharedSecretResponse, EncapsulateResponse,
    GenerateMacResponse, GetPublicKeyResponse, SignResponse, VerifyMacResponse, VerifyResponse,
};
use crate::kms::{
    parse_key_pair_spec, validation, KmsError, LocalKmsClient, MacAlgorithm, MessageType,
    SigningAlgorithm,
};

/// The one key agreement and encapsulation algorithm of each kind AWS has.
fn only_algorithm(params: &mut Params, field: &str, name: &str) -> Result<(), WireError> {
    let given = params.str(field)?;
    if given == name {
        return Ok(());
    }
    Err(validation::not_in_enum(&member_name(field), &given, &[name]).into())
}

fn message_type(params: &mut Params) -> Result<MessageType, WireError> {
    Ok(match params.opt_str("MessageType")? {
        None => MessageType::Raw,
        Some(name) => MessageType::parse(&name)?,
    })
}

/// The answer to one of the operations this module reads, as `client`.
pub(super) fn answer(
    operation: Operation,
    client: &LocalKmsClient,
    params: &mut Params,
) -> Result<Zeroizing<Vec<u8>>, WireError> {
    match operation {
        Operation::Sign => {
            params.grant_tokens()?;
            let key = params.str("KeyId")?;
            let message = params.blob("Message")?;
            let message_type = message_type(params)?;
            let algorithm = SigningAlgorithm::parse(&params.str("SigningAlgorithm")?)?;
            let signed = client.sign(&key, &message, message_type, algorithm)?;
            body(&SignResponse::from(signed))
        }
        Operation::Verify => {
            params.grant_tokens()?;
            let key = params.str("KeyId")?;
            let message = params.blob("Message")?;
            let message_type = message_type(params)?;
            let signature = params.blob("Signature")?;
            let algorithm = SigningAlgorithm::parse(&params.str("SigningAlgorithm")?)?;
            let key_id = client.verify(&key, &message, message_type, &signature, algorithm)?;
            body(&VerifyResponse {
                key_id,
                signature_valid: true,
                signing_algorithm: algorithm,
            })
        }
        Operation::GetPublicKey => {
            params.grant_tokens()?;
            let info = client.get_public_key(&params.str("KeyId")?)?;
            body(&GetPublicKeyResponse::from(info))
        }
        Operation::GenerateDataKeyPair | Operation::GenerateDataKeyPairWithoutPlaintext => {
            params.grant_tokens()?;
            params.not_emulated(&["Recipient"])?;
            let key = params.str("KeyId")?;
            let spec = parse_key_pair_spec(&params.str("KeyPairSpec")?)?;
            let context = params.context("EncryptionContext")?;
            let with_plaintext = operation == Operation::GenerateDataKeyPair;
            let pair = client.generate_data_key_pair(&key, spec, &context, with_plaintext)?;
            body(&DataKeyPairResponse::from(pair))
        }
        Operation::GenerateMac => {
            params.grant_tokens()?;
            let key = params.str("KeyId")?;
            let message = params.blob("Message")?;
            let algorithm = MacAlgorithm::parse(&params.str("MacAlgorithm")?)?;
            let (key_id, mac) = client.generate_mac(&key, &message, algorithm)?;
            body(&GenerateMacResponse {
                mac: BASE64.encode(&mac),
                mac_algorithm: algorithm,
                key_id,
            })
        }
        Operation::VerifyMac => {
            params.grant_tokens()?;
            let key = params.str("KeyId")?;
            let message = params.blob("Message")?;
            let mac = params.blob("Mac")?;
            let algorithm = MacAlgorithm::parse(&params.str("MacAlgorithm")?)?;
            let key_id = client.verify_mac(&key, &message, &mac, algorithm)?;
            body(&VerifyMacResponse {
                key_id,
                mac_valid: true,
                mac_algorithm: algorithm,
            })
        }
        Operation::DeriveSharedSecret => {
            params.grant_tokens()?;
            params.not_emulated(&["Recipient"])?;
            let key = params.str("KeyId")?;
            only_algorithm(params, "KeyAgreementAlgorithm", "ECDH")?;
            let peer = params.blob("PublicKey")?;
            let secret = client.derive_shared_secret(&key, &peer)?;
            body(&DeriveSharedSecretResponse::from(secret))
        }
        Operation::Encapsulate => {
            params.grant_tokens()?;
            let key = params.str("KeyId")?;
            only_algorithm(params, "EncapsulationAlgorithm", "ML_KEM")?;
            body(&EncapsulateResponse::from(client.encapsulate(&key)?))
        }
        Operation::Decapsulate => {
            params.grant_tokens()?;
            let key = params.str("KeyId")?;
            only_algorithm(params, "EncapsulationAlgorithm", "ML_KEM")?;
            let ciphertext = params.blob("SharedSecretCiphertextBlob")?;
            body(&DecapsulateResponse::from(
                client.decapsulate(&key, &ciphertext)?,
            ))
        }
        other => Err(KmsError::Internal(format!(
            "{} is not an operation on asymmetric keys",
            other.name()
        ))
        .into()),
    }
}

//! The KMS JSON 1.1 members of GetParametersForImport, ImportKeyMaterial and
//! DeleteImportedKeyMaterial, read as AWS reads them, and their answers.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use zeroize::Zeroizing;

use super::json::body;
use super::params::Params;
use super::{Operation, WireError};
use crate::kms::responses::{
    DeleteImportedKeyMaterialResponse, GetParametersForImportResponse, ImportKeyMaterialResponse,
};
use crate::kms::{
    parse_wrapping_key_spec, validation, ImportKeyMaterialRequest, ImportType, KmsError,
    LocalKmsClient, WrappingAlgorithm,
};

/// The answer to one of the import operations, as `client`.
pub(super) fn answer(
    operation: Operation,
    client: &LocalKmsClient,
    params: &mut Params,
) -> Result<Zeroizing<Vec<u8>>, WireError> {
    match operation {
        Operation::GetParametersForImport => {
            let key = params.str("KeyId")?;
            let algorithm = WrappingAlgorithm::parse(&params.str("WrappingAlgorithm")?)?;
            let spec = parse_wrapping_key_spec(&params.str("WrappingKeySpec")?)?;
            let p = client.get_parameters_for_import(&key, algorithm, spec)?;
            body(&GetParametersForImportResponse {
                key_id: p.key_arn,
                import_token: BASE64.encode(&p.import_token),
                public_key: BASE64.encode(&p.public_key),
                parameters_valid_to: p.parameters_valid_to,
            })
        }
        Operation::ImportKeyMaterial => {
            let key = params.str("KeyId")?;
            let import_token = params.blob("ImportToken")?.to_vec();
            let encrypted_key_material = params.blob("EncryptedKeyMaterial")?.to_vec();
            let valid_to = params.opt_timestamp("ValidTo")?;
            let expires = match params.opt_str("ExpirationModel")?.as_deref() {
                None | Some("KEY_MATERIAL_EXPIRES") => true,
                Some("KEY_MATERIAL_DOES_NOT_EXPIRE") => false,
                Some(other) => {
                    return Err(validation::not_in_enum(
                        "expirationModel",
                        other,
                        &["KEY_MATERIAL_EXPIRES", "KEY_MATERIAL_DOES_NOT_EXPIRE"],
                    )
                    .into())
                }
            };
            let valid_to = match (expires, valid_to) {
                (true, Some(t)) => Some(t),
                (true, None) => {
                    return Err(KmsError::Validation(
                        "ValidTo is required when ExpirationModel is KEY_MATERIAL_EXPIRES (the default)".into(),
                    )
                    .into())
                }
                (false, None) => None,
                (false, Some(_)) => {
                    return Err(KmsError::Validation(
                        "ValidTo must be omitted when ExpirationModel is KEY_MATERIAL_DOES_NOT_EXPIRE".into(),
                    )
                    .into())
                }
            };
            let request = ImportKeyMaterialRequest {
                import_token,
                encrypted_key_material,
                valid_to,
                import_type: params
                    .opt_str("ImportType")?
                    .map(|t| ImportType::parse(&t))
                    .transpose()?,
                key_material_id: params.opt_str("KeyMaterialId")?,
                description: params.opt_str("KeyMaterialDescription")?,
            };
            let (key_id, key_material_id) = client.import_key_material(&key, request)?;
            body(&ImportKeyMaterialResponse {
                key_id,
                key_material_id,
            })
        }
        Operation::DeleteImportedKeyMaterial => {
            let key = params.str("KeyId")?;
            let material = params.opt_str("KeyMaterialId")?;
            let (key_id, key_material_id) =
                client.delete_imported_key_material(&key, material.as_deref())?;
            body(&DeleteImportedKeyMaterialResponse {
                key_id,
                key_material_id,
            })
        }
        other => {
            Err(KmsError::Internal(format!("{} is not an import operation", other.name())).into())
        }
    }
}

//! `atrest kms ...`: the embedded KMS with the AWS CLI's commands and flags, answering with
//! AWS's response shapes under `--json`, and `kms serve`.

use std::io::Write;

use atrest::control::Root;
use atrest::kms::responses::{
    DecryptResponse, EncryptResponse, GenerateDataKeyResponse,
    GenerateDataKeyWithoutPlaintextResponse, GenerateRandomResponse, GetKeyPolicyResponse,
    KeyIdResponse, KeyMetadataResponse, ListAliasesResponse, ListGrantsResponse,
    ListKeyPoliciesResponse, ListKeyRotationsResponse, ListKeysResponse, ListResourceTagsResponse,
    ReEncryptResponse, ScheduleKeyDeletionResponse,
};
use atrest::kms::wire::{Endpoint, Identities};
use atrest::kms::{
    CreateGrantRequest, CreateKeyRequest, EncryptionAlgorithm, EncryptionContext, Entropy,
    GrantConstraints, GrantOperation, GrantRef, KeySpec, KeyUsage, KmsServer, LocalKms,
    LocalKmsClient, Origin, Tag,
};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;

use crate::args::{DataKeyArgs, KmsCommand};
use crate::render::Output;
use crate::{CliResult, Failure};

fn read_document(arg: &str) -> Result<String, Failure> {
    match arg.strip_prefix("file://") {
        Some(path) => {
            std::fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}").into())
        }
        None => Ok(arg.to_string()),
    }
}

fn read_blob(arg: &str, flag: &str) -> Result<Vec<u8>, Failure> {
    match arg.strip_prefix("fileb://") {
        Some(path) => std::fs::read(path).map_err(|e| format!("cannot read {path}: {e}").into()),
        None => BASE64
            .decode(arg.trim())
            .map_err(|e| format!("{flag} must be base64 (or fileb://PATH): {e}").into()),
    }
}

/// Tags as the AWS CLI's shorthand writes them: `TagKey=K,TagValue=V`, one per argument.
fn parse_tags(args: &[String]) -> Result<Vec<Tag>, Failure> {
    args.iter()
        .map(|arg| match arg.split_once(',') {
            Some((key, value)) => match (key.split_once('='), value.split_once('=')) {
                (Some(("TagKey", key)), Some(("TagValue", value))) => Ok(Tag {
                    key: key.to_string(),
                    value: value.to_string(),
                }),
                _ => Err(format!("--tags takes TagKey=K,TagValue=V, not {arg:?}").into()),
            },
            None => Err(format!("--tags takes TagKey=K,TagValue=V, not {arg:?}").into()),
        })
        .collect()
}

/// `k=v,k2=v2` or a JSON object of strings, as the AWS CLI accepts.
fn parse_context(arg: Option<&str>) -> Result<EncryptionContext, Failure> {
    let Some(arg) = arg else {
        return Ok(EncryptionContext::new());
    };
    if arg.trim_start().starts_with('{') {
        return serde_json::from_str(arg).map_err(|e| {
            format!("--encryption-context is not a JSON object of strings: {e}").into()
        });
    }
    arg.split(',')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            pair.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .ok_or_else(|| {
                    format!("--encryption-context pair {pair:?} is not key=value").into()
                })
        })
        .collect()
}

/// Runs one `atrest kms` command as `client`.
pub fn run(root: &Root, client: &LocalKmsClient, command: KmsCommand, out: Output) -> CliResult {
    match command {
        KmsCommand::CreateKey {
            description,
            key_spec,
            key_usage,
            policy,
            tags,
            bypass_policy_lockout_safety_check,
            origin,
            multi_region,
        } => {
            let request = CreateKeyRequest {
                origin: Origin::parse(&origin)?,
                multi_region,
                description,
                key_spec: KeySpec::parse(&key_spec)?,
                key_usage: key_usage.as_deref().map(KeyUsage::parse).transpose()?,
                policy: policy.as_deref().map(read_document).transpose()?,
                tags: parse_tags(&tags)?,
                bypass_policy_lockout_safety_check,
            };
            let meta = client.create_key(request)?;
            let text = format!("{}\t{}", meta.key_id, meta.arn);
            out.print(&KeyMetadataResponse { key_metadata: meta }, || text);
        }
        KmsCommand::DescribeKey { key_id } => {
            let m = client.describe_key(&key_id)?;
            out.print(
                &KeyMetadataResponse {
                    key_metadata: m.clone(),
                },
                || {
                    let mut lines = vec![
                        format!("KeyId:        {}", m.key_id),
                        format!("Arn:          {}", m.arn),
                        format!("KeyState:     {}", m.key_state),
                        format!("KeySpec:      {}", m.key_spec),
                        format!("Description:  {}", m.description),
                        format!("CreationDate: {}", m.creation_date),
                    ];
                    if let Some(d) = m.deletion_date {
                        lines.push(format!("DeletionDate: {d}"));
                    }
                    if let Some(v) = &m.current_key_material_id {
                        lines.push(format!("KeyMaterial:  {v}"));
                    }
                    lines.join("\n")
                },
            );
        }
        KmsCommand::ListKeys => {
            let keys = ListKeysResponse {
                keys: client.list_keys()?,
                truncated: false,
                next_marker: None,
            };
            out.print(&keys, || {
                keys.keys
                    .iter()
                    .map(|k| format!("{}\t{}", k.key_id, k.key_arn))
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
        KmsCommand::EnableKey { key_id } => client.enable_key(&key_id)?,
        KmsCommand::DisableKey { key_id } => client.disable_key(&key_id)?,
        KmsCommand::ScheduleKeyDeletion {
            key_id,
            pending_window_in_days,
            force,
        } => {
            // Through the root, which knows which snapshots and stores depend on the key.
            let date =
                root.schedule_key_deletion(client, &key_id, pending_window_in_days, force)?;
            let answer = ScheduleKeyDeletionResponse::new(client.describe_key(&key_id)?, date);
            out.print(&answer, || {
                format!("{} will be deleted on {date}", answer.key_id)
            });
        }
        KmsCommand::CancelKeyDeletion { key_id } => {
            client.cancel_key_deletion(&key_id)?;
            let answer = KeyIdResponse {
                key_id: client.describe_key(&key_id)?.arn,
            };
            out.print(&answer, || {
                format!(
                    "{} is no longer scheduled for deletion; it is Disabled (enable-key to use it)",
                    answer.key_id
                )
            });
        }
        KmsCommand::EnableKeyRotation {
            key_id,
            rotation_period_in_days,
        } => client.enable_key_rotation(&key_id, rotation_period_in_days)?,
        KmsCommand::DisableKeyRotation { key_id } => client.disable_key_rotation(&key_id)?,
        KmsCommand::RotateKeyOnDemand { key_id } => {
            let answer = KeyIdResponse {
                key_id: client.rotate_key_on_demand(&key_id)?,
            };
            out.print(&answer, || answer.key_id.clone());
        }
        KmsCommand::GetKeyRotationStatus { key_id } => {
            let s = client.get_key_rotation_status(&key_id)?;
            out.print(&s, || {
                match (s.rotation_period_in_days, s.next_rotation_date) {
                    (Some(p), Some(n)) => format!("rotation enabled every {p} days; next on {n}"),
                    _ => "rotation disabled".into(),
                }
            });
        }
        KmsCommand::ListKeyRotations { key_id } => {
            let answer = ListKeyRotationsResponse {
                rotations: client.list_key_rotations(&key_id)?,
                truncated: false,
                next_marker: None,
            };
            out.print(&answer, || {
                answer
                    .rotations
                    .iter()
                    .filter_map(|r| Some(format!("{}\t{:?}", r.rotation_date?, r.rotation_type?)))
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
        KmsCommand::CreateAlias {
            alias_name,
            target_key_id,
        } => client.create_alias(&alias_name, &target_key_id)?,
        KmsCommand::DeleteAlias { alias_name } => client.delete_alias(&alias_name)?,
        KmsCommand::CreateAccessKey { user_name } => {
            let key = root
                .local_kms()
                .create_access_key(client.caller().account(), &user_name)?;
            out.print(&serde_json::json!({ "AccessKey": &key }), || {
                format!(
                    "{}\t{}\t(the secret is shown only now)",
                    key.access_key_id,
                    key.secret_access_key.as_str()
                )
            });
        }
        KmsCommand::ListAliases => {
            let answer = ListAliasesResponse {
                aliases: client.list_aliases()?,
                truncated: false,
                next_marker: None,
            };
            out.print(&answer, || {
                answer
                    .aliases
                    .iter()
                    .map(|a| format!("{}\t{}", a.alias_name, a.target_key_id))
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
        KmsCommand::PutKeyPolicy {
            key_id,
            policy,
            bypass_policy_lockout_safety_check,
            ..
        } => client.put_key_policy_with(
            &key_id,
            &read_document(&policy)?,
            bypass_policy_lockout_safety_check,
        )?,
        KmsCommand::GetKeyPolicy { key_id, .. } => {
            let answer = GetKeyPolicyResponse::new(client.get_key_policy(&key_id)?);
            out.print(&answer, || answer.policy.clone());
        }
        KmsCommand::Encrypt {
            key_id,
            plaintext,
            encryption_context,
        } => {
            let plaintext = zeroize::Zeroizing::new(read_blob(&plaintext, "--plaintext")?);
            let e = client.encrypt(
                &key_id,
                &plaintext,
                &parse_context(encryption_context.as_deref())?,
            )?;
            let answer = EncryptResponse::new(e, EncryptionAlgorithm::SymmetricDefault);
            out.print(&answer, || answer.ciphertext_blob.clone());
        }
        KmsCommand::Decrypt {
            ciphertext_blob,
            key_id,
            encryption_context,
        } => {
            let blob = read_blob(&ciphertext_blob, "--ciphertext-blob")?;
            let d = client.decrypt(
                key_id.as_deref(),
                &blob,
                &parse_context(encryption_context.as_deref())?,
            )?;
            let answer = DecryptResponse::new(d, EncryptionAlgorithm::SymmetricDefault);
            out.print(&answer, || answer.plaintext.to_string());
        }
        KmsCommand::Serve {
            listen,
            allow_remote,
            access_keys,
            roles,
            seed,
            deterministic,
        } => {
            let kms = match deterministic {
                Some(n) => {
                    LocalKms::open_with(root.dir().join("kms"), root.clock(), Entropy::Seeded(n))?
                }
                None => root.local_kms().clone(),
            };
            if let Some(file) = seed {
                let seeded = seed_from(&kms, client, &file)?;
                eprintln!(
                    "seeded {} key(s) and {} alias(es) from {file}",
                    seeded.keys_created.len(),
                    seeded.aliases_created.len()
                );
            }
            let identities = serve_identities(root, client, &access_keys, &roles)?;
            let description = identities.describe();
            let endpoint = Endpoint::new(kms, identities);
            let server =
                KmsServer::start(&listen, endpoint, allow_remote).map_err(|e| match e.kind() {
                    std::io::ErrorKind::PermissionDenied => format!("{e}: --allow-remote"),
                    _ => e.to_string(),
                })?;
            println!("listening on {}", server.url());
            eprintln!("{description}");
            let _ = std::io::stdout().flush();
            server.wait();
        }
        KmsCommand::GenerateDataKey(DataKeyArgs {
            key_id,
            number_of_bytes,
            encryption_context,
        }) => {
            let k = client.generate_data_key(
                &key_id,
                number_of_bytes,
                &parse_context(encryption_context.as_deref())?,
            )?;
            let answer = GenerateDataKeyResponse::from(k);
            out.print(&answer, || {
                format!("{}\t{}", *answer.plaintext, answer.ciphertext_blob)
            });
        }
        KmsCommand::GenerateDataKeyWithoutPlaintext(DataKeyArgs {
            key_id,
            number_of_bytes,
            encryption_context,
        }) => {
            let k = client.generate_data_key_without_plaintext(
                &key_id,
                number_of_bytes,
                &parse_context(encryption_context.as_deref())?,
            )?;
            let answer = GenerateDataKeyWithoutPlaintextResponse::from(k);
            out.print(&answer, || answer.ciphertext_blob.clone());
        }
        KmsCommand::GenerateRandom { number_of_bytes } => {
            let answer = GenerateRandomResponse {
                plaintext: zeroize::Zeroizing::new(
                    BASE64.encode(client.generate_random(number_of_bytes)?),
                ),
            };
            out.print(&answer, || answer.plaintext.to_string());
        }
        KmsCommand::UpdateKeyDescription {
            key_id,
            description,
        } => client.update_key_description(&key_id, &description)?,
        KmsCommand::UpdateAlias {
            alias_name,
            target_key_id,
        } => client.update_alias(&alias_name, &target_key_id)?,
        KmsCommand::ReEncrypt {
            ciphertext_blob,
            source_key_id,
            source_encryption_context,
            destination_key_id,
            destination_encryption_context,
        } => {
            let moved = client.re_encrypt(
                source_key_id.as_deref(),
                &read_blob(&ciphertext_blob, "--ciphertext-blob")?,
                &parse_context(source_encryption_context.as_deref())?,
                &destination_key_id,
                &parse_context(destination_encryption_context.as_deref())?,
            )?;
            let answer = ReEncryptResponse::from(moved);
            out.print(&answer, || answer.ciphertext_blob.clone());
        }
        KmsCommand::TagResource { key_id, tags } => {
            client.tag_resource(&key_id, &parse_tags(&tags)?)?
        }
        KmsCommand::UntagResource { key_id, tag_keys } => {
            client.untag_resource(&key_id, &tag_keys)?
        }
        KmsCommand::ListResourceTags { key_id } => {
            let answer = ListResourceTagsResponse {
                tags: client.list_resource_tags(&key_id)?,
                truncated: false,
                next_marker: None,
            };
            out.print(&answer, || {
                answer
                    .tags
                    .iter()
                    .map(|t| format!("{}\t{}", t.key, t.value))
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
        KmsCommand::CreateGrant {
            key_id,
            grantee_principal,
            retiring_principal,
            operations,
            constraints,
            name,
        } => {
            let constraints = constraints
                .map(|c| {
                    serde_json::from_str::<GrantConstraints>(&c).map_err(|e| {
                        format!("--constraints is not {{\"EncryptionContextSubset\"|\"EncryptionContextEquals\": {{...}}}}: {e}")
                    })
                })
                .transpose()?;
            let request = CreateGrantRequest {
                grantee_principal,
                retiring_principal,
                operations: operations
                    .iter()
                    .map(|op| GrantOperation::parse(op))
                    .collect::<Result<_, _>>()?,
                constraints,
                name,
            };
            let made = client.create_grant(&key_id, request)?;
            out.print(&made, || format!("{}\t{}", made.grant_id, made.grant_token));
        }
        KmsCommand::ListGrants {
            key_id,
            grant_id,
            grantee_principal,
        } => print_grants(
            out,
            client.list_grants(&key_id, grant_id.as_deref(), grantee_principal.as_deref())?,
        ),
        KmsCommand::ListRetirableGrants { retiring_principal } => {
            print_grants(out, client.list_retirable_grants(&retiring_principal)?)
        }
        KmsCommand::RetireGrant {
            grant_token,
            key_id,
            grant_id,
        } => match (grant_token, key_id, grant_id) {
            (Some(token), _, _) => client.retire_grant(GrantRef::Token(&token))?,
            (None, Some(key_id), Some(grant_id)) => client.retire_grant(GrantRef::Id {
                key_id: &key_id,
                grant_id: &grant_id,
            })?,
            _ => return Err(String::from("give --grant-token, or --key-id and --grant-id").into()),
        },
        KmsCommand::RevokeGrant { key_id, grant_id } => client.revoke_grant(&key_id, &grant_id)?,
        KmsCommand::GetKeyLastUsage { key_id } => {
            let report = client.get_key_last_usage(&key_id)?;
            out.print(&report, || match &report.key_last_usage {
                Some(u) => format!("{}\t{}\t{}", report.key_id, u.operation, u.timestamp),
                None => format!("{}\tnot used since it was created", report.key_id),
            });
        }
        KmsCommand::Seed { file } => {
            let seeded = seed_from(root.local_kms(), client, &file)?;
            out.print(&seeded, || {
                format!(
                    "keys created: {}\nkeys already there: {}\naliases created: {}\naliases already there: {}",
                    seeded.keys_created.join(" "),
                    seeded.keys_present.join(" "),
                    seeded.aliases_created.join(" "),
                    seeded.aliases_present.join(" ")
                )
            });
        }
        KmsCommand::ListKeyPolicies { key_id } => {
            let answer = ListKeyPoliciesResponse {
                policy_names: client.list_key_policies(&key_id)?,
                truncated: false,
                next_marker: None,
            };
            out.print(&answer, || answer.policy_names.join("\n"));
        }
    }
    Ok(())
}

/// Applies seed file `file` to `kms`, in the caller's account and region by default.
fn seed_from(
    kms: &LocalKms,
    client: &LocalKmsClient,
    file: &str,
) -> Result<atrest::kms::Seeded, Failure> {
    let document = std::fs::read_to_string(file).map_err(|e| format!("cannot read {file}: {e}"))?;
    let caller = client.caller();
    Ok(kms.seed(&document, caller.account(), caller.region())?)
}

fn print_grants(out: Output, grants: Vec<atrest::kms::GrantListEntry>) {
    let answer = ListGrantsResponse {
        grants,
        truncated: false,
        next_marker: None,
    };
    out.print(&answer, || {
        answer
            .grants
            .iter()
            .map(|g| {
                let operations: Vec<&str> = g.operations.iter().map(|op| op.name()).collect();
                format!(
                    "{}\t{}\t{}",
                    g.grant_id,
                    g.grantee_principal,
                    operations.join(",")
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    });
}

/// `kms serve`'s identities: the access keys of the embedded account and those given, the
/// roles given, and the project's authorized roles with their external ids.
fn serve_identities(
    root: &Root,
    client: &LocalKmsClient,
    access_keys: &[String],
    roles: &[String],
) -> Result<Identities, Failure> {
    let mut identities = Identities::new(client.caller().principal())?;
    for key in root.local_kms().access_keys()? {
        identities.add_access_key(&key.access_key_id, &key.secret_access_key, &key.principal)?;
    }
    for given in access_keys {
        let parsed = given.split_once('=').and_then(|(key, principal)| {
            key.split_once(':')
                .map(|(id, secret)| (id, secret, principal))
        });
        let Some((id, secret, principal)) = parsed else {
            return Err(format!(
                "--access-key takes AKID:SECRET=PRINCIPAL_ARN, not {:?}",
                given.split(':').next().unwrap_or_default()
            )
            .into());
        };
        identities.add_access_key(id, secret, principal)?;
    }
    for given in roles {
        let (arn, external_id) = match given.split_once('=') {
            Some((arn, id)) => (arn, Some(id)),
            None => (given.as_str(), None),
        };
        identities.add_role(arn, external_id)?;
    }
    if let Some(settings) = root.settings()? {
        for role in &settings.project.access_roles {
            identities.add_role(
                &role.iam_assumed_role_arn,
                Some(&role.atlas_assumed_role_external_id),
            )?;
        }
    }
    Ok(identities)
}

//! Grants in LocalKms, enforced as AWS enforces them: each test fails if grants are
//! ignored (the grantee has no other way in) or if they allow more than they say.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::sync::Arc;

use atrest::clock::{ManualClock, Timestamp};
use atrest::kms::{
    Caller, CreateGrantRequest, CreateKeyRequest, GrantConstraints, GrantOperation, GrantRef,
    LocalKms, LocalKmsClient,
};
use common::{code, ctx};

const REGION: &str = "us-east-1";
const OWNER: &str = "111122223333";
const PARTNER_ROLE: &str = "arn:aws:iam::444455556666:role/partner";
const RETIRER: &str = "arn:aws:iam::444455556666:role/retirer";

struct World {
    kms: Arc<LocalKms>,
    owner: LocalKmsClient,
    partner: LocalKmsClient,
    key_arn: String,
}

/// A key of the owner's account, with AWS's default policy: nobody in the partner's
/// account may use it without a grant.
fn world() -> World {
    let clock = Arc::new(ManualClock::new(Timestamp::from_millis(1_700_000_000_000)));
    let kms = LocalKms::in_memory(clock);
    let owner = kms.client(Caller::account_root(OWNER, REGION).unwrap());
    let partner = kms.client(Caller::new(PARTNER_ROLE, REGION).unwrap());
    let key_arn = owner.create_key(CreateKeyRequest::default()).unwrap().arn;
    World {
        kms,
        owner,
        partner,
        key_arn,
    }
}

fn grant(operations: &[GrantOperation]) -> CreateGrantRequest {
    CreateGrantRequest {
        grantee_principal: PARTNER_ROLE.into(),
        retiring_principal: Some(RETIRER.into()),
        operations: operations.to_vec(),
        ..Default::default()
    }
}

#[test]
fn a_grant_allows_its_operations_under_its_constraints_and_nothing_else() {
    let w = world();
    let orders = ctx(&[("app", "orders"), ("tenant", "7")]);
    assert_eq!(
        code(w.partner.encrypt(&w.key_arn, b"x", &orders)),
        "AccessDeniedException"
    );
    let mut request = grant(&[
        GrantOperation::Encrypt,
        GrantOperation::Decrypt,
        GrantOperation::DescribeKey,
    ]);
    request.constraints = Some(GrantConstraints {
        encryption_context_subset: Some(ctx(&[("App", "orders")])),
        encryption_context_equals: None,
    });
    let made = w.owner.create_grant(&w.key_arn, request).unwrap();
    assert_eq!(made.grant_id.len(), 64);

    let sealed = w.partner.encrypt(&w.key_arn, b"x", &orders).unwrap();
    let opened = w
        .partner
        .decrypt(Some(&w.key_arn), &sealed.ciphertext_blob, &orders)
        .unwrap();
    assert_eq!(&opened.plaintext[..], b"x");
    // Constraint keys compare without case, values with it; other operations stay shut.
    assert_eq!(
        code(
            w.partner
                .encrypt(&w.key_arn, b"x", &ctx(&[("app", "Orders")]))
        ),
        "AccessDeniedException"
    );
    assert_eq!(
        code(w.partner.generate_data_key(&w.key_arn, 32, &orders)),
        "AccessDeniedException"
    );
    assert_eq!(
        code(w.partner.disable_key(&w.key_arn)),
        "NotFoundException",
        "management stays with the owner's account"
    );
    // Constraints do not apply to DescribeKey, which takes no context.
    assert_eq!(code(w.partner.describe_key(&w.key_arn)), "ok");

    // The key policy's explicit Deny beats the grant.
    let deny = format!(
        r#"{{"Statement":[
            {{"Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::{OWNER}:root"}},"Action":"kms:*","Resource":"*"}},
            {{"Effect":"Deny","Principal":{{"AWS":"{PARTNER_ROLE}"}},"Action":"kms:Encrypt","Resource":"*"}}]}}"#
    );
    w.owner.put_key_policy(&w.key_arn, &deny).unwrap();
    assert_eq!(
        code(w.partner.encrypt(&w.key_arn, b"x", &orders)),
        "AccessDeniedException"
    );
    assert_eq!(
        code(
            w.partner
                .decrypt(Some(&w.key_arn), &sealed.ciphertext_blob, &orders)
        ),
        "ok"
    );
}

#[test]
fn grants_are_listed_retired_and_revoked_by_whom_aws_allows() {
    let w = world();
    let ops = [GrantOperation::Encrypt];
    let named = || CreateGrantRequest {
        name: Some("nightly".into()),
        ..grant(&ops)
    };
    let first = w.owner.create_grant(&w.key_arn, named()).unwrap();
    let again = w.owner.create_grant(&w.key_arn, named()).unwrap();
    assert_eq!(
        first.grant_id, again.grant_id,
        "a named retry is the same grant"
    );
    assert_ne!(first.grant_token, again.grant_token);
    let other = w.owner.create_grant(&w.key_arn, grant(&ops)).unwrap();

    let listed = w.owner.list_grants(&w.key_arn, None, None).unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(
        listed[0].issuing_account,
        format!("arn:aws:iam::{OWNER}:root")
    );
    assert_eq!(listed[0].name.as_deref(), Some("nightly"));
    let retirer = w.kms.client(Caller::new(RETIRER, REGION).unwrap());
    assert_eq!(retirer.list_retirable_grants(RETIRER).unwrap().len(), 2);
    assert_eq!(
        code(w.owner.list_retirable_grants(RETIRER)),
        "AccessDeniedException"
    );

    // The grantee, without RetireGrant in its grant, cannot retire it; the retiring
    // principal can, by token.
    assert_eq!(
        code(w.partner.retire_grant(GrantRef::Token(&first.grant_token))),
        "AccessDeniedException"
    );
    retirer
        .retire_grant(GrantRef::Token(&again.grant_token))
        .unwrap();
    assert_eq!(
        code(retirer.retire_grant(GrantRef::Token(&first.grant_token))),
        "NotFoundException"
    );
    // Revoking takes kms:RevokeGrant in the key policy: the owner has it, the partner not.
    assert_eq!(
        code(w.partner.revoke_grant(&w.key_arn, &other.grant_id)),
        "AccessDeniedException"
    );
    w.owner.revoke_grant(&w.key_arn, &other.grant_id).unwrap();
    assert!(w
        .owner
        .list_grants(&w.key_arn, None, None)
        .unwrap()
        .is_empty());
    assert_eq!(
        code(w.partner.encrypt(&w.key_arn, b"x", &ctx(&[]))),
        "AccessDeniedException"
    );
}

#[test]
fn a_grantee_passes_on_only_what_it_holds() {
    let w = world();
    w.owner
        .create_grant(
            &w.key_arn,
            grant(&[GrantOperation::Encrypt, GrantOperation::CreateGrant]),
        )
        .unwrap();
    let downstream = "arn:aws:iam::444455556666:role/downstream";
    let pass_on = |operations: &[GrantOperation]| {
        w.partner.create_grant(
            &w.key_arn,
            CreateGrantRequest {
                grantee_principal: downstream.into(),
                operations: operations.to_vec(),
                ..Default::default()
            },
        )
    };
    assert_eq!(code(pass_on(&[GrantOperation::Encrypt])), "ok");
    assert_eq!(
        code(pass_on(&[GrantOperation::Encrypt, GrantOperation::Decrypt])),
        "AccessDeniedException"
    );
    let down = w.kms.client(Caller::new(downstream, REGION).unwrap());
    assert_eq!(code(down.encrypt(&w.key_arn, b"x", &ctx(&[]))), "ok");
}

#[test]
fn bad_grants_are_refused_with_aws_errors() {
    let w = world();
    let refused = |request: CreateGrantRequest| code(w.owner.create_grant(&w.key_arn, request));
    assert_eq!(
        refused(grant(&[GrantOperation::Sign])),
        "ValidationException",
        "a symmetric key cannot sign"
    );
    assert_eq!(refused(grant(&[])), "ValidationException");
    assert_eq!(
        refused(CreateGrantRequest {
            grantee_principal: "bob".into(),
            ..grant(&[GrantOperation::Encrypt])
        }),
        "InvalidArnException"
    );
    assert_eq!(
        refused(CreateGrantRequest {
            name: Some("no spaces".into()),
            ..grant(&[GrantOperation::Encrypt])
        }),
        "ValidationException"
    );
    assert_eq!(
        code(w.owner.retire_grant(GrantRef::Token("not-a-token"))),
        "InvalidGrantTokenException"
    );
    assert_eq!(
        code(w.owner.revoke_grant(&w.key_arn, "xyz")),
        "InvalidGrantIdException"
    );
    assert_eq!(
        code(w.owner.revoke_grant(&w.key_arn, &"0".repeat(64))),
        "NotFoundException"
    );
    w.owner.disable_key(&w.key_arn).unwrap();
    assert_eq!(
        refused(grant(&[GrantOperation::Encrypt])),
        "DisabledException"
    );
}

#[test]
fn a_dry_run_checks_everything_and_changes_nothing() {
    let w = world();
    let dry = w.owner.dry_run();
    let would = dry
        .create_grant(&w.key_arn, grant(&[GrantOperation::Encrypt]))
        .unwrap();
    assert_eq!(would.grant_id.len(), 64);
    assert!(w
        .owner
        .list_grants(&w.key_arn, None, None)
        .unwrap()
        .is_empty());
    assert_eq!(
        code(w.partner.encrypt(&w.key_arn, b"x", &ctx(&[]))),
        "AccessDeniedException"
    );
    assert_eq!(
        code(dry.create_grant(&w.key_arn, grant(&[GrantOperation::Sign]))),
        "ValidationException"
    );
    dry.disable_key(&w.key_arn).unwrap();
    assert!(w.owner.describe_key(&w.key_arn).unwrap().enabled);
}

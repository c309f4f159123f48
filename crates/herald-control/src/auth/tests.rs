//! Tests of who may call what.

use herald_core::credential::{Credential, CredentialKind, IssuedToken, OperatorToken, TenantId};

use super::*;

const BOOTSTRAP: &str = "0123456789abcdef";

fn bootstrap(disabled: bool) -> AuthConfig {
    AuthConfig {
        disabled,
        api_tokens: vec!["another-bootstrap-token".to_owned(), BOOTSTRAP.to_owned()],
    }
}

/// Issues an operator token into `set` and returns its `authorization` value.
fn issue(set: &mut CredentialSet, tenant: Option<&str>, access: Access, n: u128) -> String {
    let issued = IssuedToken::issue(
        CredentialKind::OperatorToken,
        ulid::Ulid::from(n),
        &[n as u8; 32],
    );
    set.put(Credential::OperatorToken(OperatorToken {
        id: issued.id.clone(),
        tenant: tenant.map(|tenant| TenantId::parse(tenant, "tenant").unwrap()),
        access,
        description: String::new(),
        token_hash: issued.hash.clone(),
        created_at: OffsetDateTime::UNIX_EPOCH,
        revoked_at: None,
    }));
    format!("Bearer {}", issued.token)
}

fn code(result: Result<OperatorScope>) -> &'static str {
    match result {
        Ok(_) => "ok",
        Err(err) => err.code().as_str(),
    }
}

#[test]
fn bootstrap_tokens_are_read_write_admins_named_by_index() {
    let set = CredentialSet::default();
    let scope = admit(
        &bootstrap(false),
        &set,
        "CredentialService/CreateProducerKey",
        Some(&format!("Bearer {BOOTSTRAP}")),
    )
    .unwrap();
    assert_eq!(scope, OperatorScope::bootstrap(1));
    let anonymous = admit(
        &bootstrap(true),
        &set,
        "AuditService/ListAuditRecords",
        None,
    )
    .unwrap();
    assert_eq!(anonymous.credential, "anonymous");
}

#[test]
fn missing_wrong_and_malformed_tokens_are_unauthenticated() {
    let mut set = CredentialSet::default();
    let genuine = issue(&mut set, None, Access::ReadWrite, 1);
    let forged = format!("{}x", &genuine[..genuine.len() - 1]);
    for authorization in [
        None,
        Some("Bearer wrong-token-0123456789"),
        Some(BOOTSTRAP),
        Some(forged.as_str()),
        Some(&genuine[7..]),
    ] {
        let result = admit(
            &bootstrap(false),
            &set,
            "SubscriptionService/ListSubscriptions",
            authorization,
        );
        assert_eq!(code(result), "unauthenticated", "{authorization:?}");
    }
}

#[test]
fn read_only_and_tenant_tokens_are_denied_what_they_may_not_do() {
    let mut set = CredentialSet::default();
    let tenant_rw = issue(&mut set, Some("acme"), Access::ReadWrite, 1);
    let tenant_ro = issue(&mut set, Some("acme"), Access::ReadOnly, 2);
    let admin_ro = issue(&mut set, None, Access::ReadOnly, 3);
    let config = bootstrap(false);
    let check = |token: &str, method: &str| code(admit(&config, &set, method, Some(token)));
    assert_eq!(
        check(&tenant_rw, "SubscriptionService/CreateSubscription"),
        "ok"
    );
    assert_eq!(check(&tenant_rw, "DeliveryService/ListAttempts"), "ok");
    assert_eq!(
        check(&tenant_rw, "CredentialService/CreateProducerKey"),
        "permission_denied"
    );
    assert_eq!(
        check(&tenant_rw, "AuditService/ListAuditRecords"),
        "permission_denied"
    );
    assert_eq!(
        check(&tenant_rw, "EventService/ListRejectedEvents"),
        "permission_denied"
    );
    assert_eq!(
        check(&tenant_rw, "EventTypeService/CreateEventType"),
        "permission_denied"
    );
    assert_eq!(
        check(&tenant_ro, "SubscriptionService/GetSubscription"),
        "ok"
    );
    for mutation in [
        "SubscriptionService/CreateSubscription",
        "SubscriptionService/DeleteSubscription",
        "SubscriptionService/RotateSecret",
        "DeliveryService/RedriveDeadLetters",
        "DeliveryService/ReplayEvents",
    ] {
        assert_eq!(
            check(&tenant_ro, mutation),
            "permission_denied",
            "{mutation}"
        );
    }
    assert_eq!(check(&admin_ro, "AuditService/ListAuditRecords"), "ok");
    assert_eq!(
        check(&admin_ro, "CredentialService/RevokeOperatorToken"),
        "permission_denied"
    );
}

#[test]
fn methods_the_table_does_not_know_need_a_read_write_admin() {
    assert_eq!(
        required_access("SubscriptionService/SomethingNew"),
        Required::AdminWrite
    );
    assert_eq!(required_access("NewService/Get"), Required::AdminWrite);
}

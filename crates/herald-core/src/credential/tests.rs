//! Tests of tenants, tokens, scopes and the credential set.

use time::OffsetDateTime;

use super::*;

fn ulid(n: u128) -> ulid::Ulid {
    ulid::Ulid::from(n)
}

fn producer_key(issued: &IssuedToken) -> ProducerKey {
    ProducerKey {
        id: issued.id.clone(),
        tenant: TenantId::parse("acme", "tenant").unwrap(),
        description: String::new(),
        source_prefixes: vec!["https://shop.acme/".to_owned()],
        type_prefixes: vec!["com.acme.order.".to_owned(), "com.acme.cart.".to_owned()],
        rate_limit: None,
        token_hash: issued.hash.clone(),
        created_at: OffsetDateTime::UNIX_EPOCH,
        revoked_at: None,
    }
}

#[test]
fn tenant_ids_are_subject_tokens() {
    for good in ["default", "acme", "a", "team-7", "0x"] {
        assert!(TenantId::parse(good, "tenant").is_ok(), "{good}");
    }
    let long = "a".repeat(MAX_TENANT_LEN + 1);
    for bad in [
        "",
        "-a",
        "Acme",
        "a.b",
        "a*",
        "a>",
        "a b",
        "é",
        long.as_str(),
    ] {
        let error = TenantId::parse(bad, "tenant").unwrap_err();
        assert_eq!(error.field, "tenant", "{bad}");
    }
}

#[test]
fn an_issued_token_is_found_by_its_id_and_checked_against_its_hash() {
    let issued = IssuedToken::issue(CredentialKind::ProducerKey, ulid(7), &[9; 32]);
    assert!(issued.token.starts_with("hpk_"));
    assert!(issued.id.as_str().starts_with("pk_"));
    assert_eq!(
        id_of_token(CredentialKind::ProducerKey, &issued.token),
        Some(issued.id.clone())
    );
    assert_eq!(
        id_of_token(CredentialKind::OperatorToken, &issued.token),
        None
    );
    assert!(issued.hash.matches(&issued.token));
    assert!(!format!("{issued:?}").contains(&issued.token));
    assert!(!format!("{:?}", issued.hash).contains("sha256"));

    let mut set = CredentialSet::default();
    set.put(Credential::ProducerKey(producer_key(&issued)));
    assert!(set.producer_key(&issued.token).is_some());
    assert!(set.operator_token(&issued.token).is_none());
    // Same id, another secret: found by id, refused by the hash.
    let forged = IssuedToken::issue(CredentialKind::ProducerKey, ulid(7), &[8; 32]);
    assert!(set.producer_key(&forged.token).is_none());
    for garbage in [
        "",
        "hpk_",
        "hpk_x_y",
        "Bearer",
        &issued.token[..issued.token.len() - 1],
    ] {
        assert!(set.producer_key(garbage).is_none(), "{garbage}");
    }
}

#[test]
fn revoked_credentials_authenticate_no_one() {
    let issued = IssuedToken::issue(CredentialKind::OperatorToken, ulid(1), &[1; 32]);
    let token = OperatorToken {
        id: issued.id.clone(),
        tenant: None,
        access: Access::ReadOnly,
        description: "ci".to_owned(),
        token_hash: issued.hash.clone(),
        created_at: OffsetDateTime::UNIX_EPOCH,
        revoked_at: None,
    };
    let mut credential = Credential::OperatorToken(token);
    let mut set = CredentialSet::default();
    set.put(credential.clone());
    assert_eq!(
        set.operator_token(&issued.token)
            .map(|token| token.scope().access),
        Some(Access::ReadOnly)
    );
    credential.revoke(OffsetDateTime::UNIX_EPOCH);
    set.put(credential);
    assert!(set.operator_token(&issued.token).is_none());
    assert!(set.is_empty());
}

#[test]
fn a_producer_key_permits_only_its_prefixes() {
    let issued = IssuedToken::issue(CredentialKind::ProducerKey, ulid(2), &[2; 32]);
    let key = producer_key(&issued);
    assert!(
        key.permits("https://shop.acme/eu", "com.acme.order.paid")
            .is_ok()
    );
    assert!(key.permits("https://shop.acme/", "com.acme.cart.x").is_ok());
    let refusal = key
        .permits("https://evil/", "com.acme.order.paid")
        .unwrap_err();
    assert_eq!(refusal.attribute, "source");
    let refusal = key
        .permits("https://shop.acme/", "com.other.order")
        .unwrap_err();
    assert_eq!(refusal.attribute, "type");
    let open = ProducerKey {
        source_prefixes: Vec::new(),
        type_prefixes: Vec::new(),
        ..key
    };
    assert!(open.permits("anything", "at.all").is_ok());
}

#[test]
fn producer_key_settings_are_checked_naming_the_field() {
    let issued = IssuedToken::issue(CredentialKind::ProducerKey, ulid(3), &[3; 32]);
    let key = producer_key(&issued);
    assert!(key.validate().is_ok());
    let empty_prefix = ProducerKey {
        type_prefixes: vec!["a".to_owned(), String::new()],
        ..key.clone()
    };
    assert_eq!(
        empty_prefix.validate().unwrap_err().field,
        "type_prefixes[1]"
    );
    let zero_rate = ProducerKey {
        rate_limit: Some(RateLimit {
            per_second: 0,
            burst: 1,
        }),
        ..key
    };
    assert_eq!(
        zero_rate.validate().unwrap_err().field,
        "rate_limit.per_second"
    );
}

#[test]
fn the_stored_form_holds_the_hash_and_never_the_token() {
    let issued = IssuedToken::issue(CredentialKind::ProducerKey, ulid(4), &[4; 32]);
    let credential = Credential::ProducerKey(producer_key(&issued));
    let json = serde_json::to_string(&credential).unwrap();
    assert!(json.contains("\"kind\":\"producer_key\""), "{json}");
    assert!(json.contains("sha256:"), "{json}");
    assert!(!json.contains(&issued.token), "{json}");
    let secret_part = issued.token.rsplit('_').next().unwrap();
    assert!(!json.contains(secret_part), "{json}");
    let back: Credential = serde_json::from_str(&json).unwrap();
    assert_eq!(back, credential);
}

#[test]
fn scopes_see_their_own_tenant_and_admins_every_tenant() {
    let acme = TenantId::parse("acme", "tenant").unwrap();
    let other = TenantId::parse("other", "tenant").unwrap();
    let tenant_scope = OperatorScope {
        credential: "ot_x".to_owned(),
        tenant: Some(acme.clone()),
        access: Access::ReadWrite,
    };
    assert!(tenant_scope.sees(&acme));
    assert!(!tenant_scope.sees(&other));
    assert!(OperatorScope::bootstrap(0).sees(&other));
    assert_eq!(OperatorScope::bootstrap(2).credential, "config.2");
}

//! `heraldctl key|token|audit` against a running control service (issue 12): a key's token and
//! an operator token's secret are printed once, a tenant's token sees its own subscriptions and
//! may not manage credentials, revocation is listed, and the audit stream names who did what.

use crate::support::{Control, TOKEN, failure_of, stdout_of};

/// Returns the value of the `name: value` line of `text`.
fn field<'a>(text: &'a str, name: &str) -> &'a str {
    text.lines()
        .find_map(|line| line.strip_prefix(&format!("{name}: ")))
        .unwrap_or_else(|| panic!("no `{name}:` line in {text}"))
}

#[tokio::test]
async fn manages_keys_and_tokens_and_lists_the_audit_stream() {
    let control = Control::start(false).await;
    let admin = |args: &[&str]| {
        let mut full = vec!["--token", TOKEN];
        full.extend_from_slice(args);
        full.into_iter().map(str::to_owned).collect::<Vec<_>>()
    };
    let run = |args: Vec<String>| {
        let control = &control;
        async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            control.heraldctl(&args).await
        }
    };

    let created = stdout_of(
        &run(admin(&[
            "key",
            "create",
            "--tenant",
            "acme",
            "--type-prefix",
            "com.acme.",
            "--rate-limit",
            "50",
        ]))
        .await,
    );
    let key_id = field(&created, "id").to_owned();
    let key_token = field(&created, "token").to_owned();
    assert!(key_id.starts_with("pk_"), "{created}");
    assert!(key_token.starts_with("hpk_"), "{created}");
    assert_eq!(field(&created, "types"), "com.acme.");
    assert_eq!(field(&created, "rate limit"), "50/s burst 50");
    assert!(created.contains("shown once"), "{created}");

    let operator = stdout_of(&run(admin(&["token", "create", "--tenant", "acme"])).await);
    let operator_secret = field(&operator, "secret").to_owned();
    assert_eq!(field(&operator, "scope"), "tenant acme, read-write");

    let listed = stdout_of(&run(admin(&["key", "list"])).await);
    assert!(listed.contains(&key_id), "{listed}");
    assert!(
        !listed.contains(&key_token),
        "a listing never shows a token: {listed}"
    );

    // The tenant's operator creates in its tenant and may not manage credentials.
    let tenant = |args: &[&str]| {
        let mut full = vec!["--token".to_owned(), operator_secret.clone()];
        full.extend(args.iter().map(|arg| (*arg).to_owned()));
        full
    };
    let subscription = stdout_of(
        &run(tenant(&[
            "sub",
            "create",
            "--sink",
            "https://hooks.example.com/acme",
        ]))
        .await,
    );
    let subscription_id = subscription
        .lines()
        .find_map(|line| line.strip_prefix("id"))
        .map(str::trim)
        .unwrap_or_else(|| panic!("no id in {subscription}"));
    let own = stdout_of(&run(tenant(&["sub", "list"])).await);
    assert!(own.contains(subscription_id), "{own}");
    let denied = failure_of(&run(tenant(&["key", "list"])).await);
    assert!(denied.to_lowercase().contains("permission"), "{denied}");
    let denied = failure_of(&run(tenant(&["audit", "list"])).await);
    assert!(denied.to_lowercase().contains("permission"), "{denied}");

    let revoked = stdout_of(&run(admin(&["key", "revoke", &key_id])).await);
    assert_ne!(field(&revoked, "revoked"), "-", "{revoked}");

    let audit = stdout_of(&run(admin(&["audit", "list"])).await);
    let rpcs: Vec<&str> = audit
        .lines()
        .skip(1)
        .filter_map(|line| line.split_whitespace().nth(3))
        .collect();
    assert_eq!(
        rpcs,
        [
            "RevokeProducerKey",
            "CreateSubscription",
            "CreateOperatorToken",
            "CreateProducerKey"
        ],
        "{audit}"
    );
    for secret in [key_token.as_str(), operator_secret.as_str(), TOKEN] {
        assert!(!audit.contains(secret), "{audit}");
    }
    let json = stdout_of(
        &run(admin(&[
            "--output", "json", "audit", "list", "--limit", "1",
        ]))
        .await,
    );
    let page: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(page["records"][0]["rpc"], "RevokeProducerKey");
    assert_eq!(page["records"][0]["credential"], "config.0");
    assert!(!page["next_page_token"].as_str().unwrap().is_empty());
}

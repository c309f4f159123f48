//! Snapshots of rendered producer keys, operator tokens and audit records.

use super::*;

fn time() -> Option<prost_types::Timestamp> {
    Some(prost_types::Timestamp {
        seconds: 1_735_787_045,
        nanos: 0,
    })
}

#[test]
fn keys_show_scope_rate_and_revocation_and_no_token() {
    let keys = [
        pb::ProducerKey {
            id: "pk_01JGX".to_owned(),
            tenant: "acme".to_owned(),
            source_prefixes: vec!["/shop".to_owned()],
            type_prefixes: vec!["com.acme.order.".to_owned(), "com.acme.cart.".to_owned()],
            rate_limit: Some(pb::RateLimit {
                per_second: 50,
                burst: 100,
            }),
            create_time: time(),
            ..Default::default()
        },
        pb::ProducerKey {
            id: "pk_01JGY".to_owned(),
            tenant: "globex".to_owned(),
            create_time: time(),
            revoke_time: time(),
            ..Default::default()
        },
    ];
    let table = keys_table(&keys);
    let expected = "\
ID        TENANT  SOURCES  TYPES                          RATE              REVOKED
pk_01JGX  acme    /shop    com.acme.order.,com.acme.cart.  50/s burst 100    -
pk_01JGY  globex  any      any                            none              2025-01-02T03:04:05Z
";
    assert_eq!(normalize(&table), normalize(expected), "{table}");
    assert!(key_lines(&keys[0]).contains("rate limit: 50/s burst 100\n"));
}

#[test]
fn tokens_show_their_scope() {
    let tokens = [
        pb::OperatorToken {
            id: "ot_1".to_owned(),
            tenant: "acme".to_owned(),
            read_only: true,
            description: "dashboards".to_owned(),
            ..Default::default()
        },
        pb::OperatorToken {
            id: "ot_2".to_owned(),
            ..Default::default()
        },
    ];
    let table = tokens_table(&tokens);
    assert!(table.contains("tenant acme, read-only"), "{table}");
    assert!(table.contains("admin, read-write"), "{table}");
}

#[test]
fn audit_records_show_who_what_and_revisions() {
    let records = [
        pb::AuditRecord {
            sequence: 2,
            time: time(),
            credential: "ot_01JGX".to_owned(),
            credential_tenant: "acme".to_owned(),
            rpc: "UpdateSubscription".to_owned(),
            resource: "sub_01JGX".to_owned(),
            tenant: "acme".to_owned(),
            old_revision: 3,
            new_revision: 4,
        },
        pb::AuditRecord {
            sequence: 1,
            time: time(),
            credential: "config.0".to_owned(),
            rpc: "CreateOperatorToken".to_owned(),
            resource: "ot_01JGX".to_owned(),
            new_revision: 1,
            ..Default::default()
        },
    ];
    let table = audit_table(&records);
    let lines: Vec<Vec<&str>> = table
        .lines()
        .map(|line| line.split_whitespace().collect())
        .collect();
    assert_eq!(
        lines,
        [
            vec![
                "SEQ", "TIME", "WHO", "RPC", "RESOURCE", "TENANT", "REVISION"
            ],
            vec![
                "2",
                "2025-01-02T03:04:05Z",
                "ot_01JGX",
                "UpdateSubscription",
                "sub_01JGX",
                "acme",
                "3",
                "->",
                "4"
            ],
            vec![
                "1",
                "2025-01-02T03:04:05Z",
                "config.0",
                "CreateOperatorToken",
                "ot_01JGX",
                "-",
                "-",
                "->",
                "1"
            ],
        ]
    );
    assert_eq!(audit_json(&records[0])["old_revision"], "3");
}

/// Compares tables by their words, not their padding.
fn normalize(table: &str) -> Vec<Vec<String>> {
    table
        .lines()
        .map(|line| line.split_whitespace().map(str::to_owned).collect())
        .collect()
}

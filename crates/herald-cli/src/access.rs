//! `heraldctl key ...`, `heraldctl token ...` and `heraldctl audit list`: producer keys, operator
//! tokens and the audit stream, over the control plane's Credentials and Audit APIs (admin
//! tokens only). A token is printed once, by the command that creates it; listings never show
//! one. Their arguments live here rather than in `args.rs`, beside the only code that reads them.

use clap::{Args, Subcommand};
use serde_json::{Value, json};

use herald_proto::v1 as pb;

use crate::args::{OutputFormat, parse_time};
use crate::client::{AuditClient, CredentialClient};
use crate::output;

#[cfg(test)]
mod tests;

#[derive(Debug, Subcommand)]
pub(crate) enum KeyCommand {
    /// Create a producer key for a tenant; its token is printed once.
    Create(KeyCreateArgs),
    /// List producer keys, revoked ones included.
    List {
        /// Only this tenant's keys.
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Revoke a producer key: ingest refuses it within seconds.
    Revoke {
        /// The key's id (`pk_...`).
        id: String,
    },
}

#[derive(Debug, Args)]
pub(crate) struct KeyCreateArgs {
    /// The tenant its events are stored for (lower-case letters, digits and `-`).
    #[arg(long)]
    pub(crate) tenant: String,
    /// An event's `source` must start with one of these; repeatable; none: any source.
    #[arg(long = "source-prefix", value_name = "PREFIX")]
    pub(crate) source_prefixes: Vec<String>,
    /// An event's `type` must start with one of these; repeatable; none: any type.
    #[arg(long = "type-prefix", value_name = "PREFIX")]
    pub(crate) type_prefixes: Vec<String>,
    /// Events a second the key may publish; over it ingest answers 429.
    #[arg(long, value_name = "N")]
    pub(crate) rate_limit: Option<u32>,
    /// Events the key may publish at once after a quiet period (the rate when unset).
    #[arg(long, value_name = "N", requires = "rate_limit")]
    pub(crate) burst: Option<u32>,
    #[arg(long, default_value = "")]
    pub(crate) description: String,
}

#[derive(Debug, Subcommand)]
pub(crate) enum TokenCommand {
    /// Create an operator token, for a tenant or (with --admin) for every tenant; its secret is
    /// printed once.
    Create(TokenCreateArgs),
    /// List operator tokens, revoked ones included.
    List {
        /// Only this tenant's tokens.
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Revoke an operator token: the control plane refuses it within seconds.
    Revoke {
        /// The token's id (`ot_...`).
        id: String,
    },
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("scope").required(true).args(["tenant", "admin"])))]
pub(crate) struct TokenCreateArgs {
    /// The tenant whose subscriptions, dead letters and attempts it may see.
    #[arg(long)]
    pub(crate) tenant: Option<String>,
    /// Every tenant, the credentials and the audit stream.
    #[arg(long)]
    pub(crate) admin: bool,
    /// It may read but change nothing.
    #[arg(long)]
    pub(crate) read_only: bool,
    #[arg(long, default_value = "")]
    pub(crate) description: String,
}

#[derive(Debug, Subcommand)]
pub(crate) enum AuditCommand {
    /// List audit records, newest first (or oldest first from --since).
    List(AuditListArgs),
}

#[derive(Debug, Args)]
pub(crate) struct AuditListArgs {
    /// Show at most this many.
    #[arg(long, default_value_t = 100)]
    pub(crate) limit: u32,
    /// Only records at or after this time (RFC 3339).
    #[arg(long, value_parser = parse_time)]
    pub(crate) since: Option<time::OffsetDateTime>,
    /// Oldest first.
    #[arg(long)]
    pub(crate) oldest_first: bool,
    /// Continue a previous listing (its `next page:` token).
    #[arg(long, default_value = "")]
    pub(crate) page_token: String,
}

/// Runs one `key` command and returns what to print.
pub(crate) async fn key(
    client: &mut CredentialClient,
    command: KeyCommand,
    format: OutputFormat,
) -> anyhow::Result<String> {
    match command {
        KeyCommand::Create(args) => {
            let rate_limit = args.rate_limit.map(|per_second| pb::RateLimit {
                per_second,
                burst: args.burst.unwrap_or(0),
            });
            let request = pb::CreateProducerKeyRequest {
                tenant: args.tenant,
                description: args.description,
                source_prefixes: args.source_prefixes,
                type_prefixes: args.type_prefixes,
                rate_limit,
            };
            let created = client.create_producer_key(request).await?.into_inner();
            let key = created.key.unwrap_or_default();
            Ok(match format {
                OutputFormat::Table => format!(
                    "{}token: {}\n(shown once: store it now; Herald keeps only its hash)\n",
                    key_lines(&key),
                    created.token
                ),
                OutputFormat::Json => output::json_text(&json!({
                    "key": key_json(&key),
                    "token": created.token,
                })),
            })
        }
        KeyCommand::List { tenant } => {
            let request = pb::ListProducerKeysRequest {
                tenant: tenant.unwrap_or_default(),
            };
            let keys = client.list_producer_keys(request).await?.into_inner().keys;
            Ok(match format {
                OutputFormat::Table => keys_table(&keys),
                OutputFormat::Json => output::json_text(
                    &json!({ "keys": keys.iter().map(key_json).collect::<Vec<_>>() }),
                ),
            })
        }
        KeyCommand::Revoke { id } => {
            let key = client
                .revoke_producer_key(pb::RevokeCredentialRequest { id })
                .await?
                .into_inner();
            Ok(match format {
                OutputFormat::Table => key_lines(&key),
                OutputFormat::Json => output::json_text(&key_json(&key)),
            })
        }
    }
}

/// Runs one `token` command and returns what to print.
pub(crate) async fn token(
    client: &mut CredentialClient,
    command: TokenCommand,
    format: OutputFormat,
) -> anyhow::Result<String> {
    match command {
        TokenCommand::Create(args) => {
            let request = pb::CreateOperatorTokenRequest {
                tenant: if args.admin {
                    String::new()
                } else {
                    args.tenant.unwrap_or_default()
                },
                read_only: args.read_only,
                description: args.description,
            };
            let created = client.create_operator_token(request).await?.into_inner();
            let token = created.token.unwrap_or_default();
            Ok(match format {
                OutputFormat::Table => format!(
                    "{}secret: {}\n(shown once: store it now; Herald keeps only its hash)\n",
                    token_lines(&token),
                    created.secret
                ),
                OutputFormat::Json => output::json_text(&json!({
                    "token": token_json(&token),
                    "secret": created.secret,
                })),
            })
        }
        TokenCommand::List { tenant } => {
            let request = pb::ListOperatorTokensRequest {
                tenant: tenant.unwrap_or_default(),
            };
            let tokens = client
                .list_operator_tokens(request)
                .await?
                .into_inner()
                .tokens;
            Ok(match format {
                OutputFormat::Table => tokens_table(&tokens),
                OutputFormat::Json => output::json_text(
                    &json!({ "tokens": tokens.iter().map(token_json).collect::<Vec<_>>() }),
                ),
            })
        }
        TokenCommand::Revoke { id } => {
            let token = client
                .revoke_operator_token(pb::RevokeCredentialRequest { id })
                .await?
                .into_inner();
            Ok(match format {
                OutputFormat::Table => token_lines(&token),
                OutputFormat::Json => output::json_text(&token_json(&token)),
            })
        }
    }
}

/// Runs `audit list` and returns what to print.
pub(crate) async fn audit(
    client: &mut AuditClient,
    command: AuditCommand,
    format: OutputFormat,
) -> anyhow::Result<String> {
    let AuditCommand::List(args) = command;
    let request = pb::ListAuditRecordsRequest {
        page_size: args.limit,
        page_token: args.page_token,
        since: args.since.map(herald_proto::timestamp_to_pb),
        oldest_first: args.oldest_first,
    };
    let page = client.list_audit_records(request).await?.into_inner();
    Ok(match format {
        OutputFormat::Table => {
            let mut text = audit_table(&page.records);
            if !page.next_page_token.is_empty() {
                text.push_str(&format!(
                    "next page: --page-token {}\n",
                    page.next_page_token
                ));
            }
            text
        }
        OutputFormat::Json => output::json_text(&json!({
            "records": page.records.iter().map(audit_json).collect::<Vec<_>>(),
            "next_page_token": page.next_page_token,
        })),
    })
}

fn or_any(prefixes: &[String]) -> String {
    if prefixes.is_empty() {
        "any".to_owned()
    } else {
        prefixes.join(",")
    }
}

fn rate_summary(limit: Option<&pb::RateLimit>) -> String {
    match limit {
        Some(limit) => format!("{}/s burst {}", limit.per_second, limit.burst),
        None => "none".to_owned(),
    }
}

fn revoked_summary(revoke_time: Option<&prost_types::Timestamp>) -> String {
    match revoke_time {
        Some(_) => output::time_summary(revoke_time),
        None => "-".to_owned(),
    }
}

/// Returns a producer key as `name: value` lines.
pub(crate) fn key_lines(key: &pb::ProducerKey) -> String {
    format!(
        "id: {}\ntenant: {}\nsources: {}\ntypes: {}\nrate limit: {}\ncreated: {}\nrevoked: {}\n",
        key.id,
        key.tenant,
        or_any(&key.source_prefixes),
        or_any(&key.type_prefixes),
        rate_summary(key.rate_limit.as_ref()),
        output::time_summary(key.create_time.as_ref()),
        revoked_summary(key.revoke_time.as_ref()),
    )
}

/// Returns producer keys as a table.
pub(crate) fn keys_table(keys: &[pb::ProducerKey]) -> String {
    let rows: Vec<Vec<String>> = keys
        .iter()
        .map(|key| {
            vec![
                key.id.clone(),
                key.tenant.clone(),
                or_any(&key.source_prefixes),
                or_any(&key.type_prefixes),
                rate_summary(key.rate_limit.as_ref()),
                revoked_summary(key.revoke_time.as_ref()),
            ]
        })
        .collect();
    output::table(
        &["ID", "TENANT", "SOURCES", "TYPES", "RATE", "REVOKED"],
        &rows,
    )
}

fn key_json(key: &pb::ProducerKey) -> Value {
    json!({
        "id": key.id,
        "tenant": key.tenant,
        "description": key.description,
        "source_prefixes": key.source_prefixes,
        "type_prefixes": key.type_prefixes,
        "rate_limit": key.rate_limit.as_ref().map(|limit| json!({
            "per_second": limit.per_second,
            "burst": limit.burst,
        })),
        "create_time": output::time_json(key.create_time.as_ref()),
        "revoke_time": output::time_json(key.revoke_time.as_ref()),
        "revision": key.revision.to_string(),
    })
}

fn scope_summary(token: &pb::OperatorToken) -> String {
    let tenant = if token.tenant.is_empty() {
        "admin".to_owned()
    } else {
        format!("tenant {}", token.tenant)
    };
    let access = if token.read_only {
        "read-only"
    } else {
        "read-write"
    };
    format!("{tenant}, {access}")
}

/// Returns an operator token as `name: value` lines.
pub(crate) fn token_lines(token: &pb::OperatorToken) -> String {
    format!(
        "id: {}\nscope: {}\ncreated: {}\nrevoked: {}\n",
        token.id,
        scope_summary(token),
        output::time_summary(token.create_time.as_ref()),
        revoked_summary(token.revoke_time.as_ref()),
    )
}

/// Returns operator tokens as a table.
pub(crate) fn tokens_table(tokens: &[pb::OperatorToken]) -> String {
    let rows: Vec<Vec<String>> = tokens
        .iter()
        .map(|token| {
            vec![
                token.id.clone(),
                scope_summary(token),
                token.description.clone(),
                revoked_summary(token.revoke_time.as_ref()),
            ]
        })
        .collect();
    output::table(&["ID", "SCOPE", "DESCRIPTION", "REVOKED"], &rows)
}

fn token_json(token: &pb::OperatorToken) -> Value {
    json!({
        "id": token.id,
        "tenant": token.tenant,
        "read_only": token.read_only,
        "description": token.description,
        "create_time": output::time_json(token.create_time.as_ref()),
        "revoke_time": output::time_json(token.revoke_time.as_ref()),
        "revision": token.revision.to_string(),
    })
}

fn revisions(record: &pb::AuditRecord) -> String {
    let revision = |revision: u64| {
        if revision == 0 {
            "-".to_owned()
        } else {
            revision.to_string()
        }
    };
    format!(
        "{} -> {}",
        revision(record.old_revision),
        revision(record.new_revision)
    )
}

/// Returns audit records as a table.
pub(crate) fn audit_table(records: &[pb::AuditRecord]) -> String {
    let rows: Vec<Vec<String>> = records
        .iter()
        .map(|record| {
            vec![
                record.sequence.to_string(),
                output::time_summary(record.time.as_ref()),
                record.credential.clone(),
                record.rpc.clone(),
                record.resource.clone(),
                if record.tenant.is_empty() {
                    "-".to_owned()
                } else {
                    record.tenant.clone()
                },
                revisions(record),
            ]
        })
        .collect();
    output::table(
        &[
            "SEQ", "TIME", "WHO", "RPC", "RESOURCE", "TENANT", "REVISION",
        ],
        &rows,
    )
}

fn audit_json(record: &pb::AuditRecord) -> Value {
    json!({
        "sequence": record.sequence.to_string(),
        "time": output::time_json(record.time.as_ref()),
        "credential": record.credential,
        "credential_tenant": record.credential_tenant,
        "rpc": record.rpc,
        "resource": record.resource,
        "tenant": record.tenant,
        "old_revision": record.old_revision.to_string(),
        "new_revision": record.new_revision.to_string(),
    })
}

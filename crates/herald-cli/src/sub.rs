//! `heraldctl sub ...`: subscription commands over the control-plane gRPC API.
//!
//! Flags become request messages here ([`filters_of`] turns `--type`, `--type-prefix` and
//! `--filter` into filters, `--filter` taking `sql:`/`cel:` expressions or the Subscriptions API
//! JSON encoding; [`retry_policy_of`] turns the retry flags into a policy laid over the current
//! one, and [`delivery_settings_of`] the delivery flags into settings laid over the current
//! ones); answers are rendered by `output`. `sub explain` fetches the subscription and evaluates
//! its filters on an event here, with `herald-core`, as the dispatcher does.

use anyhow::{Context as _, bail};

use herald_core::filter::Explanation;
use herald_core::{Event, Filter};
use herald_proto::v1 as pb;

use crate::args::{
    ClientCertificateArgs, ConsentArg, ContentModeArg, CreateArgs, DeliveryArgs, FilterArgs, Limit,
    OnDeadLetterArg, OrderingArg, OutputFormat, RetryArgs, RotateSecretArgs, SchemeArg, SubCommand,
    UpdateArgs,
};
use crate::client::Client;
use crate::output;

#[cfg(test)]
mod tests;

/// Page size used to fetch every subscription for `sub list`.
const LIST_PAGE_SIZE: u32 = 500;

/// Runs one `sub` command and returns what to print.
pub(crate) async fn run(
    client: &mut Client,
    command: SubCommand,
    format: OutputFormat,
) -> anyhow::Result<String> {
    let text = match command {
        SubCommand::Create(args) => {
            let request = create_request(*args)?;
            let created = client.create_subscription(request).await?.into_inner();
            render_one(&created, format)
        }
        SubCommand::List => {
            let subscriptions = list_all(client).await?;
            match format {
                OutputFormat::Table => output::subscriptions_table(&subscriptions),
                OutputFormat::Json => {
                    output::json_text(&output::subscriptions_json(&subscriptions))
                }
            }
        }
        SubCommand::Get { id } => {
            let request = pb::GetSubscriptionRequest { id };
            let subscription = client.get_subscription(request).await?.into_inner();
            render_one(&subscription, format)
        }
        SubCommand::Update(args) => {
            // Flags are laid over the current policy and settings, which the server replaces
            // whole.
            let current = if has_retry(&args.retry) || has_delivery(&args.delivery) {
                let request = pb::GetSubscriptionRequest {
                    id: args.id.clone(),
                };
                Some(client.get_subscription(request).await?.into_inner())
            } else {
                None
            };
            let request = update_request(*args, current)?;
            let updated = client.update_subscription(request).await?.into_inner();
            render_one(&updated, format)
        }
        SubCommand::Delete {
            id,
            expected_revision,
        } => {
            let request = pb::DeleteSubscriptionRequest {
                id: id.clone(),
                expected_revision: expected_revision.unwrap_or(0),
            };
            client.delete_subscription(request).await?;
            match format {
                OutputFormat::Table => format!("deleted {id}"),
                OutputFormat::Json => {
                    output::json_text(&serde_json::json!({ "id": id, "deleted": true }))
                }
            }
        }
        SubCommand::Pause { id } => {
            let request = pb::PauseSubscriptionRequest { id };
            let paused = client.pause_subscription(request).await?.into_inner();
            render_one(&paused, format)
        }
        SubCommand::Resume { id } => {
            let request = pb::ResumeSubscriptionRequest { id };
            let resumed = client.resume_subscription(request).await?.into_inner();
            render_one(&resumed, format)
        }
        SubCommand::RotateSecret(args) => {
            let rotated = client
                .rotate_secret(rotate_request(args))
                .await?
                .into_inner();
            render_one(&rotated, format)
        }
        SubCommand::Test(args) => {
            let request = pb::SendTestEventRequest {
                id: args.id,
                r#type: args.event_type.unwrap_or_default(),
                data: args.data.unwrap_or_default(),
            };
            let sent = client.send_test_event(request).await?.into_inner();
            match format {
                OutputFormat::Table => output::test_send_lines(&sent),
                OutputFormat::Json => output::json_text(&output::test_send_json(&sent)),
            }
        }
        SubCommand::Verify { id } => {
            let request = pb::VerifyEndpointRequest { id };
            let verified = client.verify_endpoint(request).await?.into_inner();
            render_one(&verified, format)
        }
        SubCommand::Explain { id, event } => {
            let event = read_event(&event).await?;
            let request = pb::GetSubscriptionRequest { id };
            let subscription = client.get_subscription(request).await?.into_inner();
            let explanation = explain(&subscription, &event)?;
            match format {
                OutputFormat::Table => {
                    output::explanation_lines(&subscription, &event, &explanation)
                }
                OutputFormat::Json => output::json_text(&output::explanation_json(
                    &subscription,
                    &event,
                    &explanation,
                )),
            }
        }
    };
    Ok(text)
}

/// Reads and validates the event `sub explain` evaluates: a structured-mode CloudEvent in JSON
/// from `path`, or from standard input when it is `-`.
async fn read_event(path: &std::path::Path) -> anyhow::Result<Event> {
    let body = if path == std::path::Path::new("-") {
        let read = tokio::task::spawn_blocking(|| {
            let mut body = Vec::new();
            std::io::Read::read_to_end(&mut std::io::stdin(), &mut body).map(|_| body)
        });
        read.await
            .context("failed to read the event from standard input")?
            .context("failed to read the event from standard input")?
    } else {
        tokio::fs::read(path)
            .await
            .with_context(|| format!("failed to read the event from {}", path.display()))?
    };
    Event::from_structured(bytes::Bytes::from(body))
        .with_context(|| format!("{} is not a valid CloudEvent", path.display()))
}

/// Evaluates a subscription's filters on `event` here, with the dispatcher's own compiler and
/// evaluator (`herald_core::filter`), so the answer is the dispatcher's.
pub(crate) fn explain(
    subscription: &pb::Subscription,
    event: &Event,
) -> anyhow::Result<Explanation> {
    let filters = herald_proto::filters_from_pb(&subscription.filters)
        .context("the subscription's filters cannot be read")?;
    let compiled = herald_core::filter::compile(&filters)
        .context("the subscription's filters do not compile")?;
    Ok(compiled.explain(event))
}

/// Returns the filters the flags describe, all of which must match: one for the `--type`s (an
/// `exact` on `type`, or an `any` of them), one for the `--type-prefix`es likewise, then each
/// `--filter`.
pub(crate) fn filters_of(args: &FilterArgs) -> anyhow::Result<Vec<pb::Filter>> {
    let mut filters = Vec::new();
    if let Some(filter) = one_of(&args.types, |value| Filter::exact("type", value)) {
        filters.push(filter);
    }
    if let Some(filter) = one_of(&args.type_prefixes, |value| Filter::prefix("type", value)) {
        filters.push(filter);
    }
    for text in &args.filters {
        filters.push(parse_filter(text)?);
    }
    Ok(herald_proto::filters_to_pb(&filters))
}

/// Parses one `--filter` value: `sql:<CESQL>`, `cel:<CEL>` or a filter's JSON encoding. The
/// expressions are checked by the server, which names the position of a problem.
fn parse_filter(text: &str) -> anyhow::Result<Filter> {
    if let Some(expression) = text.strip_prefix("sql:") {
        return Ok(Filter::Sql(expression.trim().to_owned()));
    }
    if let Some(expression) = text.strip_prefix("cel:") {
        return Ok(Filter::Cel(expression.trim().to_owned()));
    }
    serde_json::from_str(text).with_context(|| {
        format!(
            "--filter `{text}` is neither `sql:<expression>`, `cel:<expression>` nor a filter in \
             the Subscriptions API JSON encoding"
        )
    })
}

fn one_of(values: &[String], filter_of: impl Fn(&str) -> Filter) -> Option<Filter> {
    match values {
        [] => None,
        [value] => Some(filter_of(value)),
        values => Some(Filter::Any(
            values.iter().map(|value| filter_of(value)).collect(),
        )),
    }
}

fn has_filters(args: &FilterArgs) -> bool {
    !(args.types.is_empty() && args.type_prefixes.is_empty() && args.filters.is_empty())
}

/// Returns the retry policy the flags describe, laid over `current` (unset fields of the result
/// take Herald's defaults on the server); `None` when no retry flag is given.
pub(crate) fn retry_policy_of(
    args: &RetryArgs,
    current: Option<pb::RetryPolicy>,
) -> Option<pb::RetryPolicy> {
    if !has_retry(args) {
        return None;
    }
    let mut policy = current.unwrap_or_default();
    if let Some(max_attempts) = args.max_attempts {
        policy.max_attempts = max_attempts;
    }
    if !args.retry_delays.is_empty() {
        policy.backoff = Some(pb::retry_policy::Backoff::Fixed(pb::FixedBackoff {
            delays: args
                .retry_delays
                .iter()
                .map(|delay| herald_proto::delivery::duration_to_pb(*delay))
                .collect(),
        }));
    }
    if let Some(exponential) = args.retry_exponential {
        policy.backoff = Some(pb::retry_policy::Backoff::Exponential(
            pb::ExponentialBackoff {
                initial: Some(herald_proto::delivery::duration_to_pb(exponential.initial)),
                multiplier: exponential.multiplier,
                max_delay: Some(herald_proto::delivery::duration_to_pb(
                    exponential.max_delay,
                )),
            },
        ));
    }
    if !args.terminal_status.is_empty() {
        policy.terminal_status_codes = args.terminal_status.iter().map(|c| u32::from(*c)).collect();
    }
    if let Some(max_age) = args.max_age {
        policy.max_age = Some(herald_proto::delivery::duration_to_pb(max_age));
    }
    Some(policy)
}

fn has_retry(args: &RetryArgs) -> bool {
    args.max_attempts.is_some()
        || !args.retry_delays.is_empty()
        || args.retry_exponential.is_some()
        || !args.terminal_status.is_empty()
        || args.max_age.is_some()
}

/// Returns the delivery settings the flags describe, laid over `current`; `None` when no
/// delivery flag is given. A new `--rate-limit` without `--burst` bursts as much as its rate;
/// `--burst` alone changes the current limit's burst. `--ordering none` without
/// `--on-dead-letter` resets it to the default, which is the only one an unordered
/// subscription takes.
pub(crate) fn delivery_settings_of(
    args: &DeliveryArgs,
    current: Option<pb::DeliverySettings>,
) -> anyhow::Result<Option<pb::DeliverySettings>> {
    use pb::delivery_settings::{ContentMode, OnDeadLetter, Ordering};
    if !has_delivery(args) {
        return Ok(None);
    }
    let mut settings = current.unwrap_or_default();
    match (args.rate_limit, args.burst) {
        (Some(Limit::At(per_second)), burst) => {
            settings.rate_limit = Some(pb::RateLimit {
                per_second,
                // 0 asks the server for the rate itself.
                burst: burst.unwrap_or(0),
            });
        }
        (Some(Limit::Removed), Some(_)) => bail!("--burst needs a rate limit, not `none`"),
        (Some(Limit::Removed), None) => settings.rate_limit = None,
        (None, Some(burst)) => match &mut settings.rate_limit {
            Some(limit) => limit.burst = burst,
            None => bail!("--burst needs --rate-limit: the subscription has no rate limit"),
        },
        (None, None) => {}
    }
    match args.max_in_flight {
        Some(Limit::At(max_in_flight)) => settings.max_in_flight = Some(max_in_flight),
        Some(Limit::Removed) => settings.max_in_flight = None,
        None => {}
    }
    match args.ordering {
        Some(OrderingArg::None) => {
            settings.ordering = Ordering::None as i32;
            if args.on_dead_letter.is_none() {
                settings.on_dead_letter = OnDeadLetter::Unspecified as i32;
            }
        }
        Some(OrderingArg::Key) => settings.ordering = Ordering::Key as i32,
        None => {}
    }
    match args.on_dead_letter {
        Some(OnDeadLetterArg::Block) => settings.on_dead_letter = OnDeadLetter::Block as i32,
        Some(OnDeadLetterArg::Skip) => settings.on_dead_letter = OnDeadLetter::Skip as i32,
        None => {}
    }
    match args.content_mode {
        Some(ContentModeArg::Structured) => {
            settings.content_mode = ContentMode::Structured as i32;
        }
        Some(ContentModeArg::Binary) => settings.content_mode = ContentMode::Binary as i32,
        None => {}
    }
    if let Some(parts) = args.parts {
        settings.parts = parts;
    }
    Ok(Some(settings))
}

fn has_delivery(args: &DeliveryArgs) -> bool {
    args.rate_limit.is_some()
        || args.burst.is_some()
        || args.max_in_flight.is_some()
        || args.ordering.is_some()
        || args.on_dead_letter.is_some()
        || args.content_mode.is_some()
        || args.parts.is_some()
}

fn create_request(args: CreateArgs) -> anyhow::Result<pb::CreateSubscriptionRequest> {
    Ok(pb::CreateSubscriptionRequest {
        filters: filters_of(&args.filters)?,
        retry_policy: retry_policy_of(&args.retry, None),
        delivery: delivery_settings_of(&args.delivery, None)?,
        sink: args.sink,
        secret: create_secret(args.secret, args.scheme)?,
        description: args.description,
        consent: consent_of(args.consent) as i32,
        tenant: args.tenant.unwrap_or_default(),
        headers: headers_of(&args.headers)?,
        client_certificate: client_certificate_of(&args.client_certificate)?,
    })
}

/// Reads the `--client-cert` and `--client-key` PEM files; Herald checks what they hold.
fn client_certificate_of(
    args: &ClientCertificateArgs,
) -> anyhow::Result<Option<pb::ClientCertificate>> {
    let (Some(certificate), Some(key)) = (&args.client_cert, &args.client_key) else {
        return Ok(None);
    };
    let read = |path: &std::path::Path, flag: &str| {
        // The error names the file, never what it holds: the key is a secret.
        std::fs::read_to_string(path)
            .with_context(|| format!("{flag}: cannot read {} as text", path.display()))
    };
    Ok(Some(pb::ClientCertificate {
        certificate: read(certificate, "--client-cert")?,
        key: read(key, "--client-key")?,
    }))
}

/// Parses `--header 'Name: value'` flags; Herald checks the names and values themselves.
fn headers_of(flags: &[String]) -> anyhow::Result<Vec<pb::CustomHeader>> {
    flags
        .iter()
        .map(|flag| {
            // The flag is never quoted back: its value may be a secret.
            let (name, value) = flag.split_once(':').context(
                "--header must be 'Name: value' (a colon between the name and the value)",
            )?;
            Ok(pb::CustomHeader {
                name: name.trim().to_owned(),
                value: value.trim().to_owned(),
            })
        })
        .collect()
}

/// Returns the secret to create a subscription with: the one given, or for `--scheme v1a` an
/// ed25519 signing key generated here (the server generates v1 secrets itself).
fn create_secret(given: Option<String>, scheme: Option<SchemeArg>) -> anyhow::Result<String> {
    match (given, scheme) {
        (Some(secret), _) => Ok(secret),
        (None, Some(SchemeArg::V1a)) => {
            let key = herald_signing::Key::generate(herald_signing::Scheme::V1a)
                .context("failed to generate an ed25519 signing key")?;
            Ok(key.to_text())
        }
        (None, _) => Ok(String::new()),
    }
}

fn rotate_request(args: RotateSecretArgs) -> pb::RotateSecretRequest {
    pb::RotateSecretRequest {
        overlap: Some(herald_proto::duration_to_pb(args.overlap)),
        secret: args.secret.unwrap_or_default(),
        signature_scheme: scheme_of(args.scheme) as i32,
        expected_revision: args.expected_revision.unwrap_or(0),
        id: args.id,
    }
}

fn scheme_of(scheme: Option<SchemeArg>) -> pb::SignatureScheme {
    match scheme {
        None => pb::SignatureScheme::Unspecified,
        Some(SchemeArg::V1) => pb::SignatureScheme::V1,
        Some(SchemeArg::V1a) => pb::SignatureScheme::V1a,
    }
}

/// Returns the update the flags describe; `current` is the subscription as stored, read when a
/// retry or delivery flag is given.
fn update_request(
    args: UpdateArgs,
    current: Option<pb::Subscription>,
) -> anyhow::Result<pb::UpdateSubscriptionRequest> {
    let replace_filters = args.clear_filters || has_filters(&args.filters);
    let (current_policy, current_delivery) = current
        .map(|subscription| (subscription.retry_policy, subscription.delivery))
        .unwrap_or_default();
    Ok(pb::UpdateSubscriptionRequest {
        filters: filters_of(&args.filters)?,
        retry_policy: retry_policy_of(&args.retry, current_policy),
        delivery: delivery_settings_of(&args.delivery, current_delivery)?,
        id: args.id,
        sink: args.sink.unwrap_or_default(),
        replace_filters,
        description: args.description,
        expected_revision: args.expected_revision.unwrap_or(0),
        consent: consent_of(args.consent) as i32,
        set_headers: headers_of(&args.headers)?,
        remove_headers: args.remove_headers,
        set_client_certificate: client_certificate_of(&args.client_certificate)?,
        remove_client_certificate: args.remove_client_cert,
    })
}

/// Returns the consent mode a `--consent` flag asks for; unspecified when it is absent.
fn consent_of(consent: Option<ConsentArg>) -> pb::ConsentMode {
    match consent {
        None => pb::ConsentMode::Unspecified,
        Some(ConsentArg::Required) => pb::ConsentMode::Required,
        Some(ConsentArg::Optional) => pb::ConsentMode::Optional,
        Some(ConsentArg::Off) => pb::ConsentMode::Off,
    }
}

async fn list_all(client: &mut Client) -> anyhow::Result<Vec<pb::Subscription>> {
    let mut subscriptions = Vec::new();
    let mut page_token = String::new();
    loop {
        let request = pb::ListSubscriptionsRequest {
            page_size: LIST_PAGE_SIZE,
            page_token,
            tenant: String::new(),
        };
        let page = client.list_subscriptions(request).await?.into_inner();
        subscriptions.extend(page.subscriptions);
        if page.next_page_token.is_empty() {
            return Ok(subscriptions);
        }
        page_token = page.next_page_token;
    }
}

fn render_one(subscription: &pb::Subscription, format: OutputFormat) -> String {
    match format {
        OutputFormat::Table => output::subscription_lines(subscription),
        OutputFormat::Json => output::json_text(&output::subscription_json(subscription)),
    }
}

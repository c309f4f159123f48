//! The Subscriptions API: create, read, list, update and delete, and what each refuses;
//! retry policies and delivery settings travel with the subscription.

use herald_core::network::NetworkPolicy;
use herald_core::subscription::{MAX_IN_FLIGHT, MAX_RATE};
use herald_proto::v1 as pb;
use herald_proto::v1::delivery_settings::{ContentMode, OnDeadLetter, Ordering};

use crate::support::{
    Control, Options, PUBLIC_SINK, check_invalid_argument, create_request, filter,
};

#[tokio::test]
async fn create_returns_id_and_secret_and_get_omits_the_secret() {
    let control = Control::start(Options::default()).await;
    let created = control
        .create(pb::CreateSubscriptionRequest {
            sink: PUBLIC_SINK.to_owned(),
            filters: vec![filter(
                r#"{"exact": {"type": "com.example.order.created"}}"#,
            )],
            secret: String::new(),
            description: "orders".to_owned(),
            retry_policy: None,
            delivery: None,
            consent: pb::ConsentMode::Unspecified as i32,
            tenant: String::new(),
            headers: Vec::new(),
            client_certificate: None,
        })
        .await;

    assert!(created.id.starts_with("sub_"), "{}", created.id);
    assert!(herald_signing::Secret::parse(&created.secret).is_ok());
    assert!(created.revision > 0);
    assert_eq!(created.protocol, "HTTP");
    assert!(created.create_time.is_some());
    assert_eq!(created.create_time, created.update_time);

    let fetched = control
        .client()
        .get_subscription(pb::GetSubscriptionRequest {
            id: created.id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(fetched.secret, "");
    assert_eq!(
        fetched,
        pb::Subscription {
            secret: String::new(),
            // Only GetSubscription reports endpoint health.
            health: Some(pb::EndpointHealth::default()),
            ..created
        }
    );
    assert_eq!(control.requests_total("CreateSubscription", "ok"), 1);
    assert_eq!(control.requests_total("GetSubscription", "ok"), 1);
}

#[tokio::test]
async fn create_keeps_a_given_secret() {
    let control = Control::start(Options::default()).await;
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let created = control
        .create(pb::CreateSubscriptionRequest {
            secret: secret.to_owned(),
            ..create_request(PUBLIC_SINK)
        })
        .await;
    assert_eq!(created.secret, secret);
}

#[tokio::test]
async fn invalid_create_requests_name_the_field_and_store_nothing() {
    let control = Control::start(Options::default()).await;
    let cases = [
        ("sink", create_request("ftp://example.com/")),
        ("sink", create_request("")),
        (
            "filters[1].any[0]",
            pb::CreateSubscriptionRequest {
                filters: vec![
                    filter(r#"{"exact": {"type": "a"}}"#),
                    pb::Filter {
                        dialect: Some(pb::filter::Dialect::Any(pb::FilterList {
                            filters: vec![pb::Filter { dialect: None }],
                        })),
                    },
                ],
                ..create_request(PUBLIC_SINK)
            },
        ),
        (
            "filters[0].exact",
            pb::CreateSubscriptionRequest {
                filters: vec![filter(r#"{"exact": {"Type": "a"}}"#)],
                ..create_request(PUBLIC_SINK)
            },
        ),
        (
            "secret",
            pb::CreateSubscriptionRequest {
                secret: "not-a-secret".to_owned(),
                ..create_request(PUBLIC_SINK)
            },
        ),
        (
            "description",
            pb::CreateSubscriptionRequest {
                description: "x".repeat(1025),
                ..create_request(PUBLIC_SINK)
            },
        ),
    ];
    for (field, request) in cases {
        let status = control
            .client()
            .create_subscription(request)
            .await
            .unwrap_err();
        check_invalid_argument(&status, field);
    }
    assert_eq!(control.stored_ids().await, Vec::<String>::new());
    assert_eq!(
        control.requests_total("CreateSubscription", "invalid_argument"),
        6
    );
}

/// Asserts that `status` refuses the filter at `field` with `description` (position included),
/// in the message and in the `BadRequest` details.
fn check_filter_refused(status: &tonic::Status, field: &str, description: &str) {
    check_invalid_argument(status, field);
    assert_eq!(status.message(), format!("{field}: {description}"));
    let violations = herald_proto::rpc::field_violations(status);
    assert_eq!(violations[0].description, description);
}

#[tokio::test]
async fn filters_that_would_fail_on_every_event_are_refused_with_their_position() {
    // Issue 14: `sql:FOO(type)` was stored and then silently never matched.
    let control = Control::start(Options::default()).await;
    let cases = [
        (
            r#"{"sql": "FOO(type)"}"#,
            "filters[0].sql",
            "at position 0: unknown function FOO",
        ),
        (
            r#"{"any": [{"exact": {"type": "a"}}, {"sql": "type = 'a' AND LEFT(type) = 'a'"}]}"#,
            "filters[0].any[1].sql",
            "at position 15: function LEFT takes 2 arguments, not 1 argument",
        ),
        (
            r#"{"cel": "type == 'a' && type.bar()"}"#,
            "filters[0].cel",
            "at position 20: unknown function `bar`",
        ),
    ];
    for (json, field, description) in cases {
        let status = control
            .client()
            .create_subscription(pb::CreateSubscriptionRequest {
                filters: vec![filter(json)],
                ..create_request(PUBLIC_SINK)
            })
            .await
            .unwrap_err();
        check_filter_refused(&status, field, description);
    }
    let status = control
        .client()
        .create_subscription(pb::CreateSubscriptionRequest {
            filters: vec![
                filter(r#"{"exact": {"type": "a"}}"#),
                filter(r#"{"cel": "type == 'a' && Region == 'eu'"}"#),
            ],
            ..create_request(PUBLIC_SINK)
        })
        .await
        .unwrap_err();
    check_invalid_argument(&status, "filters[1].cel");
    assert!(
        status
            .message()
            .starts_with("filters[1].cel: at position 15: `Region` is never bound"),
        "{}",
        status.message()
    );
    assert_eq!(control.stored_ids().await, Vec::<String>::new());

    // An update is checked the same way and changes nothing.
    let created = control.create(create_request(PUBLIC_SINK)).await;
    let status = control
        .client()
        .update_subscription(pb::UpdateSubscriptionRequest {
            id: created.id.clone(),
            filters: vec![filter(r#"{"sql": "FOO(type)"}"#)],
            replace_filters: true,
            ..Default::default()
        })
        .await
        .unwrap_err();
    check_filter_refused(
        &status,
        "filters[0].sql",
        "at position 0: unknown function FOO",
    );
    let stored = control.store.list().await.unwrap();
    assert_eq!(stored[0].revision, created.revision);
}

#[tokio::test]
async fn malformed_ids_are_invalid_arguments_naming_id() {
    let control = Control::start(Options::default()).await;
    let mut client = control.client();
    let status = client
        .get_subscription(pb::GetSubscriptionRequest {
            id: "sub_nope".to_owned(),
        })
        .await
        .unwrap_err();
    check_invalid_argument(&status, "id");
    let status = client
        .update_subscription(pb::UpdateSubscriptionRequest {
            id: String::new(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    check_invalid_argument(&status, "id");
    let status = client
        .delete_subscription(pb::DeleteSubscriptionRequest {
            id: "42".to_owned(),
            expected_revision: 0,
        })
        .await
        .unwrap_err();
    check_invalid_argument(&status, "id");
}

#[tokio::test]
async fn private_network_sink_is_refused_under_public_only_policy() {
    let control = Control::start(Options::default()).await;
    for sink in [
        "http://10.1.2.3/hook",
        "http://127.0.0.1:9000/",
        "http://localhost:9000/",
        "http://169.254.169.254/latest",
        // IPv6 forms that embed a forbidden IPv4 address (issue 10, defect 4).
        "http://[::127.0.0.1]:9000/",
        "http://[::ffff:0:127.0.0.1]/",
        "http://[64:ff9b::169.254.169.254]/latest",
        "http://[2002:a00:1::1]/",
        "http://[2001:0:4136:e378:8000:63bf:80ff:fffe]/",
    ] {
        let status = control
            .client()
            .create_subscription(create_request(sink))
            .await
            .unwrap_err();
        check_invalid_argument(&status, "sink");
    }
    assert_eq!(control.stored_ids().await, Vec::<String>::new());
}

#[tokio::test]
async fn private_network_sink_is_allowed_when_the_policy_allows_it() {
    let control = Control::start(Options {
        network: NetworkPolicy::new(true, true),
        ..Options::default()
    })
    .await;
    for sink in ["http://10.1.2.3/hook", "http://127.0.0.1:9000/"] {
        let created = control.create(create_request(sink)).await;
        assert_eq!(created.sink, sink);
    }
}

#[tokio::test]
async fn update_replaces_only_the_given_fields() {
    let control = Control::start(Options::default()).await;
    let created = control
        .create(pb::CreateSubscriptionRequest {
            filters: vec![filter(r#"{"exact": {"type": "a"}}"#)],
            description: "before".to_owned(),
            ..create_request(PUBLIC_SINK)
        })
        .await;
    let mut client = control.client();

    let described = client
        .update_subscription(pb::UpdateSubscriptionRequest {
            id: created.id.clone(),
            description: Some("after".to_owned()),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(described.description, "after");
    assert_eq!(described.sink, created.sink);
    assert_eq!(described.filters, created.filters);
    assert_eq!(described.secret, "");
    assert!(described.revision > created.revision);
    assert_eq!(described.create_time, created.create_time);

    let moved = client
        .update_subscription(pb::UpdateSubscriptionRequest {
            id: created.id.clone(),
            sink: "https://other.example.com/".to_owned(),
            replace_filters: true,
            expected_revision: described.revision,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(moved.sink, "https://other.example.com/");
    assert_eq!(moved.filters, Vec::new());
    assert_eq!(moved.description, "after");

    let fetched = client
        .get_subscription(pb::GetSubscriptionRequest {
            id: created.id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        fetched,
        pb::Subscription {
            health: Some(pb::EndpointHealth::default()),
            ..moved
        }
    );
}

#[tokio::test]
async fn update_with_stale_expected_revision_is_aborted() {
    let control = Control::start(Options::default()).await;
    let created = control.create(create_request(PUBLIC_SINK)).await;
    let mut client = control.client();
    client
        .update_subscription(pb::UpdateSubscriptionRequest {
            id: created.id.clone(),
            description: Some("first".to_owned()),
            expected_revision: created.revision,
            ..Default::default()
        })
        .await
        .unwrap();

    let status = client
        .update_subscription(pb::UpdateSubscriptionRequest {
            id: created.id.clone(),
            description: Some("second".to_owned()),
            expected_revision: created.revision,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::Aborted, "{status:?}");
    assert!(status.message().contains(&created.id), "{status:?}");
}

#[tokio::test]
async fn invalid_update_changes_nothing() {
    let control = Control::start(Options::default()).await;
    let created = control.create(create_request(PUBLIC_SINK)).await;
    let mut client = control.client();
    let status = client
        .update_subscription(pb::UpdateSubscriptionRequest {
            id: created.id.clone(),
            sink: "http://192.168.1.1/".to_owned(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    check_invalid_argument(&status, "sink");
    let status = client
        .update_subscription(pb::UpdateSubscriptionRequest {
            id: created.id.clone(),
            filters: vec![pb::Filter { dialect: None }],
            replace_filters: true,
            ..Default::default()
        })
        .await
        .unwrap_err();
    check_invalid_argument(&status, "filters[0]");

    let stored = control.store.list().await.unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].revision, created.revision);
}

#[tokio::test]
async fn update_of_unknown_subscription_is_not_found() {
    let control = Control::start(Options::default()).await;
    let id = "sub_01ARZ3NDEKTSV4RRFFQ69G5FAV";
    let status = control
        .client()
        .update_subscription(pb::UpdateSubscriptionRequest {
            id: id.to_owned(),
            description: Some("x".to_owned()),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::NotFound, "{status:?}");
    assert!(status.message().contains(id), "{status:?}");
}

#[tokio::test]
async fn deleted_subscription_is_not_found() {
    let control = Control::start(Options::default()).await;
    let created = control.create(create_request(PUBLIC_SINK)).await;
    let mut client = control.client();
    client
        .delete_subscription(pb::DeleteSubscriptionRequest {
            id: created.id.clone(),
            expected_revision: 0,
        })
        .await
        .unwrap();

    let status = client
        .get_subscription(pb::GetSubscriptionRequest {
            id: created.id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::NotFound, "{status:?}");
    assert!(status.message().contains(&created.id), "{status:?}");

    let status = client
        .delete_subscription(pb::DeleteSubscriptionRequest {
            id: created.id.clone(),
            expected_revision: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::NotFound, "{status:?}");
    assert_eq!(control.stored_ids().await, Vec::<String>::new());
}

#[tokio::test]
async fn delete_with_stale_expected_revision_is_aborted_and_keeps_the_subscription() {
    let control = Control::start(Options::default()).await;
    let created = control.create(create_request(PUBLIC_SINK)).await;
    let mut client = control.client();
    client
        .update_subscription(pb::UpdateSubscriptionRequest {
            id: created.id.clone(),
            description: Some("changed".to_owned()),
            ..Default::default()
        })
        .await
        .unwrap();

    let status = client
        .delete_subscription(pb::DeleteSubscriptionRequest {
            id: created.id.clone(),
            expected_revision: created.revision,
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::Aborted, "{status:?}");
    assert_eq!(control.stored_ids().await, vec![created.id.clone()]);
}

#[tokio::test]
async fn list_pages_through_subscriptions_in_id_order() {
    let control = Control::start(Options::default()).await;
    let mut created_ids = Vec::new();
    for _ in 0..5 {
        created_ids.push(control.create(create_request(PUBLIC_SINK)).await.id);
    }
    created_ids.sort();
    let mut client = control.client();

    let mut listed_ids = Vec::new();
    let mut page_token = String::new();
    let mut num_pages = 0;
    loop {
        let page = client
            .list_subscriptions(pb::ListSubscriptionsRequest {
                page_size: 2,
                page_token: page_token.clone(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        num_pages += 1;
        assert!(page.subscriptions.len() <= 2);
        assert!(page.subscriptions.iter().all(|s| s.secret.is_empty()));
        listed_ids.extend(page.subscriptions.into_iter().map(|s| s.id));
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    assert_eq!(num_pages, 3);
    assert_eq!(listed_ids, created_ids);

    let everything = client
        .list_subscriptions(pb::ListSubscriptionsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(everything.subscriptions.len(), 5);
    assert_eq!(everything.next_page_token, "");
}

#[tokio::test]
async fn list_with_a_foreign_page_token_is_an_invalid_argument() {
    let control = Control::start(Options::default()).await;
    let status = control
        .client()
        .list_subscriptions(pb::ListSubscriptionsRequest {
            page_size: 0,
            page_token: "garbage".to_owned(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    check_invalid_argument(&status, "page_token");
}

fn delivery(
    rate_limit: Option<(u32, u32)>,
    max_in_flight: Option<u32>,
    ordering: Ordering,
    on_dead_letter: OnDeadLetter,
) -> pb::DeliverySettings {
    pb::DeliverySettings {
        rate_limit: rate_limit.map(|(per_second, burst)| pb::RateLimit { per_second, burst }),
        max_in_flight,
        ordering: ordering as i32,
        on_dead_letter: on_dead_letter as i32,
        content_mode: ContentMode::Structured as i32,
        parts: 1,
    }
}

async fn get(control: &Control, id: &str) -> pb::Subscription {
    control
        .client()
        .get_subscription(pb::GetSubscriptionRequest { id: id.to_owned() })
        .await
        .unwrap()
        .into_inner()
}

#[tokio::test]
async fn create_with_delivery_settings_round_trips_through_get() {
    let control = Control::start(Options::default()).await;
    let created = control
        .create(pb::CreateSubscriptionRequest {
            // A burst of 0 is the rate itself.
            delivery: Some(delivery(
                Some((50, 0)),
                Some(8),
                Ordering::Key,
                OnDeadLetter::Skip,
            )),
            ..create_request(PUBLIC_SINK)
        })
        .await;
    let expected = delivery(Some((50, 50)), Some(8), Ordering::Key, OnDeadLetter::Skip);
    assert_eq!(created.delivery, Some(expected));
    assert_eq!(get(&control, &created.id).await.delivery, Some(expected));

    let stored = control.store.list().await.unwrap();
    let settings = stored[0].value.delivery;
    assert_eq!(settings.max_in_flight, Some(8));
    assert_eq!(settings.ordering, herald_core::subscription::Ordering::Key);
}

#[tokio::test]
async fn create_without_delivery_settings_answers_the_defaults() {
    let control = Control::start(Options::default()).await;
    let created = control.create(create_request(PUBLIC_SINK)).await;
    let defaults = delivery(None, None, Ordering::None, OnDeadLetter::Block);
    assert_eq!(created.delivery, Some(defaults));
    assert_eq!(get(&control, &created.id).await.delivery, Some(defaults));
}

#[tokio::test]
async fn out_of_bounds_delivery_settings_are_refused_naming_the_field() {
    let control = Control::start(Options::default()).await;
    let unordered = |rate_limit, max_in_flight| {
        delivery(
            rate_limit,
            max_in_flight,
            Ordering::None,
            OnDeadLetter::Block,
        )
    };
    let cases = [
        (
            "delivery.rate_limit.per_second",
            unordered(Some((0, 0)), None),
        ),
        (
            "delivery.rate_limit.per_second",
            unordered(Some((MAX_RATE + 1, 1)), None),
        ),
        (
            "delivery.rate_limit.burst",
            unordered(Some((10, MAX_RATE + 1)), None),
        ),
        ("delivery.max_in_flight", unordered(None, Some(0))),
        (
            "delivery.max_in_flight",
            unordered(None, Some(MAX_IN_FLIGHT + 1)),
        ),
        (
            "delivery.on_dead_letter",
            delivery(None, None, Ordering::None, OnDeadLetter::Skip),
        ),
        (
            "delivery.ordering",
            pb::DeliverySettings {
                ordering: 7,
                ..unordered(None, None)
            },
        ),
        (
            "delivery.on_dead_letter",
            pb::DeliverySettings {
                on_dead_letter: 9,
                ..unordered(None, None)
            },
        ),
        (
            "delivery.content_mode",
            pb::DeliverySettings {
                content_mode: 3,
                ..unordered(None, None)
            },
        ),
    ];
    let num_cases = cases.len() as u64;
    let existing = control.create(create_request(PUBLIC_SINK)).await;
    for (field, settings) in cases {
        let status = control
            .client()
            .create_subscription(pb::CreateSubscriptionRequest {
                delivery: Some(settings),
                ..create_request(PUBLIC_SINK)
            })
            .await
            .unwrap_err();
        check_invalid_argument(&status, field);
        let status = control
            .client()
            .update_subscription(pb::UpdateSubscriptionRequest {
                id: existing.id.clone(),
                delivery: Some(settings),
                ..Default::default()
            })
            .await
            .unwrap_err();
        check_invalid_argument(&status, field);
    }
    let stored = control.store.list().await.unwrap();
    assert_eq!(stored.len(), 1, "nothing invalid is stored");
    assert_eq!(stored[0].revision, existing.revision);
    assert_eq!(
        control.requests_total("CreateSubscription", "invalid_argument"),
        num_cases
    );
    assert_eq!(
        control.requests_total("UpdateSubscription", "invalid_argument"),
        num_cases
    );
}

#[tokio::test]
async fn update_replaces_delivery_settings_only_when_set() {
    let control = Control::start(Options::default()).await;
    let ordered = delivery(Some((20, 5)), Some(4), Ordering::Key, OnDeadLetter::Skip);
    let created = control
        .create(pb::CreateSubscriptionRequest {
            delivery: Some(ordered),
            ..create_request(PUBLIC_SINK)
        })
        .await;
    let mut client = control.client();

    let described = client
        .update_subscription(pb::UpdateSubscriptionRequest {
            id: created.id.clone(),
            description: Some("renamed".to_owned()),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(described.delivery, Some(ordered));

    // Settings replace the current ones whole: what the request leaves unset is the default.
    let limited = client
        .update_subscription(pb::UpdateSubscriptionRequest {
            id: created.id.clone(),
            delivery: Some(pb::DeliverySettings {
                max_in_flight: Some(2),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let expected = delivery(None, Some(2), Ordering::None, OnDeadLetter::Block);
    assert_eq!(limited.delivery, Some(expected));
    assert_eq!(limited.description, "renamed");
    assert_eq!(get(&control, &created.id).await.delivery, Some(expected));
}

#[tokio::test]
async fn binary_content_mode_is_stored_kept_by_updates_and_replaced_with_the_settings() {
    let control = Control::start(Options::default()).await;
    let binary = pb::DeliverySettings {
        content_mode: ContentMode::Binary as i32,
        ..delivery(None, None, Ordering::None, OnDeadLetter::Block)
    };
    let created = control
        .create(pb::CreateSubscriptionRequest {
            delivery: Some(binary),
            ..create_request(PUBLIC_SINK)
        })
        .await;
    assert_eq!(created.delivery, Some(binary));
    assert_eq!(get(&control, &created.id).await.delivery, Some(binary));
    let stored = control.store.list().await.unwrap();
    assert_eq!(
        stored[0].value.delivery.content_mode,
        herald_core::subscription::ContentMode::Binary
    );

    let mut client = control.client();
    let described = client
        .update_subscription(pb::UpdateSubscriptionRequest {
            id: created.id.clone(),
            description: Some("renamed".to_owned()),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(described.delivery, Some(binary), "kept without delivery");

    let structured = client
        .update_subscription(pb::UpdateSubscriptionRequest {
            id: created.id.clone(),
            delivery: Some(pb::DeliverySettings::default()),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let defaults = delivery(None, None, Ordering::None, OnDeadLetter::Block);
    assert_eq!(
        structured.delivery,
        Some(defaults),
        "unspecified is structured"
    );
    let stored = control.store.list().await.unwrap();
    assert_eq!(
        stored[0].value.delivery.content_mode,
        herald_core::subscription::ContentMode::Structured
    );
}

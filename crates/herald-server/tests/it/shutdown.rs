//! Closing the NATS connection on shutdown loses no acknowledgement, even when the process
//! ends the moment `close` returns (SIGTERM left one ack pending once in three loaded runs).

use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use herald_nats::{ConsumerSpec, Nats};
use herald_test_support::{NatsServer, eventually, nats_config};

#[test]
fn an_ack_sent_just_before_close_reaches_the_server_although_the_runtime_ends_at_once() {
    let outer = tokio::runtime::Runtime::new().unwrap();
    let server = outer.block_on(NatsServer::start());
    let config = nats_config(&server.url());
    let spec = ConsumerSpec {
        name: "sub_01JA0000000000000000000000".to_owned(),
        filter_subjects: vec!["herald.events.>".to_owned()],
        start_time: time::OffsetDateTime::UNIX_EPOCH,
        ack_wait: Duration::from_secs(60),
        max_ack_pending: 10,
    };
    let setup = outer.block_on(async {
        let nats = Nats::connect(&config).await.unwrap();
        nats.ensure_consumer(&spec).await.unwrap();
        let event = herald_core::Event::from_structured(Bytes::from_static(
            br#"{"specversion":"1.0","id":"last","source":"/t","type":"t.done"}"#,
        ))
        .unwrap();
        nats.publisher().publish(&event).await.unwrap();
        nats
    });

    // A process of its own, in miniature: its runtime, and with it the connection's task, ends
    // as soon as `close` returns, as at the end of `main`.
    let dispatcher_config = config.clone();
    let dispatcher_spec = spec.clone();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let nats = Nats::connect(&dispatcher_config).await.unwrap();
            let consumer = nats.ensure_consumer(&dispatcher_spec).await.unwrap();
            let mut messages = consumer.messages(1, 0).await.unwrap();
            let delivery = messages.next().await.unwrap().unwrap();
            delivery.ack().await.unwrap();
            nats.close(Duration::from_secs(5)).await.unwrap();
        });
        drop(runtime);
    })
    .join()
    .unwrap();

    outer.block_on(async {
        let progress = eventually("the consumer's state", Duration::from_secs(10), || {
            let setup = setup.clone();
            let name = spec.name.clone();
            async move { setup.consumer_progress(&name).await.ok() }
        })
        .await;
        assert_eq!(
            (progress.num_pending, progress.num_ack_pending),
            (0, 0),
            "the ack was lost: {progress:?}"
        );
    });
}

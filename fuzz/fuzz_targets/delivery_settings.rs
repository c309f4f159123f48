//! Retry policies and delivery settings as they arrive: the gRPC messages (protobuf, converted
//! naming the field) and the stored JSON forms, then validation and the retry schedule the
//! dispatcher computes from a policy.
#![no_main]

use std::time::Duration;

use herald_core::DeliverySettings;
use herald_core::retry::RetryPolicy;
use libfuzzer_sys::fuzz_target;
use prost::Message as _;

fn use_policy(policy: &RetryPolicy) {
    let valid = policy.validate().is_ok();
    let _ = policy.max_delay();
    for attempt in [0, 1, 2, 3, 10, 30, 64, 1000, u32::MAX] {
        let _ = policy.base_delay(attempt);
        for unit in [0.0, 0.5, 0.999_999] {
            let delay = policy.delay(attempt, unit);
            if valid {
                assert!(
                    delay <= policy.max_delay().max(Duration::from_secs(1)) * 2,
                    "a valid policy's delay should stay near its maximum"
                );
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(policy) = serde_json::from_slice::<RetryPolicy>(data) {
        use_policy(&policy);
    }
    if let Ok(settings) = serde_json::from_slice::<DeliverySettings>(data) {
        if settings.validate().is_ok() {
            let _ = settings.max_in_flight_or(16);
        }
    }
    if let Ok(message) = herald_proto::v1::RetryPolicy::decode(data) {
        if let Ok(policy) = herald_proto::retry_policy_from_pb(&message) {
            use_policy(&policy);
        }
    }
    if let Ok(message) = herald_proto::v1::DeliverySettings::decode(data) {
        if let Ok(settings) = herald_proto::delivery_settings_from_pb(&message) {
            let _ = settings.validate();
        }
    }
});

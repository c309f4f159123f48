//! Test sends: the one event Herald sends to one subscription when an operator asks
//! (`SendTestEvent`, `heraldctl sub test`), so a customer can debug an endpoint in seconds.
//!
//! A test event is an ordinary CloudEvent marked with the [`EXTENSION`] extension (`true`), so
//! the endpoint can tell it from real traffic; its attempt is recorded with the [`OUTCOME`]
//! outcome. This module builds and recognises it; control builds it, the dispatcher sends it.
//! No I/O: the caller passes the id and the time in.

use bytes::Bytes;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::event::{Event, EventError, ExtensionValue};
use crate::subscription::SubscriptionId;

#[cfg(test)]
mod tests;

/// The extension attribute that marks a test event (`"heraldtest": true`). CloudEvents
/// attribute names are lower-case letters and digits only, so it is not `herald-test`.
pub const EXTENSION: &str = "heraldtest";

/// The outcome label of a test send's attempt record: it is never retried nor dead-lettered,
/// whatever the endpoint answered.
pub const OUTCOME: &str = "test";

/// The type of a test event when the caller names none.
pub const DEFAULT_TYPE: &str = "dev.herald.test";

/// The `source` of every test event.
pub const SOURCE: &str = "/herald/test";

/// Longest `data` a test event may carry, in bytes of JSON text.
pub const MAX_DATA_BYTES: usize = 64 * 1024;

/// Longest `type` a test event may have, in bytes (an event type must fit in a NATS subject).
pub const MAX_TYPE_BYTES: usize = 512;

/// Why a test event cannot be built; `field` names the request field (`type`, `data`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct TestEventError {
    pub field: &'static str,
    pub reason: String,
}

/// What a test event is made of.
#[derive(Debug, Clone)]
pub struct TestEvent<'a> {
    pub subscription_id: &'a SubscriptionId,
    /// Unique per test send, e.g. a ULID; the event id is `test_<unique>`.
    pub unique: &'a str,
    /// The event type; `None` or empty means [`DEFAULT_TYPE`].
    pub event_type: Option<&'a str>,
    /// The data as JSON text; `None` or empty means a small object naming the subscription.
    pub data: Option<&'a str>,
    pub now: OffsetDateTime,
}

impl TestEvent<'_> {
    /// Builds the structured-mode test event, checking the type and the data.
    pub fn build(&self) -> Result<Event, TestEventError> {
        let event_type = match self.event_type {
            None | Some("") => DEFAULT_TYPE,
            Some(given) => given,
        };
        if event_type.len() > MAX_TYPE_BYTES {
            return Err(TestEventError {
                field: "type",
                reason: format!("must be at most {MAX_TYPE_BYTES} bytes"),
            });
        }
        let data: serde_json::Value = match self.data {
            None | Some("") => serde_json::json!({
                "message": "a test event sent by Herald",
                "subscription_id": self.subscription_id.as_str(),
            }),
            Some(text) if text.len() > MAX_DATA_BYTES => {
                return Err(TestEventError {
                    field: "data",
                    reason: format!("must be at most {MAX_DATA_BYTES} bytes of JSON"),
                });
            }
            Some(text) => serde_json::from_str(text).map_err(|err| TestEventError {
                field: "data",
                reason: format!("not valid JSON: {err}"),
            })?,
        };
        let time = self.now.format(&Rfc3339).map_err(|err| TestEventError {
            field: "time",
            reason: err.to_string(),
        })?;
        let json = serde_json::json!({
            "specversion": crate::event::SPEC_VERSION,
            "id": format!("test_{}", self.unique),
            "source": SOURCE,
            "type": event_type,
            "subject": self.subscription_id.as_str(),
            "time": time,
            "datacontenttype": "application/json",
            EXTENSION: true,
            "data": data,
        });
        Event::from_structured(Bytes::from(json.to_string())).map_err(|err| match err {
            EventError::Invalid { attribute, reason } if attribute == "type" => TestEventError {
                field: "type",
                reason,
            },
            other => TestEventError {
                field: "data",
                reason: other.to_string(),
            },
        })
    }
}

/// Returns whether `event` is a test event (carries [`EXTENSION`] set to `true`).
pub fn is_test(event: &Event) -> bool {
    event.attributes().extensions.get(EXTENSION) == Some(&ExtensionValue::Boolean(true))
}

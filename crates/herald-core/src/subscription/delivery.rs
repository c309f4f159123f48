//! A subscription's delivery settings: how fast, how many at once, in which order and in which
//! content mode its events reach the endpoint. The dispatcher's scheduler applies the first
//! three (see ARCHITECTURE.md, "Delivery scheduling across replicas"), its attempt the last.
//!
//! Part of the subscription's storage form: every field has a default, so documents written
//! before the settings existed load as "no rate limit, the dispatcher's concurrency, unordered,
//! structured". The default content mode is not written, so documents stay as they were.

use serde::{Deserialize, Serialize};

use super::SubscriptionError;
use super::part::{PART_COUNTS, Part};

/// Most events per second a rate limit may allow, and the largest burst.
pub const MAX_RATE: u32 = 100_000;

/// Most concurrent requests a subscription may ask for.
pub const MAX_IN_FLIGHT: u32 = 1024;

/// How a subscription's events are scheduled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliverySettings {
    /// At most this many requests per second, with a burst; none when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimit>,
    /// Concurrent requests to the endpoint; the dispatcher's `max_in_flight_per_subscription`
    /// when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_in_flight: Option<u32>,
    #[serde(default)]
    pub ordering: Ordering,
    /// What a dead-lettered event does to its key, on an ordered subscription.
    #[serde(default)]
    pub on_dead_letter: OnDeadLetter,
    /// How each event is laid out in the request.
    #[serde(default, skip_serializing_if = "ContentMode::is_structured")]
    pub content_mode: ContentMode,
    /// How many parts delivery is split into, each owned by one replica (`part.rs`); 1, the
    /// whole subscription, when unset. Fixed at creation.
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub parts: u32,
}

fn one() -> u32 {
    1
}

fn is_one(parts: &u32) -> bool {
    *parts == 1
}

impl Default for DeliverySettings {
    fn default() -> DeliverySettings {
        DeliverySettings {
            rate_limit: None,
            max_in_flight: None,
            ordering: Ordering::default(),
            on_dead_letter: OnDeadLetter::default(),
            content_mode: ContentMode::default(),
            parts: 1,
        }
    }
}

/// A token bucket: `per_second` tokens a second, holding at most `burst`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateLimit {
    pub per_second: u32,
    pub burst: u32,
}

/// Whether events with the same key are delivered one at a time, in stream order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Ordering {
    /// Events are delivered concurrently, in no particular order.
    #[default]
    None,
    /// Events with the same `partitionkey` extension are delivered one at a time in stream
    /// order: the next is sent only once the previous reached a final outcome. Events without
    /// the extension are unordered. Different keys proceed in parallel.
    Key,
}

/// On an ordered subscription, what a dead-lettered event does to the events after it with the
/// same key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnDeadLetter {
    /// The key waits until an operator redrives or purges the dead letter: later events of a
    /// key usually depend on the one that failed (an order's payment after its creation), and
    /// moving on would deliver them as if it had never existed. The default.
    #[default]
    Block,
    /// The key moves on to its next event.
    Skip,
}

/// How an event is laid out in the request (CloudEvents HTTP protocol binding, "Message Modes").
/// Either way the request carries Standard Webhooks headers signing the body as sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContentMode {
    /// The whole event as the body, `application/cloudevents+json`. The default.
    #[default]
    Structured,
    /// The context attributes as `ce-` headers, the data as the body with its
    /// `datacontenttype` as `Content-Type` (`data_base64` decoded to its bytes).
    Binary,
}

impl ContentMode {
    /// Returns true for the default, structured mode.
    pub fn is_structured(&self) -> bool {
        *self == ContentMode::Structured
    }
}

impl DeliverySettings {
    /// Checks the bounds, naming the field at fault under `delivery.`.
    pub fn validate(&self) -> Result<(), SubscriptionError> {
        if let Some(limit) = &self.rate_limit {
            if !(1..=MAX_RATE).contains(&limit.per_second) {
                return Err(SubscriptionError::new(
                    "delivery.rate_limit.per_second",
                    format!("must be between 1 and {MAX_RATE}"),
                ));
            }
            if !(1..=MAX_RATE).contains(&limit.burst) {
                return Err(SubscriptionError::new(
                    "delivery.rate_limit.burst",
                    format!("must be between 1 and {MAX_RATE}"),
                ));
            }
        }
        if let Some(max_in_flight) = self.max_in_flight
            && !(1..=MAX_IN_FLIGHT).contains(&max_in_flight)
        {
            return Err(SubscriptionError::new(
                "delivery.max_in_flight",
                format!("must be between 1 and {MAX_IN_FLIGHT}"),
            ));
        }
        if !PART_COUNTS.contains(&self.parts) {
            return Err(SubscriptionError::new(
                "delivery.parts",
                "must be 1, 2, 4, 8 or 16 (the divisors of the 16 subject partitions)",
            ));
        }
        if self.parts > 1 {
            // Every part gets at least one of each: the limits are divided among them.
            let too_small = |field: &str, value: u32| {
                (value < self.parts).then(|| {
                    SubscriptionError::new(
                        field,
                        format!(
                            "is divided among the {} parts, so it must be at least {}",
                            self.parts, self.parts
                        ),
                    )
                })
            };
            let checks = [
                self.max_in_flight
                    .and_then(|n| too_small("delivery.max_in_flight", n)),
                self.rate_limit
                    .and_then(|l| too_small("delivery.rate_limit.per_second", l.per_second)),
                self.rate_limit
                    .and_then(|l| too_small("delivery.rate_limit.burst", l.burst)),
            ];
            if let Some(err) = checks.into_iter().flatten().next() {
                return Err(err);
            }
        }
        if self.ordering == Ordering::None && self.on_dead_letter != OnDeadLetter::Block {
            return Err(SubscriptionError::new(
                "delivery.on_dead_letter",
                "applies only to ordered subscriptions (ordering: key)",
            ));
        }
        Ok(())
    }

    /// The concurrency to use: the subscription's own, or `default`.
    pub fn max_in_flight_or(&self, default: usize) -> usize {
        self.max_in_flight
            .and_then(|n| usize::try_from(n).ok())
            .unwrap_or(default)
            .max(1)
    }

    /// The concurrency of one part: its share of [`Self::max_in_flight_or`], at least one.
    pub fn max_in_flight_of(&self, part: Part, default: usize) -> usize {
        let total = u32::try_from(self.max_in_flight_or(default)).unwrap_or(u32::MAX);
        usize::try_from(part.share(total)).unwrap_or(1).max(1)
    }

    /// The rate limit of one part: its share of the rate and of the burst, at least one each.
    pub fn rate_limit_of(&self, part: Part) -> Option<RateLimit> {
        self.rate_limit.map(|limit| RateLimit {
            per_second: part.share(limit.per_second).max(1),
            burst: part.share(limit.burst).max(1),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_out_of_bounds_are_refused_naming_the_field() {
        let limit = |per_second, burst| DeliverySettings {
            rate_limit: Some(RateLimit { per_second, burst }),
            ..DeliverySettings::default()
        };
        let cases = [
            (limit(0, 1), "delivery.rate_limit.per_second"),
            (limit(MAX_RATE + 1, 1), "delivery.rate_limit.per_second"),
            (limit(10, 0), "delivery.rate_limit.burst"),
            (
                DeliverySettings {
                    max_in_flight: Some(0),
                    ..DeliverySettings::default()
                },
                "delivery.max_in_flight",
            ),
            (
                DeliverySettings {
                    max_in_flight: Some(MAX_IN_FLIGHT + 1),
                    ..DeliverySettings::default()
                },
                "delivery.max_in_flight",
            ),
            (
                DeliverySettings {
                    on_dead_letter: OnDeadLetter::Skip,
                    ..DeliverySettings::default()
                },
                "delivery.on_dead_letter",
            ),
            (
                DeliverySettings {
                    parts: 3,
                    ..DeliverySettings::default()
                },
                "delivery.parts",
            ),
            (
                DeliverySettings {
                    parts: 32,
                    ..DeliverySettings::default()
                },
                "delivery.parts",
            ),
            (
                DeliverySettings {
                    parts: 4,
                    max_in_flight: Some(3),
                    ..DeliverySettings::default()
                },
                "delivery.max_in_flight",
            ),
            (
                DeliverySettings {
                    parts: 4,
                    ..limit(3, 8)
                },
                "delivery.rate_limit.per_second",
            ),
            (
                DeliverySettings {
                    parts: 4,
                    ..limit(8, 2)
                },
                "delivery.rate_limit.burst",
            ),
        ];
        for (settings, field) in cases {
            assert_eq!(
                settings.validate().unwrap_err().field,
                field,
                "{settings:?}"
            );
        }
        assert_eq!(limit(50, 10).validate(), Ok(()));
        let ordered = DeliverySettings {
            ordering: Ordering::Key,
            on_dead_letter: OnDeadLetter::Skip,
            max_in_flight: Some(8),
            ..DeliverySettings::default()
        };
        assert_eq!(ordered.validate(), Ok(()));
    }

    #[test]
    fn a_split_subscriptions_limits_are_divided_among_its_parts() {
        let settings = DeliverySettings {
            parts: 4,
            max_in_flight: Some(10),
            ..DeliverySettings::default()
        };
        let settings = DeliverySettings {
            rate_limit: Some(RateLimit {
                per_second: 10,
                burst: 5,
            }),
            ..settings
        };
        assert_eq!(settings.validate(), Ok(()));
        let parts: Vec<Part> = Part::all(4).collect();
        let in_flight: Vec<usize> = parts
            .iter()
            .map(|part| settings.max_in_flight_of(*part, 256))
            .collect();
        assert_eq!(in_flight, [3, 3, 2, 2]);
        let rates: Vec<(u32, u32)> = parts
            .iter()
            .filter_map(|part| settings.rate_limit_of(*part))
            .map(|limit| (limit.per_second, limit.burst))
            .collect();
        assert_eq!(rates, [(3, 2), (3, 1), (2, 1), (2, 1)]);
        // The dispatcher's default is divided too.
        let default = DeliverySettings {
            parts: 16,
            ..DeliverySettings::default()
        };
        assert_eq!(default.max_in_flight_of(Part::new(0, 16).unwrap(), 256), 16);
        assert_eq!(
            DeliverySettings::default().max_in_flight_of(Part::WHOLE, 256),
            256
        );
    }

    #[test]
    fn documents_without_settings_load_as_unlimited_unordered() {
        let settings: DeliverySettings = serde_json::from_str("{}").unwrap();
        assert_eq!(settings, DeliverySettings::default());
        assert_eq!(settings.max_in_flight_or(256), 256);
        let stored = r#"{"rate_limit":{"per_second":5,"burst":2},"max_in_flight":3,"ordering":"key","on_dead_letter":"skip"}"#;
        let settings: DeliverySettings = serde_json::from_str(stored).unwrap();
        assert_eq!(serde_json::to_string(&settings).unwrap(), stored);
        assert_eq!(settings.max_in_flight_or(256), 3);
        assert_eq!(settings.content_mode, ContentMode::Structured);
        assert_eq!(settings.parts, 1);
        let split: DeliverySettings = serde_json::from_str(r#"{"parts":4}"#).unwrap();
        assert_eq!(split.parts, 4);
        assert!(
            serde_json::to_string(&split)
                .unwrap()
                .contains(r#""parts":4"#)
        );
    }

    #[test]
    fn binary_content_mode_is_stored_and_structured_is_not_written() {
        let binary = DeliverySettings {
            content_mode: ContentMode::Binary,
            ..DeliverySettings::default()
        };
        let stored = serde_json::to_string(&binary).unwrap();
        assert_eq!(
            stored,
            r#"{"ordering":"none","on_dead_letter":"block","content_mode":"binary"}"#
        );
        assert_eq!(
            serde_json::from_str::<DeliverySettings>(&stored).unwrap(),
            binary
        );
        assert_eq!(binary.validate(), Ok(()));
        let structured =
            r#"{"ordering":"none","on_dead_letter":"block","content_mode":"structured"}"#;
        let settings: DeliverySettings = serde_json::from_str(structured).unwrap();
        assert_eq!(settings, DeliverySettings::default());
        assert_eq!(
            serde_json::to_string(&settings).unwrap(),
            r#"{"ordering":"none","on_dead_letter":"block"}"#
        );
    }
}

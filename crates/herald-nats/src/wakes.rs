//! Wake-ups: the events stream tells who listens which subject each stored event went to.
//!
//! An idle subscription would otherwise hold a pull open on its consumer for as long as it is
//! idle: a waiting pull request, its heartbeats and a subscriber channel in the client, a few
//! tens of KiB and a timer each, which at 10,000 mostly idle subscriptions is most of what a
//! dispatcher spends (benchmark W6). Instead, the events stream republishes the headers of
//! every stored message (`RePublish`, `headers_only`) on `herald.wake.<subject it was stored
//! on>`, and a dispatcher follows `herald.wake.>` once: a subscription with nothing to do
//! *parks* (drops its pull) and is woken when a stored event's subject matches its filter
//! subjects (`herald_core::interest`).
//!
//! The server republishes after it stored the message, so a wake-up never comes before the
//! event can be pulled. Republishing is core NATS, at most once: a dispatcher whose connection
//! dropped, or that read too slowly, misses wake-ups. Each wake-up carries the stream sequence
//! of its message and of the one stored before it (`Nats-Sequence`, `Nats-Last-Sequence`), so a
//! follower sees every gap in what it was told ([`Wake::follows`]) and can wake everything
//! parked rather than miss an event.

use futures::{Stream, StreamExt as _};

use crate::{Error, Result};

/// Subject prefix wake-ups are republished under: the rest is the subject the event was
/// stored on.
pub const WAKE_PREFIX: &str = "herald.wake.";

/// The events stream's republish rule (headers only, every subject).
pub(crate) fn republish() -> async_nats::jetstream::stream::Republish {
    async_nats::jetstream::stream::Republish {
        source: ">".to_owned(),
        destination: format!("{WAKE_PREFIX}>"),
        headers_only: true,
    }
}

/// Whether a stream's republish rule is the one wake-ups need.
pub(crate) fn republishes_wakes(
    republish: Option<&async_nats::jetstream::stream::Republish>,
) -> bool {
    republish.is_some_and(|rule| {
        let wanted = self::republish();
        rule.destination == wanted.destination && (rule.source == ">" || rule.source.is_empty())
    })
}

/// One stored event, as its wake-up tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wake {
    /// The subject the event was stored on.
    pub subject: String,
    /// Its sequence in the events stream.
    pub sequence: u64,
    /// The sequence of the message stored before it (0 for the first).
    pub last_sequence: u64,
}

impl Wake {
    /// Whether this wake-up comes right after one of `sequence`: no wake-up between them was
    /// missed.
    pub fn follows(&self, sequence: u64) -> bool {
        self.last_sequence == sequence
    }
}

/// The wake-ups of every stored event, as they arrive; wake-ups that do not parse (a
/// republish rule someone changed) are skipped.
pub type WakeStream = std::pin::Pin<Box<dyn Stream<Item = Wake> + Send>>;

/// Follows every wake-up. Returns once the server has the subscription, so every event stored
/// after this returns is told.
pub(crate) async fn follow(client: &async_nats::Client) -> Result<WakeStream> {
    let subscriber = client
        .subscribe(format!("{WAKE_PREFIX}>"))
        .await
        .map_err(Error::unavailable("failed to follow wake-ups"))?;
    client
        .flush()
        .await
        .map_err(Error::unavailable("failed to follow wake-ups"))?;
    let wakes = subscriber.filter_map(|message| async move { parse(&message) });
    Ok(Box::pin(wakes))
}

fn parse(message: &async_nats::Message) -> Option<Wake> {
    let subject = message.subject.as_str().strip_prefix(WAKE_PREFIX)?;
    let headers = message.headers.as_ref()?;
    let number = |name: &str| headers.get(name)?.as_str().parse::<u64>().ok();
    Some(Wake {
        subject: subject.to_owned(),
        sequence: number("Nats-Sequence")?,
        last_sequence: number("Nats-Last-Sequence").unwrap_or(0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wake_up_follows_exactly_the_one_stored_before_it() {
        let wake = Wake {
            subject: "herald.events.1.order".to_owned(),
            sequence: 8,
            last_sequence: 7,
        };
        assert!(wake.follows(7));
        assert!(!wake.follows(6));
        assert!(!wake.follows(8));
    }

    #[test]
    fn only_a_rule_republishing_every_subject_to_wake_ups_counts() {
        assert!(republishes_wakes(Some(&republish())));
        assert!(!republishes_wakes(None));
        let narrow = async_nats::jetstream::stream::Republish {
            source: "herald.events.>".to_owned(),
            ..republish()
        };
        assert!(!republishes_wakes(Some(&narrow)));
    }
}

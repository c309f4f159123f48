//! Parts: a subscription's delivery split across replicas (`delivery.parts`).
//!
//! Events are stored on one of [`subject::PARTITIONS`] subject partitions, chosen by their
//! ordering key (or, without one, their message id). A subscription with `parts: n` (1, 2, 4,
//! 8 or 16; 1 by default) is delivered as `n` independent parts: part `i` takes the events of
//! the subject partitions `p` with `p % n == i`, through a consumer of its own, and each part
//! is owned by one replica at a time, so different replicas deliver different parts at once.
//! Every key lives in exactly one partition, so a key's order never spans two parts.
//!
//! The subscription's limits are divided among its parts ([`Part::share`]): part `i` may run
//! `max_in_flight / n` attempts (the remainder going to the first parts) and gets that share of
//! the rate and the burst, so the endpoint never sees more than the subscription's limits
//! whichever replicas own the parts. A hot key's part can therefore use only its share.
//!
//! A [`WorkId`] names what one replica owns and one worker delivers: a whole subscription
//! (`sub_<ULID>`), or one part of it (`sub_<ULID>.p2of4`). The whole subscription keeps the
//! names it always had, so subscriptions that do not split keep their consumers, claims and
//! retry subjects across an upgrade.
//!
//! The number of parts is fixed when the subscription is created: changing it would move keys
//! between parts while their events wait in another part's window, out of order.

use std::fmt;

use crate::subject;

use super::{SubscriptionError, SubscriptionId};

/// Numbers of parts a subscription may be split into: the divisors of
/// [`subject::PARTITIONS`].
pub const PART_COUNTS: [u32; 5] = [1, 2, 4, 8, 16];

/// One part of a subscription's delivery: `index` of `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Part {
    index: u32,
    count: u32,
}

impl Part {
    /// The whole subscription: one part holding every partition.
    pub const WHOLE: Part = Part { index: 0, count: 1 };

    /// Returns part `index` of `count`, if `count` is one of [`PART_COUNTS`] and `index` is
    /// below it.
    pub fn new(index: u32, count: u32) -> Option<Part> {
        (PART_COUNTS.contains(&count) && index < count).then_some(Part { index, count })
    }

    /// Every part of a subscription split `count` ways (the whole one for an invalid count).
    pub fn all(count: u32) -> impl Iterator<Item = Part> {
        let count = if PART_COUNTS.contains(&count) {
            count
        } else {
            1
        };
        (0..count).map(move |index| Part { index, count })
    }

    pub fn index(&self) -> u32 {
        self.index
    }

    pub fn count(&self) -> u32 {
        self.count
    }

    pub fn is_whole(&self) -> bool {
        self.count == 1
    }

    /// Whether this part delivers the events of subject partition `partition`.
    pub fn holds(&self, partition: u32) -> bool {
        partition % self.count == self.index
    }

    /// The subject partitions this part delivers, in ascending order.
    pub fn partitions(&self) -> impl Iterator<Item = u32> + '_ {
        (0..subject::PARTITIONS).filter(|partition| self.holds(*partition))
    }

    /// This part's share of a limit `total` divided among all parts: `total / count`, plus one
    /// for the first `total % count` parts, so the shares add up to `total`. Zero when `total`
    /// is below the number of parts and this part gets none (validation refuses such limits).
    pub fn share(&self, total: u32) -> u32 {
        total / self.count + u32::from(self.index < total % self.count)
    }

    /// The filter subjects of this part: each of the subscription's `<root>.*.…` subjects once
    /// per partition of the part, and `<root>.>` as `<root>.<partition>.>`, under whichever root
    /// the subject has (`herald.events` or a tenant's `herald.t.<tenant>`,
    /// [`subject::split_root`]). Any other subject is kept as it is.
    pub fn filter_subjects(&self, subjects: &[String]) -> Vec<String> {
        if self.is_whole() {
            return subjects.to_vec();
        }
        let mut narrowed = Vec::new();
        for subject in subjects {
            let split = subject::split_root(subject).and_then(|(root, rest)| {
                let rest = if rest == ">" {
                    Some(">")
                } else {
                    rest.strip_prefix("*.")
                };
                rest.map(|rest| (root, rest))
            });
            match split {
                Some((root, rest)) => {
                    for partition in self.partitions() {
                        narrowed.push(format!("{root}.{partition}.{rest}"));
                    }
                }
                None => narrowed.push(subject.clone()),
            }
        }
        narrowed
    }

    fn token(&self) -> String {
        format!("p{}of{}", self.index, self.count)
    }

    /// Parses a part's subject token, `p<index>of<count>`.
    pub fn parse_token(token: &str) -> Option<Part> {
        let (index, count) = token.strip_prefix('p')?.split_once("of")?;
        let (index, count) = (index.parse().ok()?, count.parse().ok()?);
        let part = Part::new(index, count)?;
        // One spelling only: `p02of4` is not a part.
        (part.token() == token).then_some(part)
    }
}

/// What one replica owns and one worker delivers: a subscription, or one part of it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WorkId {
    subscription: SubscriptionId,
    part: Part,
}

impl WorkId {
    pub fn new(subscription: SubscriptionId, part: Part) -> WorkId {
        WorkId { subscription, part }
    }

    /// The whole subscription.
    pub fn whole(subscription: SubscriptionId) -> WorkId {
        WorkId::new(subscription, Part::WHOLE)
    }

    pub fn subscription(&self) -> &SubscriptionId {
        &self.subscription
    }

    pub fn part(&self) -> Part {
        self.part
    }

    /// Its name as subject tokens and KV key: `sub_<ULID>` for a whole subscription,
    /// `sub_<ULID>.p<index>of<count>` for a part (two tokens).
    pub fn name(&self) -> String {
        self.to_string()
    }

    /// Its consumers' name (JetStream names take no dots): `sub_<ULID>`, or
    /// `sub_<ULID>-p<index>of<count>`.
    pub fn consumer_name(&self) -> String {
        if self.part.is_whole() {
            self.subscription.as_str().to_owned()
        } else {
            format!("{}-{}", self.subscription, self.part.token())
        }
    }

    /// Parses what [`WorkId::name`] writes.
    pub fn parse(name: &str) -> Result<WorkId, SubscriptionError> {
        WorkId::parse_with(name, '.')
    }

    /// Parses what [`WorkId::consumer_name`] writes.
    pub fn parse_consumer_name(name: &str) -> Result<WorkId, SubscriptionError> {
        WorkId::parse_with(name, '-')
    }

    fn parse_with(name: &str, separator: char) -> Result<WorkId, SubscriptionError> {
        let Some((subscription, token)) = name.split_once(separator) else {
            return Ok(WorkId::whole(SubscriptionId::parse(name)?));
        };
        let subscription = SubscriptionId::parse(subscription)?;
        let part = Part::parse_token(token).ok_or_else(|| {
            SubscriptionError::new(
                "id",
                format!("`{name}` names no part of a subscription (p<index>of<count>)"),
            )
        })?;
        Ok(WorkId::new(subscription, part))
    }
}

impl fmt::Display for WorkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.part.is_whole() {
            write!(f, "{}", self.subscription)
        } else {
            write!(f, "{}.{}", self.subscription, self.part.token())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id() -> SubscriptionId {
        SubscriptionId::parse("sub_01JA0000000000000000000000").unwrap()
    }

    #[test]
    fn the_parts_of_a_split_take_every_partition_exactly_once() {
        for count in PART_COUNTS {
            let mut seen = vec![0; subject::PARTITIONS as usize];
            for part in Part::all(count) {
                for partition in part.partitions() {
                    seen[partition as usize] += 1;
                    assert!(part.holds(partition));
                }
            }
            assert!(seen.iter().all(|n| *n == 1), "{count} parts: {seen:?}");
        }
        assert_eq!(Part::all(3).collect::<Vec<_>>(), vec![Part::WHOLE]);
        assert_eq!(Part::new(4, 4), None);
        assert_eq!(Part::new(0, 3), None);
    }

    #[test]
    fn the_shares_of_a_limit_add_up_to_it_and_differ_by_at_most_one() {
        for count in PART_COUNTS {
            for total in [1, 2, 3, 7, 16, 17, 100, 1024] {
                let shares: Vec<u32> = Part::all(count).map(|part| part.share(total)).collect();
                assert_eq!(
                    shares.iter().sum::<u32>(),
                    total,
                    "{count} parts of {total}"
                );
                let (min, max) = (shares.iter().min().unwrap(), shares.iter().max().unwrap());
                assert!(max - min <= 1, "{count} parts of {total}: {shares:?}");
            }
        }
        assert_eq!(Part::WHOLE.share(7), 7);
    }

    #[test]
    fn a_part_narrows_its_subscriptions_subjects_to_its_partitions() {
        let part = Part::new(1, 4).unwrap();
        let subjects = vec![
            "herald.events.*.com.shop.order.created".to_owned(),
            "herald.events.*.com.pay.>".to_owned(),
        ];
        assert_eq!(
            part.filter_subjects(&subjects),
            [
                "herald.events.1.com.shop.order.created",
                "herald.events.5.com.shop.order.created",
                "herald.events.9.com.shop.order.created",
                "herald.events.13.com.shop.order.created",
                "herald.events.1.com.pay.>",
                "herald.events.5.com.pay.>",
                "herald.events.9.com.pay.>",
                "herald.events.13.com.pay.>",
            ]
        );
        assert_eq!(
            Part::new(3, 16)
                .unwrap()
                .filter_subjects(&[subject::EVENTS_WILDCARD.to_owned()]),
            ["herald.events.3.>"]
        );
        assert_eq!(Part::WHOLE.filter_subjects(&subjects), subjects);
    }

    #[test]
    fn a_part_of_a_tenants_subscription_narrows_its_partitions_under_the_tenants_root() {
        let tenant = crate::credential::TenantId::parse("acme-2", "tenant").unwrap();
        let mut subjects = subject::tenant_filter_subjects(
            &tenant,
            &[crate::Filter::exact("type", "com.shop.order")],
        );
        subjects.push(subject::events_wildcard(&tenant));
        subjects.push("herald.redeliver.sub_01JA0000000000000000000000".to_owned());
        assert_eq!(
            Part::new(3, 8).unwrap().filter_subjects(&subjects),
            [
                "herald.t.acme-2.3.com.shop.order",
                "herald.t.acme-2.11.com.shop.order",
                "herald.t.acme-2.3.>",
                "herald.t.acme-2.11.>",
                "herald.redeliver.sub_01JA0000000000000000000000",
            ]
        );
        // Every subject of a part is covered by one of the whole subscription's, and no
        // subject of another tenant's root or of the default root is.
        let part = Part::new(1, 2).unwrap();
        for narrowed in part.filter_subjects(&subjects) {
            assert!(
                subjects
                    .iter()
                    .any(|whole| subject::subject_covers(whole, &narrowed) || *whole == narrowed),
                "{narrowed}"
            );
            assert!(!subject::subject_covers(
                subject::EVENTS_WILDCARD,
                &narrowed
            ));
            assert!(!narrowed.starts_with("herald.t.acme."));
        }
    }

    #[test]
    fn work_ids_name_a_whole_subscription_as_before_and_parts_apart() {
        let whole = WorkId::whole(id());
        assert_eq!(whole.name(), "sub_01JA0000000000000000000000");
        assert_eq!(whole.consumer_name(), "sub_01JA0000000000000000000000");
        let part = WorkId::new(id(), Part::new(2, 4).unwrap());
        assert_eq!(part.name(), "sub_01JA0000000000000000000000.p2of4");
        assert_eq!(part.consumer_name(), "sub_01JA0000000000000000000000-p2of4");
        for work in [whole, part] {
            assert_eq!(WorkId::parse(&work.name()).unwrap(), work);
            assert_eq!(
                WorkId::parse_consumer_name(&work.consumer_name()).unwrap(),
                work
            );
        }
        for bad in [
            "sub_01JA0000000000000000000000.p4of4",
            "sub_01JA0000000000000000000000.p1of3",
            "sub_01JA0000000000000000000000.p01of4",
            "sub_01JA0000000000000000000000.",
            "sub_01JA0000000000000000000000.x",
            "sub_x.p0of2",
            "",
        ] {
            assert!(WorkId::parse(bad).is_err(), "{bad}");
        }
    }
}

//! The subject index against NATS's matching rules, by table and against one filter at a time.

use proptest::prelude::*;

use super::*;

#[test]
fn a_subject_finds_the_keys_whose_filters_match_it_by_nats_rules() {
    let mut index = SubjectIndex::default();
    index.insert(1, vec!["herald.events.*.order.placed".to_owned()]);
    index.insert(2, vec!["herald.events.*.order.>".to_owned()]);
    index.insert(3, vec!["herald.events.>".to_owned()]);
    index.insert(
        4,
        vec![
            "herald.events.7.payment.failed".to_owned(),
            "herald.redeliver.sub_4".to_owned(),
        ],
    );
    index.insert(5, vec!["herald.events.*.order".to_owned()]);
    let cases: &[(&str, &[u32])] = &[
        ("herald.events.3.order.placed", &[1, 2, 3]),
        ("herald.events.3.order.placed.eu", &[2, 3]),
        ("herald.events.3.order", &[3, 5]),
        ("herald.events.7.payment.failed", &[3, 4]),
        ("herald.events.8.payment.failed", &[3]),
        ("herald.redeliver.sub_4", &[4]),
        ("herald.redeliver.sub_5", &[]),
        // `>` needs one token at least.
        ("herald.events", &[]),
        ("herald", &[]),
        ("", &[]),
    ];
    for (subject, want) in cases {
        let mut found: Vec<u32> = index.matching(subject).into_iter().collect();
        found.sort_unstable();
        assert_eq!(&found, want, "{subject}");
    }
}

#[test]
fn a_removed_or_replaced_key_is_found_no_more_and_leaves_no_node_behind() {
    let mut index = SubjectIndex::default();
    index.insert("a", vec!["herald.events.*.order.>".to_owned()]);
    index.insert("b", vec!["herald.events.*.order.>".to_owned()]);
    index.insert("a", vec!["herald.events.*.refund".to_owned()]);
    assert_eq!(
        index.matching("herald.events.1.order.placed"),
        HashSet::from(["b"])
    );
    assert_eq!(
        index.matching("herald.events.1.refund"),
        HashSet::from(["a"])
    );
    assert!(index.remove(&"a"));
    assert!(!index.remove(&"a"));
    assert!(index.remove(&"b"));
    assert!(index.is_empty());
    assert!(index.root.literal.is_empty() && index.root.any.is_none());
}

#[test]
fn draining_returns_every_key_once_and_empties_the_index() {
    let mut index = SubjectIndex::default();
    index.insert(1, vec!["a.>".to_owned(), "b".to_owned()]);
    index.insert(2, vec!["a.*".to_owned()]);
    let mut drained = index.drain();
    drained.sort_unstable();
    assert_eq!(drained, vec![1, 2]);
    assert!(index.is_empty());
    assert!(index.matching("a.b").is_empty());
}

#[test]
fn one_filter_matches_by_the_same_rules() {
    let cases = [
        ("a.b", "a.b", true),
        ("a.*", "a.b", true),
        ("a.*", "a.b.c", false),
        ("a.>", "a.b.c", true),
        ("a.>", "a", false),
        (">", "a", true),
        ("*", "a.b", false),
        ("a.>.c", "a.b.c", false),
        ("a.b", "a.b.c", false),
        ("a.b.c", "a.b", false),
    ];
    for (filter, subject, want) in cases {
        assert_eq!(
            filter_matches(filter, subject),
            want,
            "{filter} ~ {subject}"
        );
    }
}

fn token() -> impl Strategy<Value = String> {
    prop_oneof![Just("a"), Just("b"), Just("c")].prop_map(str::to_owned)
}

fn filter_token() -> impl Strategy<Value = String> {
    prop_oneof![4 => token(), 1 => Just("*".to_owned())]
}

fn filter() -> impl Strategy<Value = String> {
    (
        prop::collection::vec(filter_token(), 1..4),
        prop::bool::weighted(0.3),
    )
        .prop_map(|(mut tokens, rest)| {
            if rest {
                tokens.push(">".to_owned());
            }
            tokens.join(".")
        })
}

proptest! {
    #[test]
    fn the_index_answers_what_matching_each_filter_answers(
        filters in prop::collection::vec(prop::collection::vec(filter(), 1..3), 1..12),
        subjects in prop::collection::vec(prop::collection::vec(token(), 1..5), 1..12),
        removed in prop::collection::vec(any::<prop::sample::Index>(), 0..4),
    ) {
        let mut index = SubjectIndex::default();
        for (key, filters) in filters.iter().enumerate() {
            index.insert(key, filters.clone());
        }
        let removed: HashSet<usize> = removed.iter().map(|at| at.index(filters.len())).collect();
        for key in &removed {
            index.remove(key);
        }
        for subject in subjects {
            let subject = subject.join(".");
            let want: HashSet<usize> = filters
                .iter()
                .enumerate()
                .filter(|(key, _)| !removed.contains(key))
                .filter(|(_, filters)| filters.iter().any(|filter| filter_matches(filter, &subject)))
                .map(|(key, _)| key)
                .collect();
            prop_assert_eq!(index.matching(&subject), want, "{}", subject);
        }
    }
}

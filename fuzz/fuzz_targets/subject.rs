//! The subject encoder (`herald_core::subject`): event types of any text become NATS subjects
//! and back, ordering keys become partitions and key tokens, and type filters become JetStream
//! filter subjects. The input's first line is an event type, the second a second type (for
//! `any` filters), the third an ordering key; the whole input is also read as a subject.
//! Checked: encoding is reversible and never yields a token NATS reserves, and the filter
//! subjects of an `exact`, `prefix` or `any` filter cover every event the filter matches.
#![no_main]

use herald_core::filter::Filter;
use herald_core::subject::{
    self, PARTITIONS, decode_token, encode_token, event_subject, event_type_of, filter_subjects,
    key_token, partition_of, subject_covers,
};
use libfuzzer_sys::fuzz_target;

fn assert_covered(filters: &[Filter], subject: &str) {
    let subjects = filter_subjects(filters);
    assert!(!subjects.is_empty(), "a filter yields at least one subject");
    assert!(
        subjects.iter().any(|wide| subject_covers(wide, subject)),
        "{subject} should be covered by {subjects:?} of {filters:?}"
    );
    for (index, one) in subjects.iter().enumerate() {
        for (other_index, other) in subjects.iter().enumerate() {
            assert!(
                index == other_index || !subject_covers(one, other),
                "{one} overlaps {other} in {subjects:?}"
            );
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        let _ = event_type_of(&String::from_utf8_lossy(data));
        return;
    };
    let mut lines = text.splitn(3, '\n');
    let first = lines.next().unwrap_or("");
    let second = lines.next().unwrap_or("");
    let key = lines.next().unwrap_or("");

    for part in first.split('.').chain(second.split('.')) {
        let token = encode_token(part);
        assert!(!token.is_empty());
        assert!(
            token
                .bytes()
                .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_'),
            "{token:?} holds a byte NATS reserves"
        );
        assert_eq!(decode_token(&token).as_deref(), Some(part));
    }
    let _ = decode_token(text);
    let _ = event_type_of(text);
    assert!(subject_covers(text, text), "a subject covers itself");
    let _ = subject_covers(first, second);

    let partition = partition_of(key);
    assert!(partition < PARTITIONS);
    let token = key_token(key);
    assert_eq!(token.len(), 32);
    assert!(token.bytes().all(|byte| byte.is_ascii_hexdigit()));

    let Some(stored) = event_subject(partition, first) else {
        return;
    };
    assert!(stored.len() <= subject::MAX_SUBJECT_LEN);
    assert_eq!(event_type_of(&stored).as_deref(), Some(first));
    assert!(subject_covers(subject::EVENTS_WILDCARD, &stored));

    assert_covered(&[Filter::exact("type", first)], &stored);
    assert_covered(
        &[Filter::Any(vec![
            Filter::exact("type", second),
            Filter::exact("type", first),
        ])],
        &stored,
    );
    // Every prefix of the type (on character boundaries) matches it.
    let mut cut = key.len() % (first.len() + 1);
    while !first.is_char_boundary(cut) {
        cut -= 1;
    }
    let prefix = &first[..cut];
    assert_covered(&[Filter::prefix("type", prefix)], &stored);
    assert_covered(
        &[Filter::All(vec![
            Filter::prefix("type", prefix),
            Filter::Any(vec![
                Filter::exact("type", first),
                Filter::prefix("type", second),
            ]),
        ])],
        &stored,
    );
    if let Some(stored_second) = event_subject(partition, second) {
        assert_covered(
            &[Filter::Any(vec![
                Filter::exact("type", first),
                Filter::exact("type", second),
            ])],
            &stored_second,
        );
    }
});

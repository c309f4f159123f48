//! Lane tests: one event of a key at a time in stream order, keys in parallel, retries keep
//! their place, dead letters block or let the key move on, redeliveries are not run twice.

use super::*;

fn job(sequence: u64) -> Job<u64> {
    Job {
        sequence,
        item: sequence,
    }
}

fn pop_all(lanes: &mut Lanes<u64>) -> Vec<(Option<String>, u64)> {
    std::iter::from_fn(|| lanes.pop().map(|(key, job)| (key, job.sequence))).collect()
}

#[test]
fn a_key_runs_one_event_at_a_time_in_order_while_other_keys_proceed() {
    let mut lanes = Lanes::default();
    for (key, sequence) in [("a", 1), ("a", 2), ("b", 3), ("a", 4), ("b", 5)] {
        assert_eq!(lanes.push(key, job(sequence)), Admitted::Queued);
    }
    let first = pop_all(&mut lanes);
    assert_eq!(
        first,
        [(Some("a".to_owned()), 1), (Some("b".to_owned()), 3)],
        "one head per key"
    );
    lanes.finish("b", 3, End::Final);
    assert_eq!(pop_all(&mut lanes), [(Some("b".to_owned()), 5)]);
    lanes.finish("a", 1, End::Final);
    assert_eq!(pop_all(&mut lanes), [(Some("a".to_owned()), 2)]);
    lanes.finish("a", 2, End::Final);
    assert_eq!(pop_all(&mut lanes), [(Some("a".to_owned()), 4)]);
    assert_eq!(lanes.waiting_items().count(), 0);
}

#[test]
fn a_failed_head_keeps_its_key_waiting_until_its_retry_comes_back_first() {
    let mut lanes = Lanes::default();
    lanes.push("a", job(1));
    lanes.push("a", job(2));
    assert_eq!(pop_all(&mut lanes), [(Some("a".to_owned()), 1)]);
    lanes.finish("a", 1, End::Retry);
    assert!(pop_all(&mut lanes).is_empty(), "2 waits for 1's retry");
    lanes.push("a", job(3));
    assert!(pop_all(&mut lanes).is_empty());
    assert_eq!(lanes.push("a", job(1)), Admitted::Queued);
    assert_eq!(pop_all(&mut lanes), [(Some("a".to_owned()), 1)]);
    lanes.finish("a", 1, End::Final);
    assert_eq!(pop_all(&mut lanes), [(Some("a".to_owned()), 2)]);
}

#[test]
fn a_dead_letter_blocks_its_key_until_it_is_redriven() {
    let mut lanes = Lanes::default();
    lanes.push("a", job(1));
    lanes.push("a", job(2));
    lanes.push("b", job(3));
    pop_all(&mut lanes);
    lanes.finish("a", 1, End::Block);
    lanes.finish("b", 3, End::Final);
    assert!(pop_all(&mut lanes).is_empty());
    assert_eq!(lanes.blocked_keys(), ["a"]);
    // The redriven dead letter has a new sequence; it goes first.
    assert_eq!(lanes.push_redriven("a", job(9)), Admitted::Queued);
    assert_eq!(pop_all(&mut lanes), [(Some("a".to_owned()), 9)]);
    lanes.finish("a", 9, End::Final);
    assert_eq!(pop_all(&mut lanes), [(Some("a".to_owned()), 2)]);
    assert!(lanes.blocked_keys().is_empty());
}

#[test]
fn a_key_with_a_retry_in_the_backlog_at_start_up_waits_for_it() {
    let mut lanes = Lanes::default();
    lanes.await_retry("a", 5);
    lanes.await_retry("a", 3);
    lanes.push("a", job(6));
    lanes.push("b", job(7));
    assert_eq!(pop_all(&mut lanes), [(Some("b".to_owned()), 7)]);
    lanes.push("a", job(5));
    assert!(
        pop_all(&mut lanes).is_empty(),
        "the earliest pending retry goes first"
    );
    lanes.push("a", job(3));
    assert_eq!(pop_all(&mut lanes), [(Some("a".to_owned()), 3)]);
    lanes.finish("a", 3, End::Final);
    assert_eq!(pop_all(&mut lanes), [(Some("a".to_owned()), 6)]);
}

#[test]
fn a_purged_dead_letter_lets_its_key_move_on() {
    let mut lanes = Lanes::default();
    lanes.push("a", job(1));
    lanes.push("a", job(2));
    pop_all(&mut lanes);
    lanes.finish("a", 1, End::Block);
    assert!(pop_all(&mut lanes).is_empty());
    lanes.unblock("a");
    assert_eq!(pop_all(&mut lanes), [(Some("a".to_owned()), 2)]);
}

#[test]
fn a_key_blocked_at_start_up_holds_its_events() {
    let mut lanes = Lanes::default();
    lanes.block("a");
    lanes.push("a", job(1));
    lanes.push("b", job(2));
    assert_eq!(pop_all(&mut lanes), [(Some("b".to_owned()), 2)]);
    lanes.push_redriven("a", job(7));
    assert_eq!(pop_all(&mut lanes), [(Some("a".to_owned()), 7)]);
}

#[test]
fn a_redelivery_replaces_the_waiting_event_and_never_runs_it_twice() {
    let mut lanes = Lanes::default();
    lanes.push("a", job(1));
    lanes.push("a", job(2));
    assert_eq!(
        lanes.push(
            "a",
            Job {
                sequence: 2,
                item: 20
            }
        ),
        Admitted::Replaced(2)
    );
    assert_eq!(
        lanes.push(
            "a",
            Job {
                sequence: 1,
                item: 10
            }
        ),
        Admitted::Replaced(1)
    );
    let (_, first) = lanes.pop().unwrap();
    assert_eq!((first.sequence, first.item), (1, 10));
    assert_eq!(
        lanes.push(
            "a",
            Job {
                sequence: 1,
                item: 11
            }
        ),
        Admitted::Running(11)
    );
}

#[test]
fn unkeyed_events_alternate_with_lanes() {
    let mut lanes = Lanes::default();
    for sequence in 1..=3 {
        lanes.push_free(job(sequence));
    }
    lanes.push("a", job(10));
    lanes.push("b", job(11));
    let order: Vec<u64> = pop_all(&mut lanes).into_iter().map(|(_, s)| s).collect();
    assert_eq!(order, [1, 10, 2, 11, 3]);
    assert_eq!(lanes.waiting_items().count(), 0);
}

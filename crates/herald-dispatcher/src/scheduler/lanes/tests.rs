//! Lane tests: one event of a key at a time in stream order, keys in parallel, retries keep
//! their place, dead letters block or let the key move on, redeliveries are not run twice.

use super::*;

fn job(sequence: u64) -> Job<u64> {
    Job {
        sequence,
        item: sequence,
    }
}

/// A test item weighs its sequence, so sums name what is counted.
impl Weigh for u64 {
    fn weight(&self) -> usize {
        usize::try_from(*self).unwrap_or(usize::MAX)
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

fn key(name: &str) -> Option<String> {
    Some(name.to_owned())
}

#[test]
fn a_failed_heads_later_events_move_to_the_hold_one_at_a_time_in_order() {
    let mut lanes = Lanes::default();
    for sequence in 1..=3 {
        lanes.push("a", job(sequence));
    }
    lanes.push("b", job(10));
    assert_eq!(pop_all(&mut lanes), [(key("a"), 1), (key("b"), 10)]);
    assert_eq!(lanes.take_move(), None, "a healthy key moves nothing");
    lanes.finish("a", 1, End::RetryLater);
    let (moving, first) = lanes.take_move().unwrap();
    assert_eq!((moving.as_str(), first.sequence), ("a", 2));
    assert_eq!(lanes.take_move(), None, "one move per key at a time");
    lanes.moved("a");
    let (_, second) = lanes.take_move().unwrap();
    assert_eq!(second.sequence, 3);
    lanes.moved("a");
    assert_eq!(lanes.take_move(), None);
    assert_eq!(
        lanes.waiting_items().count(),
        0,
        "nothing of a is kept live"
    );
    // Arrivals while the head waits go to the hold too.
    lanes.push("a", job(4));
    assert_eq!(lanes.take_move().unwrap().1.sequence, 4);
    lanes.moved("a");
    assert!(pop_all(&mut lanes).is_empty());
    // Other keys are not held back.
    lanes.finish("b", 10, End::Final);
    lanes.push("b", job(11));
    assert_eq!(pop_all(&mut lanes), [(key("b"), 11)]);
}

#[test]
fn a_held_key_releases_its_hold_in_order_before_taking_live_events_again() {
    let mut lanes = Lanes::default();
    lanes.push("a", job(1));
    lanes.push("a", job(2));
    pop_all(&mut lanes);
    lanes.finish("a", 1, End::RetryLater);
    let (_, two) = lanes.take_move().unwrap();
    lanes.moved("a");
    assert_eq!(lanes.take_release(), None, "the head's retry comes first");
    assert_eq!(lanes.push("a", job(1)), Admitted::Queued);
    assert_eq!(pop_all(&mut lanes), [(key("a"), 1)]);
    // A live event arrives while the retry runs: it is held too.
    lanes.push("a", job(3));
    assert_eq!(lanes.take_move().unwrap().1.sequence, 3);
    lanes.finish("a", 1, End::Final);
    assert_eq!(lanes.take_release(), None, "not while a move is in flight");
    lanes.moved("a");
    assert_eq!(lanes.take_release().as_deref(), Some("a"));
    // While releasing, live arrivals wait in the lane: moving would race the release.
    lanes.push("a", job(4));
    assert_eq!(lanes.take_move(), None);
    assert!(pop_all(&mut lanes).is_empty());
    lanes.released("a", Some(two.sequence));
    // 4 is queued behind the held events: it moves while 2 is awaited.
    assert_eq!(lanes.take_move().unwrap().1.sequence, 4);
    lanes.moved("a");
    assert_eq!(
        lanes.push("a", job(2)),
        Admitted::Queued,
        "the released event arrives"
    );
    assert_eq!(pop_all(&mut lanes), [(key("a"), 2)]);
    lanes.finish("a", 2, End::Final);
    lanes.take_release().unwrap();
    lanes.released("a", Some(3));
    lanes.push("a", job(3));
    assert_eq!(pop_all(&mut lanes), [(key("a"), 3)]);
    lanes.finish("a", 3, End::Final);
    lanes.take_release().unwrap();
    lanes.released("a", Some(4));
    lanes.push("a", job(4));
    assert_eq!(pop_all(&mut lanes), [(key("a"), 4)]);
    lanes.push("a", job(5));
    assert_eq!(lanes.take_move().unwrap().1.sequence, 5);
    lanes.moved("a");
    lanes.finish("a", 4, End::Final);
    lanes.take_release().unwrap();
    lanes.released("a", Some(5));
    lanes.push("a", job(5));
    assert_eq!(pop_all(&mut lanes), [(key("a"), 5)]);
    lanes.finish("a", 5, End::Final);
    assert_eq!(lanes.take_release().as_deref(), Some("a"));
    lanes.released("a", None);
    // The hold is empty: the key is live again.
    lanes.push("a", job(6));
    assert_eq!(lanes.take_move(), None);
    assert_eq!(pop_all(&mut lanes), [(key("a"), 6)]);
}

#[test]
fn a_key_whose_queue_was_empty_while_it_waited_needs_no_release() {
    let mut lanes = Lanes::default();
    lanes.push("a", job(1));
    pop_all(&mut lanes);
    lanes.finish("a", 1, End::RetryLater);
    lanes.push("a", job(1));
    pop_all(&mut lanes);
    lanes.finish("a", 1, End::Final);
    assert_eq!(lanes.take_release(), None);
    lanes.push("a", job(2));
    assert_eq!(pop_all(&mut lanes), [(key("a"), 2)]);
}

#[test]
fn an_event_that_could_not_be_moved_keeps_its_place_and_is_moved_again() {
    let mut lanes = Lanes::default();
    lanes.push("a", job(1));
    lanes.push("a", job(2));
    lanes.push("a", job(3));
    pop_all(&mut lanes);
    lanes.finish("a", 1, End::Block);
    let (_, two) = lanes.take_move().unwrap();
    lanes.move_failed("a", two);
    assert_eq!(lanes.take_move().unwrap().1.sequence, 2, "still the oldest");
}

#[test]
fn a_failed_release_is_made_again() {
    let mut lanes: Lanes<u64> = Lanes::default();
    lanes.hold("a", None);
    assert_eq!(lanes.take_release().as_deref(), Some("a"));
    lanes.release_failed("a");
    assert_eq!(lanes.take_release().as_deref(), Some("a"));
}

#[test]
fn a_key_found_held_at_start_up_releases_before_its_live_events() {
    let mut lanes = Lanes::default();
    lanes.push("a", job(20));
    lanes.hold("a", None);
    assert!(
        pop_all(&mut lanes).is_empty(),
        "live 20 is newer than the hold"
    );
    lanes.take_release().unwrap();
    lanes.released("a", Some(7));
    lanes.push("a", job(7));
    assert_eq!(pop_all(&mut lanes), [(key("a"), 7)]);
    lanes.finish("a", 7, End::Final);
    lanes.take_release().unwrap();
    lanes.released("a", None);
    assert_eq!(pop_all(&mut lanes), [(key("a"), 20)]);
}

#[test]
fn a_key_blocked_with_a_hold_at_start_up_releases_only_after_it_is_unblocked() {
    let mut lanes: Lanes<u64> = Lanes::default();
    lanes.block("a");
    lanes.hold("a", None);
    assert_eq!(lanes.take_release(), None);
    lanes.push("a", job(30));
    assert_eq!(lanes.take_move().unwrap().1.sequence, 30);
    lanes.moved("a");
    lanes.unblock("a");
    assert_eq!(lanes.take_release().as_deref(), Some("a"));
}

#[test]
fn a_key_awaiting_a_retry_at_start_up_releases_its_hold_after_the_retry() {
    let mut lanes = Lanes::default();
    lanes.await_retry("a", 3);
    lanes.hold("a", None);
    assert_eq!(lanes.take_release(), None);
    lanes.push("a", job(3));
    assert_eq!(pop_all(&mut lanes), [(key("a"), 3)]);
    lanes.finish("a", 3, End::Final);
    assert_eq!(lanes.take_release().as_deref(), Some("a"));
}

#[test]
fn a_released_event_that_arrives_before_the_releases_answer_still_goes_first() {
    let mut lanes = Lanes::default();
    lanes.push("a", job(1));
    lanes.push("a", job(2));
    pop_all(&mut lanes);
    lanes.finish("a", 1, End::RetryLater);
    lanes.take_move().unwrap();
    lanes.moved("a");
    lanes.push("a", job(1));
    pop_all(&mut lanes);
    lanes.finish("a", 1, End::Final);
    lanes.take_release().unwrap();
    lanes.push("a", job(3));
    // The released 2 is delivered by the retry consumer before the release returns.
    lanes.push("a", job(2));
    assert!(pop_all(&mut lanes).is_empty());
    lanes.released("a", Some(2));
    assert_eq!(pop_all(&mut lanes), [(key("a"), 2)]);
    // 3 arrived live during the release: it is held behind whatever the hold still has.
    assert_eq!(lanes.take_move().unwrap().1.sequence, 3);
}

#[test]
fn a_redriven_dead_letter_goes_before_the_events_its_key_held() {
    // The redriven copy has a new, larger sequence: nothing held may be judged by it.
    let mut lanes = Lanes::default();
    lanes.push("a", job(1));
    lanes.push("a", job(2));
    pop_all(&mut lanes);
    lanes.finish("a", 1, End::Block);
    lanes.take_move().unwrap();
    lanes.moved("a");
    assert_eq!(lanes.push_redriven("a", job(50)), Admitted::Queued);
    assert_eq!(pop_all(&mut lanes), [(key("a"), 50)]);
    lanes.finish("a", 50, End::Final);
    assert_eq!(lanes.take_release().as_deref(), Some("a"));
    lanes.released("a", Some(2));
    lanes.push("a", job(2));
    assert_eq!(pop_all(&mut lanes), [(key("a"), 2)]);
}

#[test]
fn a_head_retried_soon_holds_its_keys_later_events_only_once_it_kept_failing() {
    let mut lanes = Lanes::default();
    lanes.push("a", job(1));
    lanes.push("a", job(2));
    for failure in 1..HOLD_AFTER_FAILURES {
        assert_eq!(pop_all(&mut lanes), [(key("a"), 1)]);
        lanes.finish("a", 1, End::Retry);
        assert_eq!(
            lanes.take_move(),
            None,
            "after {failure} failures 2 waits live"
        );
        lanes.push("a", job(1));
    }
    assert_eq!(pop_all(&mut lanes), [(key("a"), 1)]);
    lanes.finish("a", 1, End::Retry);
    assert_eq!(lanes.take_move().unwrap().1.sequence, 2);
    lanes.moved("a");
    // A success ends the run: the next head starts counting afresh.
    lanes.push("a", job(1));
    pop_all(&mut lanes);
    lanes.finish("a", 1, End::Final);
    lanes.take_release().unwrap();
    lanes.released("a", None);
    lanes.push("a", job(3));
    assert_eq!(pop_all(&mut lanes), [(key("a"), 3)]);
    lanes.push("a", job(4));
    lanes.finish("a", 3, End::Retry);
    assert_eq!(lanes.take_move(), None);
}

#[test]
fn lanes_count_and_weigh_what_waits_not_what_runs_moves_or_was_replaced() {
    let mut lanes = Lanes::default();
    lanes.push_free(job(1));
    for (key, sequence) in [("a", 2), ("a", 3), ("b", 4)] {
        assert_eq!(lanes.push(key, job(sequence)), Admitted::Queued);
    }
    assert_eq!((lanes.len(), lanes.weight()), (4, 1 + 2 + 3 + 4));
    // A redelivered copy of a waiting event replaces it and is counted once.
    assert_eq!(
        lanes.push(
            "a",
            Job {
                sequence: 3,
                item: 30
            }
        ),
        Admitted::Replaced(3)
    );
    assert_eq!((lanes.len(), lanes.weight()), (4, 1 + 2 + 30 + 4));
    let started = pop_all(&mut lanes);
    assert_eq!(started.len(), 3, "the free event and each key's head");
    assert_eq!((lanes.len(), lanes.weight()), (1, 30));
    // A copy of a running event is not counted.
    assert!(matches!(lanes.push("a", job(2)), Admitted::Running(2)));
    assert_eq!((lanes.len(), lanes.weight()), (1, 30));
    // The key holds after its head failed into the backlog: its waiting event moves out, and
    // counts again when the move fails and it is put back.
    lanes.finish("a", 2, End::RetryLater);
    let (key, moving) = lanes
        .take_move()
        .expect("a holding key moves its later events");
    assert_eq!((lanes.len(), lanes.weight()), (0, 0));
    lanes.move_failed(&key, moving);
    assert_eq!((lanes.len(), lanes.weight()), (1, 30));
}

#[test]
fn a_key_found_held_at_start_up_delivers_its_older_live_head_first_and_releases_after_it() {
    // A takeover: the new owner's consumer re-reads from the floor (before 5), the key's head
    // 5 is still unacknowledged, and its later events from 10 on wait in the hold.
    let mut lanes: Lanes<u64> = Lanes::default();
    lanes.hold("a", Some(10));
    assert_eq!(lanes.take_release(), None, "the head may still arrive");
    lanes.push("a", job(5));
    assert_eq!(pop_all(&mut lanes), [(key("a"), 5)]);
    // The live copy of the first held event arrives while the head runs: it moves to the
    // hold again (stored once), never before the head.
    lanes.push("a", job(10));
    lanes.live_reached(10, 5);
    assert_eq!(lanes.take_move().unwrap().1.sequence, 10);
    lanes.moved("a");
    assert_eq!(lanes.take_release(), None, "the head still runs");
    lanes.finish("a", 5, End::Final);
    assert_eq!(lanes.take_release().as_deref(), Some("a"));
}

#[test]
fn a_key_found_held_at_start_up_releases_once_the_live_pull_passed_the_hold() {
    let mut lanes: Lanes<u64> = Lanes::default();
    lanes.hold("a", Some(10));
    lanes.live_reached(9, 5);
    assert_eq!(lanes.take_release(), None);
    lanes.live_reached(12, 5);
    assert_eq!(lanes.take_release().as_deref(), Some("a"));
}

#[test]
fn a_key_found_held_at_start_up_releases_once_nothing_older_is_pending_although_the_hold_is_never_reached()
 {
    // The hold's oldest event (10) left the events stream (retention) before the takeover, so
    // the live pull will never deliver it; a delivery with nothing pending after it says every
    // older event has arrived.
    let mut lanes: Lanes<u64> = Lanes::default();
    lanes.hold("a", Some(10));
    lanes.hold("b", Some(20));
    lanes.live_reached(7, 1);
    assert_eq!(
        lanes.take_release(),
        None,
        "an older event is still pending"
    );
    lanes.live_reached(8, 0);
    let mut released = [lanes.take_release(), lanes.take_release()];
    released.sort();
    assert_eq!(released, [key("a"), key("b")]);
}

//! The waiting room of an owned subscription: events that passed their filters and wait for a
//! concurrency permit and a rate token.
//!
//! Unkeyed events (every event of an unordered subscription, and events without a
//! `partitionkey` on an ordered one) may start in any order. Keyed events wait in one FIFO lane
//! per key, and a lane starts its head only when the previous event of the key reached a final
//! outcome: one event of a key in flight at a time, keys in parallel. A head whose attempt
//! failed keeps its place until its retry arrives; a head that was dead-lettered blocks its key
//! until it is redriven, when the subscription says so.
//!
//! A key whose head waits in the retry backlog, failed [`HOLD_AFTER_FAILURES`] times in a row, or
//! is blocked is *holding*: its later events are moved, oldest first
//! and one at a time, out of the live consumer into the key's hold in the retry stream
//! ([`herald_nats::Held`]), so a failing key occupies no room in the subscription's window.
//! When the head reaches a final outcome and the hold has events, they are released one at a
//! time, each waited for like a retry, until the hold is empty; only then does the key take its
//! live events again. Moving and releasing never overlap on a key, which keeps the hold's order
//! the key's stream order. The lanes say what to move and release; the scheduler does it.
//!
//! The lanes count what waits and weigh it ([`Weigh`]: an event's payload bytes), so the
//! scheduler can bound how much it holds.
//!
//! Pure bookkeeping: no I/O, no clock. Events are identified by their stream sequence.

use std::collections::{BTreeMap, HashMap, VecDeque};

#[cfg(test)]
mod tests;

/// One waiting event: its stream sequence and what the scheduler needs to run it.
#[derive(Debug, PartialEq)]
pub(crate) struct Job<T> {
    pub(crate) sequence: u64,
    pub(crate) item: T,
}

/// What holding a waiting item costs: its bytes, as far as they grow with the event.
pub(crate) trait Weigh {
    fn weight(&self) -> usize;
}

/// What became of a pushed event.
#[derive(Debug, PartialEq)]
pub(crate) enum Admitted<T> {
    Queued,
    /// The event was already waiting (a redelivery): the new item took the old one's place,
    /// which is returned.
    Replaced(T),
    /// The same event is running: the new item is returned untouched.
    Running(T),
}

/// How a started keyed event ended, for its lane.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum End {
    /// Delivered, or given up on in a way that lets the key move on.
    Final,
    /// It will come back soon for another attempt (nak'd): the key waits for it.
    Retry,
    /// It will come back from the retry backlog, after a delay of seconds or more: the key
    /// waits for it and holds its later events.
    RetryLater,
    /// Dead-lettered on a subscription that blocks the key until an operator redrives it.
    Block,
}

/// After this many failed attempts of its head in a row a key holds its later events even when
/// each retry comes back soon. Holding costs a few NATS round trips per held event, more than an
/// event waiting a few hundred milliseconds in the window costs; a head that keeps failing is
/// what must not keep the window.
pub(crate) const HOLD_AFTER_FAILURES: u32 = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Nothing running and nothing about to start.
    Idle,
    /// The queue's head may start now: the key is in `ready`.
    Ready,
    Running(u64),
    AwaitingRetry(u64),
    Blocked,
}

#[derive(Debug)]
struct Lane<T> {
    queue: VecDeque<Job<T>>,
    state: State,
    /// Later events are moved to the hold instead of waiting here.
    holding: bool,
    /// The hold may have events (something was moved there, or one was found at start-up).
    stored: bool,
    /// The queue's oldest event is being moved to the hold (it is out of `queue` meanwhile).
    moving: bool,
    /// The hold's oldest event is being released.
    releasing: bool,
    /// Failed attempts of the current head in a row.
    failures: u32,
    /// Found holding at start-up while the live pull re-reads from before the hold's oldest
    /// event (this sequence): events of the key older than it may still arrive live, and they
    /// go before the hold, which is released only once the live pull reached it.
    older_until: Option<u64>,
}

impl<T> Lane<T> {
    fn new() -> Lane<T> {
        Lane {
            queue: VecDeque::new(),
            state: State::Idle,
            holding: false,
            stored: false,
            moving: false,
            releasing: false,
            failures: 0,
            older_until: None,
        }
    }

    /// Whether `sequence` is older than the hold found at start-up, whose oldest events
    /// are still to be read live.
    fn precedes_hold(&self, sequence: u64) -> bool {
        self.older_until.is_some_and(|held| sequence < held)
    }

    fn can_move(&self) -> bool {
        self.holding
            && !self.moving
            && !self.releasing
            && self
                .queue
                .front()
                .is_some_and(|job| !self.precedes_hold(job.sequence))
            && matches!(
                self.state,
                State::Running(_) | State::AwaitingRetry(_) | State::Blocked
            )
    }

    fn can_release(&self) -> bool {
        self.stored
            && self.older_until.is_none()
            && self.state == State::Idle
            && !self.moving
            && !self.releasing
    }
}

/// The waiting events of one subscription.
#[derive(Debug)]
pub(crate) struct Lanes<T> {
    free: VecDeque<Job<T>>,
    lanes: HashMap<String, Lane<T>>,
    /// Keys whose head may start now, oldest first: exactly the lanes in state `Ready`.
    ready: VecDeque<String>,
    /// Keys that may have an event to move to their hold (checked when taken).
    to_move: VecDeque<String>,
    /// Keys that may have an event to release from their hold (checked when taken).
    to_release: VecDeque<String>,
    prefer_free: bool,
    /// Lanes with `older_until`, by that sequence: opened as the live pull reaches it.
    gated: BTreeMap<u64, Vec<String>>,
    /// Waiting events, free and keyed (not those running, moving or held).
    len: usize,
    /// The sum of their weights.
    weight: usize,
}

impl<T> Default for Lanes<T> {
    fn default() -> Lanes<T> {
        Lanes {
            free: VecDeque::new(),
            lanes: HashMap::new(),
            ready: VecDeque::new(),
            to_move: VecDeque::new(),
            to_release: VecDeque::new(),
            prefer_free: true,
            gated: BTreeMap::new(),
            len: 0,
            weight: 0,
        }
    }
}

impl<T: Weigh> Lanes<T> {
    /// Waiting events: pushed and not yet taken to start or to move.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The waiting events' summed [`Weigh::weight`].
    pub(crate) fn weight(&self) -> usize {
        self.weight
    }

    fn counted_in(&mut self, job: &Job<T>) {
        self.len += 1;
        self.weight += job.item.weight();
    }

    fn counted_out(&mut self, job: &Job<T>) {
        self.len -= 1;
        self.weight -= job.item.weight();
    }

    /// Adds an event that may start in any order.
    pub(crate) fn push_free(&mut self, job: Job<T>) {
        self.counted_in(&job);
        self.free.push_back(job);
    }

    /// Adds a keyed event behind the key's earlier ones, or at the head when it is the retry
    /// the key waits for.
    pub(crate) fn push(&mut self, key: &str, job: Job<T>) -> Admitted<T> {
        let lane = self.lanes.entry(key.to_owned()).or_insert_with(Lane::new);
        match lane.state {
            State::Running(sequence) if sequence == job.sequence => {
                return Admitted::Running(job.item);
            }
            State::AwaitingRetry(sequence) if sequence == job.sequence => {
                self.len += 1;
                self.weight += job.item.weight();
                lane.queue.push_front(job);
                lane.state = State::Ready;
                self.ready.push_back(key.to_owned());
                return Admitted::Queued;
            }
            _ => {}
        }
        if let Some(waiting) = lane.queue.iter_mut().find(|w| w.sequence == job.sequence) {
            let old = std::mem::replace(&mut waiting.item, job.item);
            self.weight = self.weight - old.weight() + waiting.item.weight();
            return Admitted::Replaced(old);
        }
        self.len += 1;
        self.weight += job.item.weight();
        if lane.precedes_hold(job.sequence) {
            // Older than the hold found at start-up: it goes before the held events, and
            // before any live copy of them already queued.
            let sequence = job.sequence;
            let at = lane
                .queue
                .iter()
                .position(|queued| queued.sequence > sequence)
                .unwrap_or(lane.queue.len());
            lane.queue.insert(at, job);
            if lane.state == State::Idle && !lane.moving && !lane.releasing && at == 0 {
                lane.state = State::Ready;
                self.ready.push_back(key.to_owned());
            }
            return Admitted::Queued;
        }
        lane.queue.push_back(job);
        if lane.state == State::Idle && !lane.stored && !lane.moving {
            lane.state = State::Ready;
            self.ready.push_back(key.to_owned());
        } else if lane.can_move() {
            self.to_move.push_back(key.to_owned());
        }
        Admitted::Queued
    }

    /// Adds a keyed event an operator sent back (a redriven dead letter, a replay): it unblocks
    /// its key and goes first.
    pub(crate) fn push_redriven(&mut self, key: &str, job: Job<T>) -> Admitted<T> {
        if let Some(lane) = self.lanes.get_mut(key)
            && lane.state == State::Blocked
        {
            self.len += 1;
            self.weight += job.item.weight();
            lane.queue.push_front(job);
            lane.state = State::Ready;
            self.ready.push_back(key.to_owned());
            return Admitted::Queued;
        }
        self.push(key, job)
    }

    /// Takes the next event that may start, alternating between unkeyed events and lanes.
    pub(crate) fn pop(&mut self) -> Option<(Option<String>, Job<T>)> {
        let take_free = !self.free.is_empty() && (self.prefer_free || self.ready.is_empty());
        self.prefer_free = !take_free;
        if take_free {
            let job = self.free.pop_front()?;
            self.counted_out(&job);
            return Some((None, job));
        }
        while let Some(key) = self.ready.pop_front() {
            let Some(lane) = self.lanes.get_mut(&key) else {
                continue;
            };
            if lane.state != State::Ready {
                continue;
            }
            let Some(job) = lane.queue.pop_front() else {
                lane.state = State::Idle;
                continue;
            };
            lane.state = State::Running(job.sequence);
            if lane.can_move() {
                // Live events queued behind a released or retried head while the key holds.
                self.to_move.push_back(key.clone());
            }
            self.counted_out(&job);
            return Some((Some(key), job));
        }
        None
    }

    /// Records how a started keyed event ended.
    pub(crate) fn finish(&mut self, key: &str, sequence: u64, end: End) {
        let Some(lane) = self.lanes.get_mut(key) else {
            return;
        };
        if lane.state != State::Running(sequence) {
            return;
        }
        match end {
            End::Final => {
                lane.state = State::Idle;
                lane.failures = 0;
                self.settle(key);
            }
            End::Retry => {
                lane.state = State::AwaitingRetry(sequence);
                lane.failures = lane.failures.saturating_add(1);
                if lane.failures >= HOLD_AFTER_FAILURES {
                    self.start_holding(key);
                }
            }
            End::RetryLater => {
                lane.state = State::AwaitingRetry(sequence);
                self.start_holding(key);
            }
            End::Block => {
                lane.state = State::Blocked;
                self.start_holding(key);
            }
        }
    }

    /// The key's later events go to its hold from now on.
    fn start_holding(&mut self, key: &str) {
        let Some(lane) = self.lanes.get_mut(key) else {
            return;
        };
        lane.holding = true;
        if lane.can_move() {
            self.to_move.push_back(key.to_owned());
        }
    }

    /// Decides what an idle lane does next: release from its hold, start its queue's head, or
    /// nothing (it is removed).
    fn settle(&mut self, key: &str) {
        let Some(lane) = self.lanes.get_mut(key) else {
            return;
        };
        if lane.state != State::Idle {
            return;
        }
        if lane.can_release() {
            self.to_release.push_back(key.to_owned());
            return;
        }
        if lane.stored || lane.moving || lane.releasing {
            // It waits for the move or the release in progress.
            return;
        }
        // Nothing is held: whatever is queued is the key's next, in order.
        lane.holding = false;
        if lane.queue.is_empty() {
            self.lanes.remove(key);
        } else {
            lane.state = State::Ready;
            self.ready.push_back(key.to_owned());
        }
    }

    /// Takes the next event to move to its key's hold: the oldest queued event of a holding key
    /// whose head is running, waiting for a retry, or blocked. Until [`Lanes::moved`] or
    /// [`Lanes::move_failed`], the key moves nothing else.
    pub(crate) fn take_move(&mut self) -> Option<(String, Job<T>)> {
        while let Some(key) = self.to_move.pop_front() {
            let Some(lane) = self.lanes.get_mut(&key) else {
                continue;
            };
            if !lane.can_move() {
                continue;
            }
            let Some(job) = lane.queue.pop_front() else {
                continue;
            };
            lane.moving = true;
            self.counted_out(&job);
            return Some((key, job));
        }
        None
    }

    /// Records that the event taken by [`Lanes::take_move`] is stored in the hold.
    pub(crate) fn moved(&mut self, key: &str) {
        let Some(lane) = self.lanes.get_mut(key) else {
            return;
        };
        lane.moving = false;
        lane.stored = true;
        if lane.can_move() {
            self.to_move.push_back(key.to_owned());
        }
        self.settle(key);
    }

    /// Puts back an event that could not be moved; it is taken again later.
    pub(crate) fn move_failed(&mut self, key: &str, job: Job<T>) {
        let Some(lane) = self.lanes.get_mut(key) else {
            return;
        };
        lane.moving = false;
        self.len += 1;
        self.weight += job.item.weight();
        lane.queue.push_front(job);
        if lane.can_move() {
            self.to_move.push_back(key.to_owned());
        }
        self.settle(key);
    }

    /// Takes the next release to make: a key whose head is done and whose hold may have
    /// events. Until [`Lanes::released`] or [`Lanes::release_failed`] nothing else of the key
    /// moves or starts.
    pub(crate) fn take_release(&mut self) -> Option<String> {
        while let Some(key) = self.to_release.pop_front() {
            let Some(lane) = self.lanes.get_mut(&key) else {
                continue;
            };
            if !lane.can_release() {
                continue;
            }
            lane.releasing = true;
            return Some(key);
        }
        None
    }

    /// Records a release: `Some(sequence)` when that held event was released (the key waits
    /// for it like a retry), `None` when the hold was empty (the key takes live events again).
    pub(crate) fn released(&mut self, key: &str, released: Option<u64>) {
        let Some(lane) = self.lanes.get_mut(key) else {
            return;
        };
        lane.releasing = false;
        match released {
            Some(sequence) => {
                // The released event may have arrived before the release's answer did.
                if let Some(index) = lane.queue.iter().position(|job| job.sequence == sequence)
                    && let Some(job) = lane.queue.remove(index)
                {
                    lane.queue.push_front(job);
                    lane.state = State::Ready;
                    self.ready.push_back(key.to_owned());
                    return;
                }
                lane.state = State::AwaitingRetry(sequence);
                if lane.can_move() {
                    self.to_move.push_back(key.to_owned());
                }
            }
            None => {
                lane.stored = false;
                self.settle(key);
            }
        }
    }

    /// Records a release that failed; it is made again later.
    pub(crate) fn release_failed(&mut self, key: &str) {
        let Some(lane) = self.lanes.get_mut(key) else {
            return;
        };
        lane.releasing = false;
        self.settle(key);
    }

    /// Marks a key as having held events (found at start-up): they go before its live ones.
    /// `older_until` is the hold's oldest event's sequence when the live pull re-reads from
    /// before it (a consumer renewed from a lower acknowledgement floor): the key's older live
    /// events, its head among them, may still arrive and go first, and the hold is released
    /// only once [`Lanes::live_reached`] passed it.
    pub(crate) fn hold(&mut self, key: &str, older_until: Option<u64>) {
        let lane = self.lanes.entry(key.to_owned()).or_insert_with(Lane::new);
        lane.holding = true;
        lane.stored = true;
        if let Some(held) = older_until {
            lane.older_until = Some(lane.older_until.map_or(held, |known| known.min(held)));
            self.gated.entry(held).or_default().push(key.to_owned());
        }
        if lane.state == State::Ready {
            // Only live events were queued: they come after the held ones.
            lane.state = State::Idle;
        }
        self.settle(key);
    }

    /// The live pull delivered the event at `sequence`, with `pending` events still to deliver
    /// after it. It delivers in stream order, so every older event still unacknowledged has
    /// arrived, and holds found at start-up up to it may be released; with nothing pending,
    /// every hold may, even one whose oldest event left the events stream (retention) and so
    /// will never be reached.
    pub(crate) fn live_reached(&mut self, sequence: u64, pending: u64) {
        let sequence = if pending == 0 { u64::MAX } else { sequence };
        while let Some(entry) = self.gated.first_entry() {
            if *entry.key() > sequence {
                break;
            }
            for key in entry.remove() {
                if let Some(lane) = self.lanes.get_mut(&key)
                    && lane.older_until.is_some_and(|held| held <= sequence)
                {
                    lane.older_until = None;
                    if lane.can_move() {
                        self.to_move.push_back(key.clone());
                    }
                    self.settle(&key);
                }
            }
        }
    }

    /// Makes a key wait for the retry of its event `sequence` (found in the retry backlog at
    /// start-up) before any of its events start; the earliest such event wins.
    pub(crate) fn await_retry(&mut self, key: &str, sequence: u64) {
        let lane = self.lanes.entry(key.to_owned()).or_insert_with(Lane::new);
        lane.holding = true;
        match lane.state {
            State::Idle | State::Ready => {
                lane.state = State::AwaitingRetry(sequence);
            }
            State::AwaitingRetry(waiting) if sequence < waiting => {
                lane.state = State::AwaitingRetry(sequence);
            }
            _ => {}
        }
    }

    /// Marks a key blocked (a dead letter found at start-up) before any of its events start.
    pub(crate) fn block(&mut self, key: &str) {
        let lane = self.lanes.entry(key.to_owned()).or_insert_with(Lane::new);
        if matches!(lane.state, State::Idle | State::Ready) {
            lane.state = State::Blocked;
            lane.holding = true;
        }
    }

    /// True when some event may start now (or a stale entry remains, which `pop` skips).
    /// Whether nothing waits and no key has any state: a worker may drop everything it
    /// keeps and find the same when it sets up again (parking).
    pub(crate) fn is_quiet(&self) -> bool {
        self.len == 0 && self.free.is_empty() && self.lanes.is_empty() && self.gated.is_empty()
    }

    pub(crate) fn has_ready(&self) -> bool {
        !self.free.is_empty() || !self.ready.is_empty()
    }

    /// Lets a blocked key move on (its dead letter was purged): its next event may start.
    pub(crate) fn unblock(&mut self, key: &str) {
        let Some(lane) = self.lanes.get_mut(key) else {
            return;
        };
        if lane.state != State::Blocked {
            return;
        }
        lane.state = State::Idle;
        self.settle(key);
    }

    /// Keys blocked by a dead letter.
    pub(crate) fn blocked_keys(&self) -> Vec<String> {
        self.lanes
            .iter()
            .filter(|(_, lane)| lane.state == State::Blocked)
            .map(|(key, _)| key.clone())
            .collect()
    }

    /// Every waiting item, to keep it alive while it waits.
    pub(crate) fn waiting_items(&self) -> impl Iterator<Item = &T> {
        self.free
            .iter()
            .chain(self.lanes.values().flat_map(|lane| lane.queue.iter()))
            .map(|job| &job.item)
    }
}

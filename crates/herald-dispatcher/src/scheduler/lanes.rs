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
//! Pure bookkeeping: no I/O, no clock. Events are identified by their stream sequence.

use std::collections::{HashMap, VecDeque};

#[cfg(test)]
mod tests;

/// One waiting event: its stream sequence and what the scheduler needs to run it.
#[derive(Debug)]
pub(crate) struct Job<T> {
    pub(crate) sequence: u64,
    pub(crate) item: T,
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
    /// It will come back for another attempt: the key waits for it.
    Retry,
    /// Dead-lettered on a subscription that blocks the key until an operator redrives it.
    Block,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Idle,
    Running(u64),
    AwaitingRetry(u64),
    Blocked,
}

#[derive(Debug)]
struct Lane<T> {
    queue: VecDeque<Job<T>>,
    state: State,
}

/// The waiting events of one subscription.
#[derive(Debug)]
pub(crate) struct Lanes<T> {
    free: VecDeque<Job<T>>,
    lanes: HashMap<String, Lane<T>>,
    /// Keys whose head may start now, oldest first: exactly the idle lanes with a queue.
    ready: VecDeque<String>,
    prefer_free: bool,
}

impl<T> Default for Lanes<T> {
    fn default() -> Lanes<T> {
        Lanes {
            free: VecDeque::new(),
            lanes: HashMap::new(),
            ready: VecDeque::new(),
            prefer_free: true,
        }
    }
}

impl<T> Lanes<T> {
    /// Adds an event that may start in any order.
    pub(crate) fn push_free(&mut self, job: Job<T>) {
        self.free.push_back(job);
    }

    /// Adds a keyed event behind the key's earlier ones, or at the head when it is the retry
    /// the key waits for.
    pub(crate) fn push(&mut self, key: &str, job: Job<T>) -> Admitted<T> {
        let lane = self.lanes.entry(key.to_owned()).or_insert_with(|| Lane {
            queue: VecDeque::new(),
            state: State::Idle,
        });
        match lane.state {
            State::Running(sequence) if sequence == job.sequence => {
                return Admitted::Running(job.item);
            }
            State::AwaitingRetry(sequence) if sequence == job.sequence => {
                lane.queue.push_front(job);
                lane.state = State::Idle;
                self.ready.push_back(key.to_owned());
                return Admitted::Queued;
            }
            _ => {}
        }
        if let Some(waiting) = lane.queue.iter_mut().find(|w| w.sequence == job.sequence) {
            let old = std::mem::replace(&mut waiting.item, job.item);
            return Admitted::Replaced(old);
        }
        let was_empty = lane.queue.is_empty();
        lane.queue.push_back(job);
        if was_empty && lane.state == State::Idle {
            self.ready.push_back(key.to_owned());
        }
        Admitted::Queued
    }

    /// Adds a keyed event an operator sent back (a redriven dead letter, a replay): it unblocks
    /// its key and goes first.
    pub(crate) fn push_redriven(&mut self, key: &str, job: Job<T>) -> Admitted<T> {
        if let Some(lane) = self.lanes.get_mut(key)
            && lane.state == State::Blocked
        {
            lane.queue.push_front(job);
            lane.state = State::Idle;
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
            return self.free.pop_front().map(|job| (None, job));
        }
        let key = self.ready.pop_front()?;
        let lane = self.lanes.get_mut(&key)?;
        let job = lane.queue.pop_front()?;
        lane.state = State::Running(job.sequence);
        Some((Some(key), job))
    }

    /// Records how a started keyed event ended.
    pub(crate) fn finish(&mut self, key: &str, sequence: u64, end: End) {
        let Some(lane) = self.lanes.get_mut(key) else {
            return;
        };
        if lane.state != State::Running(sequence) {
            return;
        }
        lane.state = match end {
            End::Final => State::Idle,
            End::Retry => State::AwaitingRetry(sequence),
            End::Block => State::Blocked,
        };
        if lane.state == State::Idle {
            if lane.queue.is_empty() {
                self.lanes.remove(key);
            } else {
                self.ready.push_back(key.to_owned());
            }
        }
    }

    /// Makes a key wait for the retry of its event `sequence` (found in the retry backlog at
    /// start-up) before any of its events start; the earliest such event wins.
    pub(crate) fn await_retry(&mut self, key: &str, sequence: u64) {
        let lane = self.lanes.entry(key.to_owned()).or_insert_with(|| Lane {
            queue: VecDeque::new(),
            state: State::Idle,
        });
        match lane.state {
            State::Idle => {
                lane.state = State::AwaitingRetry(sequence);
                self.ready.retain(|ready| ready != key);
            }
            State::AwaitingRetry(waiting) if sequence < waiting => {
                lane.state = State::AwaitingRetry(sequence);
            }
            _ => {}
        }
    }

    /// Marks a key blocked (a dead letter found at start-up) before any of its events start.
    pub(crate) fn block(&mut self, key: &str) {
        let lane = self.lanes.entry(key.to_owned()).or_insert_with(|| Lane {
            queue: VecDeque::new(),
            state: State::Idle,
        });
        if lane.state == State::Idle {
            lane.state = State::Blocked;
            self.ready.retain(|ready| ready != key);
        }
    }

    /// True when some event may start now.
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
        if lane.queue.is_empty() {
            self.lanes.remove(key);
        } else {
            self.ready.push_back(key.to_owned());
        }
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

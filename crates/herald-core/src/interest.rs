//! Which registered NATS filter subjects a concrete subject matches: the index a dispatcher
//! keeps of its parked subscriptions, to wake exactly those an event concerns.
//!
//! The rules are NATS's own: subjects are `.`-separated tokens; in a filter, `*` matches one
//! token and `>` (last token only) one or more. A filter that is not a valid NATS filter (an
//! empty token, `>` before the end) is kept but matches nothing it would not match as literal
//! tokens, so a malformed filter can only miss, never match everything.
//!
//! The index is a trie of filter tokens, so a lookup walks the subject's tokens once per
//! branch a wildcard opens, whatever the number of filters: 10,000 parked subscriptions cost a
//! wake-up a few map lookups, not 10,000 comparisons.

use std::collections::{HashMap, HashSet};
use std::hash::Hash;

/// Filter subjects registered under keys; [`SubjectIndex::matching`] answers which keys a
/// subject concerns.
#[derive(Debug)]
pub struct SubjectIndex<K> {
    root: Node<K>,
    /// Each key's filters, to remove them again.
    filters: HashMap<K, Vec<String>>,
}

#[derive(Debug)]
struct Node<K> {
    literal: HashMap<String, Node<K>>,
    /// The `*` child.
    any: Option<Box<Node<K>>>,
    /// Keys whose filter ends here.
    here: HashSet<K>,
    /// Keys whose filter ends with `>` after this node.
    rest: HashSet<K>,
}

impl<K> Default for Node<K> {
    fn default() -> Node<K> {
        Node {
            literal: HashMap::new(),
            any: None,
            here: HashSet::new(),
            rest: HashSet::new(),
        }
    }
}

impl<K> Default for SubjectIndex<K> {
    fn default() -> SubjectIndex<K> {
        SubjectIndex {
            root: Node::default(),
            filters: HashMap::new(),
        }
    }
}

impl<K: Clone + Eq + Hash> SubjectIndex<K> {
    /// Registers `key` for `filters`, replacing what it was registered for before.
    pub fn insert(&mut self, key: K, filters: Vec<String>) {
        self.remove(&key);
        for filter in &filters {
            let mut node = &mut self.root;
            let mut tokens = filter.split('.').peekable();
            let mut ended_with_rest = false;
            while let Some(token) = tokens.next() {
                if token == ">" && tokens.peek().is_none() {
                    node.rest.insert(key.clone());
                    ended_with_rest = true;
                    break;
                }
                node = if token == "*" {
                    node.any.get_or_insert_with(Box::default)
                } else {
                    node.literal.entry(token.to_owned()).or_default()
                };
            }
            if !ended_with_rest {
                node.here.insert(key.clone());
            }
        }
        self.filters.insert(key, filters);
    }

    /// Forgets `key`; true when it was registered.
    pub fn remove(&mut self, key: &K) -> bool {
        let Some(filters) = self.filters.remove(key) else {
            return false;
        };
        for filter in &filters {
            let tokens: Vec<&str> = filter.split('.').collect();
            remove_from(&mut self.root, &tokens, key);
        }
        true
    }

    /// How many keys are registered.
    pub fn len(&self) -> usize {
        self.filters.len()
    }

    pub fn is_empty(&self) -> bool {
        self.filters.is_empty()
    }

    /// Whether `key` is registered.
    pub fn contains(&self, key: &K) -> bool {
        self.filters.contains_key(key)
    }

    /// The keys one of whose filters matches `subject`, each once.
    pub fn matching(&self, subject: &str) -> HashSet<K> {
        let tokens: Vec<&str> = subject.split('.').collect();
        let mut found = HashSet::new();
        collect(&self.root, &tokens, &mut found);
        found
    }

    /// Removes and returns every key.
    pub fn drain(&mut self) -> Vec<K> {
        self.root = Node::default();
        self.filters.drain().map(|(key, _)| key).collect()
    }
}

fn collect<K: Clone + Eq + Hash>(node: &Node<K>, tokens: &[&str], found: &mut HashSet<K>) {
    let Some((first, rest)) = tokens.split_first() else {
        found.extend(node.here.iter().cloned());
        return;
    };
    // `>` needs at least one token, which `first` is.
    found.extend(node.rest.iter().cloned());
    if let Some(next) = node.literal.get(*first) {
        collect(next, rest, found);
    }
    if let Some(next) = &node.any {
        collect(next, rest, found);
    }
}

/// Removes `key` from the filter `tokens` leads to; true when `node` is left empty.
fn remove_from<K: Eq + Hash>(node: &mut Node<K>, tokens: &[&str], key: &K) -> bool {
    match tokens.split_first() {
        None => {
            node.here.remove(key);
        }
        Some((&">", [])) => {
            node.rest.remove(key);
        }
        Some((&"*", rest)) => {
            if let Some(next) = node.any.as_mut()
                && remove_from(next, rest, key)
            {
                node.any = None;
            }
        }
        Some((token, rest)) => {
            if let Some(next) = node.literal.get_mut(*token)
                && remove_from(next, rest, key)
            {
                node.literal.remove(*token);
            }
        }
    }
    node.literal.is_empty() && node.any.is_none() && node.here.is_empty() && node.rest.is_empty()
}

/// Whether the NATS filter `filter` matches the concrete `subject` (the rules above, one
/// filter at a time: what the index answers for many).
pub fn filter_matches(filter: &str, subject: &str) -> bool {
    let mut filter = filter.split('.').peekable();
    let mut subject = subject.split('.');
    loop {
        match (filter.next(), subject.next()) {
            (Some(">"), Some(_)) if filter.peek().is_none() => return true,
            (Some("*"), Some(_)) => {}
            (Some(want), Some(token)) if want == token => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests;

//! Telling a leftover from something with a living owner. Stale entries carry our mark but are
//! not wanted by this instance: an earlier run's address, link or rule, or those of another
//! instance running beside this one (a DaemonSet surge rollout). A leftover stays gone once
//! removed; an entry with a living owner comes back. Collection therefore remembers what it
//! removed, and an entry that comes back is left alone for [`YIELD_PASSES`] passes (one pass per
//! interval sync) before it is tried again. So two instances side by side never fight, and once
//! one is gone without cleaning up, the survivor collects its leftovers within ten intervals.

use std::collections::{HashMap, HashSet};
use std::hash::Hash;

/// How many collection passes an entry that came back is left alone.
pub const YIELD_PASSES: u64 = 10;

/// What one pass decided about the stale entries it was shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict<K> {
    /// Remove these now.
    pub remove: Vec<K>,
    /// These came back after an earlier removal: left alone from now on, for [`YIELD_PASSES`].
    pub yielded: Vec<K>,
}

/// The memory of one kind of entry (addresses, links or rules) across passes.
#[derive(Debug)]
pub struct StaleMemory<K> {
    pass: u64,
    /// Removed by an earlier pass and not seen since.
    removed: HashSet<K>,
    /// Left alone until the pass of this number.
    yielding: HashMap<K, u64>,
}

impl<K> Default for StaleMemory<K> {
    fn default() -> Self {
        Self {
            pass: 0,
            removed: HashSet::new(),
            yielding: HashMap::new(),
        }
    }
}

impl<K: Clone + Eq + Hash> StaleMemory<K> {
    /// One collection pass over the stale entries observed now.
    pub fn pass(&mut self, stale: &[K]) -> Verdict<K> {
        self.pass += 1;
        let pass = self.pass;
        // What was removed and stayed away was a leftover: forget it.
        self.removed.retain(|key| stale.contains(key));
        self.yielding.retain(|_, until| *until > pass);
        let mut verdict = Verdict {
            remove: Vec::new(),
            yielded: Vec::new(),
        };
        for key in stale {
            if self.yielding.contains_key(key) {
                continue;
            }
            if self.removed.remove(key) {
                self.yielding.insert(key.clone(), pass + YIELD_PASSES);
                verdict.yielded.push(key.clone());
            } else if !verdict.remove.contains(key) {
                verdict.remove.push(key.clone());
            }
        }
        verdict
    }

    /// Records that `key` was removed by this pass.
    pub fn removed(&mut self, key: K) {
        self.removed.insert(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs passes where the entry `a` is present (`true`) or gone, removing what the verdict
    /// says and letting a living owner put it straight back; returns each pass's verdict.
    fn passes(owner_alive: bool, count: usize) -> Vec<Verdict<&'static str>> {
        let mut memory = StaleMemory::default();
        let mut present = true;
        let mut verdicts = Vec::new();
        for _ in 0..count {
            let stale: Vec<&str> = if present { vec!["a"] } else { vec![] };
            let verdict = memory.pass(&stale);
            for key in &verdict.remove {
                memory.removed(*key);
                present = owner_alive;
            }
            verdicts.push(verdict);
        }
        verdicts
    }

    #[test]
    fn a_leftover_is_removed_once_and_forgotten() {
        let verdicts = passes(false, 5);
        assert_eq!(verdicts[0].remove, vec!["a"]);
        assert!(verdicts[1..]
            .iter()
            .all(|v| v.remove.is_empty() && v.yielded.is_empty()));
    }

    #[test]
    fn an_entry_that_comes_back_is_left_alone_for_ten_passes_then_tried_again() {
        let verdicts = passes(true, 25);
        assert_eq!(verdicts[0].remove, vec!["a"]);
        assert_eq!(verdicts[1].yielded, vec!["a"], "came back: yield, once");
        for (pass, verdict) in verdicts.iter().enumerate().skip(2).take(9) {
            assert!(
                verdict.remove.is_empty() && verdict.yielded.is_empty(),
                "pass {pass}: {verdict:?}"
            );
        }
        assert_eq!(verdicts[11].remove, vec!["a"], "ten passes later: again");
        assert_eq!(verdicts[12].yielded, vec!["a"]);
        assert!(verdicts[13].remove.is_empty());
        assert_eq!(verdicts[22].remove, vec!["a"]);
    }

    #[test]
    fn a_yielded_entry_whose_owner_is_gone_is_collected_within_ten_passes() {
        let mut memory = StaleMemory::default();
        assert_eq!(memory.pass(&["a"]).remove, vec!["a"]);
        memory.removed("a");
        assert_eq!(memory.pass(&["a"]).yielded, vec!["a"]);
        // The owner dies now without cleaning up: "a" stays. It goes at the tenth pass.
        for _ in 0..9 {
            assert_eq!(memory.pass(&["a"]).remove, Vec::<&str>::new());
        }
        assert_eq!(memory.pass(&["a"]).remove, vec!["a"]);
        memory.removed("a");
        assert_eq!(
            memory.pass(&[]),
            Verdict {
                remove: vec![],
                yielded: vec![]
            }
        );
    }

    #[test]
    fn duplicates_in_one_pass_are_removed_once() {
        let mut memory = StaleMemory::default();
        assert_eq!(memory.pass(&["a", "a", "b"]).remove, vec!["a", "b"]);
    }
}

//! Telling a leftover from something with a living owner. Stale entries carry our mark but are
//! not wanted by this instance: an earlier run's address, link or rule, or those of another
//! instance running beside this one (a DaemonSet surge rollout). A leftover stays gone once
//! removed; an entry with a living owner comes back. Collection therefore remembers what it
//! removed, and an entry that comes back is left alone for [`YIELD_PASSES`] passes (one pass per
//! interval sync) before it is tried again. So two instances side by side never fight, and once
//! one is gone without cleaning up, the survivor collects its leftovers within ten intervals.
//!
//! Two instances that stay side by side (two DaemonSets with different addresses: not a setup
//! this program supports, one address per node is) would still take each other's entry away
//! for a moment every time the yield ends. Each time an entry comes back again, its yield is
//! therefore twice as long, up to [`MAX_YIELD_PASSES`]: such a pair touches each other's entries
//! a few times in the first hours, then twice a day at the default interval, and each removal is
//! logged, counted (`yields_total` rising) and put back by its owner on the netlink event within
//! milliseconds. The survivor of a pair still collects the other's leftovers, within one yield.

use std::collections::{HashMap, HashSet};
use std::hash::Hash;

/// How many collection passes an entry that came back is left alone the first time.
pub const YIELD_PASSES: u64 = 10;

/// The longest yield: an entry that keeps coming back is left alone twice as long each time, up
/// to this (64 yields of ten: about 10.7 hours at the default `--sync-interval` of 1m0s).
pub const MAX_YIELD_PASSES: u64 = 640;

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
    /// The length of each entry's last yield, while it keeps coming back.
    last_yield: HashMap<K, u64>,
}

impl<K> Default for StaleMemory<K> {
    fn default() -> Self {
        Self {
            pass: 0,
            removed: HashSet::new(),
            yielding: HashMap::new(),
            last_yield: HashMap::new(),
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
        // An entry that is gone (its owner cleaned up) starts again at the shortest yield.
        let yielding = &self.yielding;
        self.last_yield
            .retain(|key, _| stale.contains(key) || yielding.contains_key(key));
        let mut verdict = Verdict {
            remove: Vec::new(),
            yielded: Vec::new(),
        };
        for key in stale {
            if self.yielding.contains_key(key) {
                continue;
            }
            if self.removed.remove(key) {
                let passes = self
                    .last_yield
                    .get(key)
                    .map_or(YIELD_PASSES, |last| (last * 2).min(MAX_YIELD_PASSES));
                self.last_yield.insert(key.clone(), passes);
                self.yielding.insert(key.clone(), pass + passes);
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

    /// The passes at which the verdicts removed `a`.
    fn removals(verdicts: &[Verdict<&str>]) -> Vec<usize> {
        let removed = verdicts.iter().enumerate();
        removed
            .filter(|(_, v)| !v.remove.is_empty())
            .map(|(pass, _)| pass)
            .collect()
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
    }

    /// Two instances that stay side by side: each yield twice as long as the one before, up to
    /// the longest.
    #[test]
    fn an_entry_that_keeps_coming_back_is_left_alone_twice_as_long_each_time_up_to_the_longest() {
        let verdicts = passes(true, 3000);
        // Removed at 0, back at 1 (yield 10), removed at 11, back at 12 (20), removed at 32, ...
        assert_eq!(
            removals(&verdicts),
            vec![0, 11, 32, 73, 154, 315, 636, 1277, 1918, 2559]
        );
    }

    /// Once the entry is gone (its owner cleaned up), one that comes back later starts again at
    /// the shortest yield.
    #[test]
    fn the_yield_starts_short_again_once_the_entry_was_gone() {
        let mut memory = StaleMemory::default();
        for round in 0..2 {
            assert_eq!(memory.pass(&["a"]).remove, vec!["a"], "round {round}");
            memory.removed("a");
            assert_eq!(memory.pass(&["a"]).yielded, vec!["a"]);
            for _ in 0..9 {
                assert!(memory.pass(&["a"]).remove.is_empty());
            }
            assert_eq!(memory.pass(&["a"]).remove, vec!["a"], "round {round}");
            memory.removed("a");
            // Its owner removes it itself now.
            memory.pass(&[]);
        }
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

//! What a journal's own commits tell it about each workflow's last recorded seq, so the
//! append-only check (see the crate docs) of a workflow this process drives costs a hash
//! lookup instead of a read.
//!
//! Both stores keep one: [`SledJournal`](crate::SledJournal), which reads the journal
//! on a miss (sled's lock makes the process the journal's only writer), and
//! `PgJournal`, which lets the server check a workflow it does not know (only the
//! worker driving a workflow appends to it; what it comes to drive otherwise is
//! forgotten at the claim). What is known stays true only as long as every write to the
//! journal goes through the commits that update it: each store forgets what a write
//! around them (a failed commit, a raw test hook, a claim) may have changed.

use std::collections::HashMap;

use crate::Error;

/// How many workflows' last seqs a [`LastSeqs`] remembers before starting over.
const LIMIT: usize = 1 << 16;

/// The last recorded seq of recently committed workflows: `Some(seq)`, or `None` for a
/// workflow started by this process that has no completion yet (its first commit of
/// steps needs no check). Only a cache: bounded, and a miss costs the slower check.
#[derive(Debug, Default)]
pub(crate) struct LastSeqs {
    last: HashMap<String, Option<u64>>,
}

impl LastSeqs {
    /// Checks a run of workflow `id`'s completions starting at seq `first`: `Ok(true)`
    /// if it is known to come after every recorded seq of `id`, `Ok(false)` if `id` is
    /// not known here (the caller checks some other way), [`Error::SeqOutOfOrder`] if
    /// it is known not to.
    pub(crate) fn check(&self, id: &str, first: u64) -> Result<bool, Error> {
        match self.last.get(id) {
            None => Ok(false),
            Some(&Some(last)) if first <= last => Err(Error::SeqOutOfOrder {
                workflow_id: id.to_owned(),
                seq: first,
                after: last,
            }),
            Some(_) => Ok(true),
        }
    }

    /// Makes room for `incoming` more entries: past the bound, everything known is
    /// forgotten.
    pub(crate) fn make_room(&mut self, incoming: usize) {
        if self.last.len() + incoming > LIMIT {
            self.last.clear();
        }
    }

    /// Workflow `id` was started (or started over) by a commit: it has no completion.
    pub(crate) fn started(&mut self, id: &str) {
        self.last.insert(id.to_owned(), None);
    }

    /// A commit recorded `id`'s completions up to seq `last`.
    pub(crate) fn appended(&mut self, id: &str, last: u64) {
        match self.last.get_mut(id) {
            Some(known) => *known = Some(last),
            None => {
                self.last.insert(id.to_owned(), Some(last));
            }
        }
    }

    /// Forgets workflow `id`: its next check is the slower one.
    pub(crate) fn forget(&mut self, id: &str) {
        self.last.remove(id);
    }

    /// Forgets every workflow.
    pub(crate) fn clear(&mut self) {
        self.last.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_known_workflow_refuses_a_run_at_or_before_its_last_seq_and_an_unknown_one_is_left_to_the_caller(
    ) {
        let mut seqs = LastSeqs::default();
        assert!(matches!(seqs.check("a", 0), Ok(false)));
        seqs.started("a");
        assert!(matches!(seqs.check("a", 0), Ok(true)));
        seqs.appended("a", 4);
        assert!(matches!(seqs.check("a", 5), Ok(true)));
        for first in [0, 4] {
            match seqs.check("a", first) {
                Err(Error::SeqOutOfOrder {
                    workflow_id,
                    seq,
                    after: 4,
                }) => assert_eq!((workflow_id.as_str(), seq), ("a", first)),
                other => panic!("{other:?}"),
            }
        }
        seqs.forget("a");
        assert!(matches!(seqs.check("a", 0), Ok(false)));
    }

    #[test]
    fn past_its_bound_it_forgets_everything() {
        let mut seqs = LastSeqs::default();
        seqs.appended("a", 1);
        seqs.make_room(LIMIT - 1);
        assert!(matches!(seqs.check("a", 2), Ok(true)));
        seqs.make_room(LIMIT);
        assert!(matches!(seqs.check("a", 0), Ok(false)));
    }
}

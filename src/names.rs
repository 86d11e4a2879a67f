//! Step names, interned once per thread and shared by every workflow on it.
//!
//! Steps mostly repeat a few names, across steps and across workflows: a replay of
//! 100,000 "charge" steps should not allocate 100,000 copies of "charge", and a million
//! parked workflows should not each keep their own "ordo.sleep". A runtime lives on one
//! thread, so the table is thread-local (`Rc`, no locking); runtimes sharing a thread
//! share it, which is harmless for immutable strings.
//!
//! Names made at run time (`format!("reserve-{item}")`) could grow the table forever,
//! so it stops taking new names at [`MAX_SHARED_NAMES`]; past that, a new name gets its
//! own allocation, freed with the last step that uses it.

use std::cell::RefCell;
use std::collections::HashSet;
use std::rc::Rc;

/// How many distinct names the table keeps (a few hundred KiB at most).
const MAX_SHARED_NAMES: usize = 4096;

#[derive(Default)]
struct Table {
    shared: HashSet<Rc<str>>,
    /// The name asked for last: steps come in runs of one name (a `join_all` of 64
    /// "charge" steps, their 64 deliveries), which this answers with a comparison
    /// instead of a hash.
    last: Option<Rc<str>>,
}

thread_local! {
    static NAMES: RefCell<Table> = RefCell::new(Table::default());
}

/// The shared copy of `name`, added to the table if new and the table is not full.
pub(crate) fn intern(name: &str) -> Rc<str> {
    NAMES.with(|table| {
        let mut table = table.borrow_mut();
        if let Some(last) = &table.last {
            if **last == *name {
                return Rc::clone(last);
            }
        }
        let shared = match table.shared.get(name) {
            Some(shared) => Rc::clone(shared),
            None => {
                let shared: Rc<str> = Rc::from(name);
                if table.shared.len() < MAX_SHARED_NAMES {
                    table.shared.insert(Rc::clone(&shared));
                }
                shared
            }
        };
        table.last = Some(Rc::clone(&shared));
        shared
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_is_allocated_once_until_the_table_is_full() {
        let a = intern("names-test");
        let b = intern("names-test");
        assert!(Rc::ptr_eq(&a, &b));
        for i in 0..MAX_SHARED_NAMES {
            intern(&format!("filler-{i}"));
        }
        let c = intern("names-test-late");
        intern("names-test");
        let d = intern("names-test-late");
        assert_eq!(c, d);
        assert!(!Rc::ptr_eq(&c, &d), "a full table takes no new names");
        assert!(Rc::ptr_eq(&a, &intern("names-test")));
    }

    #[test]
    fn a_run_of_one_name_shares_one_copy_even_past_a_full_table() {
        for i in 0..MAX_SHARED_NAMES {
            intern(&format!("filler-{i}"));
        }
        let first = intern("names-test-run");
        let second = intern("names-test-run");
        assert!(Rc::ptr_eq(&first, &second));
        assert_eq!(&*second, "names-test-run");
    }
}

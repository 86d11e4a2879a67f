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

thread_local! {
    static NAMES: RefCell<HashSet<Rc<str>>> = RefCell::new(HashSet::new());
}

/// The shared copy of `name`, added to the table if new and the table is not full.
pub(crate) fn intern(name: &str) -> Rc<str> {
    NAMES.with(|names| {
        let mut names = names.borrow_mut();
        if let Some(shared) = names.get(name) {
            return Rc::clone(shared);
        }
        let shared: Rc<str> = Rc::from(name);
        if names.len() < MAX_SHARED_NAMES {
            names.insert(Rc::clone(&shared));
        }
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
        let d = intern("names-test-late");
        assert_eq!(c, d);
        assert!(!Rc::ptr_eq(&c, &d), "a full table takes no new names");
        assert!(Rc::ptr_eq(&a, &intern("names-test")));
    }
}

//! Start groups: the records of many direct starts in one sled entry (schema 10).
//!
//! sled costs about five microseconds per new key (a tree walk, a node copy, a split
//! every few inserts), whatever the value's size: measured alone, 10,000 inserts of
//! 80-byte values took 6.7 µs each. A start written as a key of its own (its `Pending`
//! index entry holding its record, schema 8) therefore cost more than a whole workflow's
//! other work, and starts ran at a third of the gathered-steps rate. Completions met the
//! same cost and are stored as runs (one entry per workflow per commit, see
//! [`key`](crate::key)); starts are many workflows, so a commit's starts share entries
//! instead: a *start group* holds the records of up to [`GROUP_BYTES`] of them.
//!
//! | key | value |
//! |---|---|
//! | `g` group number (`u64` BE) | per member: id length (`u16` BE), record length (`u32` BE), id, [`codec`](crate::codec) workflow record |
//!
//! A group stands for its members' `Pending` index entries: a member is a started,
//! pending workflow whose record is the one its group holds. It stays a member until a
//! commit writes anything else for it, which moves it out for good: a record of its own
//! (its end), a `Pending` entry of its own (a record rewritten while it stays pending),
//! its deletion. A listed id that has a record or an index entry of its own is no longer
//! a member; reads look at the group first, then at those keys, and the later read wins,
//! as a mark's record gives way to a record of its own. A group is removed by the commit
//! that moves its last member out; a deletion rewrites the group without the deleted id
//! (a listed id with no record of its own would otherwise read as a member again).
//!
//! The journal keeps which group lists each id in memory ([`StartGroups`]), read from
//! the groups at open (two reads per listed id): a start looks up nothing, an end knows
//! without a read that no `Pending` entry of its own is to be removed.

use std::collections::HashMap;

use crate::codec;
use crate::record::WorkflowRecord;
use crate::Error;

/// Leading byte of start groups.
pub(crate) const GROUP: u8 = b'g';

/// The prefix of every start group.
pub(crate) const GROUP_PREFIX: &[u8] = &[GROUP];

/// The most bytes a start group's value takes. sled writes a node whose serialized size
/// passes a quarter of its 512 KiB segments to a blob file of its own (a file and an
/// `fsync` more per commit); a leaf node holds up to 17 entries, so groups of 4 KiB keep
/// every node inline. 10,000 starts of small records take about 200 groups, not 10,000
/// keys.
pub(crate) const GROUP_BYTES: usize = 4 * 1024;

/// Records longer than this are not grouped: they keep an index entry of their own.
pub(crate) const MAX_GROUPED_RECORD: usize = 1024;

/// The bytes a member takes before its id and record.
const MEMBER_HEADER: usize = 2 + 4;

/// The key of group `number`.
pub(crate) fn key(number: u64) -> [u8; 9] {
    let mut out = [0; 9];
    out[0] = GROUP;
    out[1..].copy_from_slice(&number.to_be_bytes());
    out
}

/// The group number in a group key.
pub(crate) fn number(key: &[u8]) -> Result<u64, Error> {
    match key.split_first() {
        Some((&GROUP, rest)) => rest
            .try_into()
            .map(u64::from_be_bytes)
            .map_err(|_| codec::corrupt(key, "start group key is not 8 bytes".into())),
        _ => Err(codec::corrupt(key, "not a start group key".into())),
    }
}

/// Appends a member (`id` and its encoded `record`) to the group value `out`.
pub(crate) fn push_member(id: &str, record: &[u8], out: &mut Vec<u8>) {
    // Ids are at most `u16::MAX` bytes (`key::check_id`), grouped records at most
    // `MAX_GROUPED_RECORD`.
    out.extend_from_slice(&(id.len() as u16).to_be_bytes());
    out.extend_from_slice(&(record.len() as u32).to_be_bytes());
    out.extend_from_slice(id.as_bytes());
    out.extend_from_slice(record);
}

/// The bytes `id` and its `record` take in a group.
pub(crate) fn member_len(id: &str, record: &[u8]) -> usize {
    MEMBER_HEADER + id.len() + record.len()
}

/// The members of group value `value` (stored under `key`): `(id, encoded record)`, in
/// the order they were written.
pub(crate) fn members<'v>(key: &[u8], value: &'v [u8]) -> Result<Vec<(&'v str, &'v [u8])>, Error> {
    let mut out = Vec::new();
    let mut rest = value;
    while !rest.is_empty() {
        let bad = |reason: &str| codec::corrupt(key, format!("start group {reason}"));
        let (header, tail) = rest
            .split_first_chunk::<MEMBER_HEADER>()
            .ok_or_else(|| bad("ends inside a member's lengths"))?;
        let id_len = usize::from(u16::from_be_bytes([header[0], header[1]]));
        let record_len = u32::from_be_bytes([header[2], header[3], header[4], header[5]]);
        let record_len = usize::try_from(record_len).map_err(|_| bad("record too long"))?;
        if tail.len() < id_len || tail.len() - id_len < record_len {
            return Err(bad("ends inside a member"));
        }
        let (id, tail) = tail.split_at(id_len);
        let (record, tail) = tail.split_at(record_len);
        let id = std::str::from_utf8(id).map_err(|_| bad("member id is not UTF-8"))?;
        out.push((id, record));
        rest = tail;
    }
    Ok(out)
}

/// The record group value `value` holds for `id`, decoded, if it lists `id`.
pub(crate) fn find(key: &[u8], value: &[u8], id: &str) -> Result<Option<WorkflowRecord>, Error> {
    for (member, record) in members(key, value)? {
        if member == id {
            return codec::decode_workflow(key, id, record).map(Some);
        }
    }
    Ok(None)
}

/// Which group lists an id, and whether it is still a member there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Listing {
    /// The group's number.
    pub(crate) group: u64,
    /// Still a member: nothing moved it out yet.
    pub(crate) live: bool,
}

/// The stored groups as the journal keeps them in memory: which group lists each id,
/// and how many members each still has. Changed only after a commit is applied.
#[derive(Debug, Default)]
pub(crate) struct StartGroups {
    /// Every id a stored group lists.
    listed: HashMap<Box<str>, Listing>,
    /// Each stored group's number, with how many members it still has.
    live: HashMap<u64, u32>,
    /// The number the next group takes.
    pub(crate) next: u64,
    /// Groups left with no member at open (a crash between a member's move and the
    /// group's removal cannot happen, but a build that stopped grouping could leave
    /// them): the next commit removes them.
    pub(crate) empty: Vec<u64>,
}

impl StartGroups {
    /// Reads every stored group of `db`; `moved(id)` says whether `id` has a record or a
    /// `Pending` index entry of its own (then it is no longer a member).
    pub(crate) fn load(
        db: &::sled::Db,
        mut moved: impl FnMut(&str) -> Result<bool, Error>,
    ) -> Result<StartGroups, Error> {
        let mut groups = StartGroups::default();
        for entry in db.scan_prefix(GROUP_PREFIX) {
            let (k, value) = entry?;
            let number = number(&k)?;
            let mut live = 0;
            for (id, _) in members(&k, &value)? {
                let is_live = !moved(id)?;
                let listing = Listing {
                    group: number,
                    live: is_live,
                };
                // Groups are read in number order: a later listing is the newer one.
                if let Some(old) = groups.listed.insert(id.into(), listing) {
                    if old.live {
                        groups.leave(old.group);
                    }
                }
                live += u32::from(is_live);
            }
            groups.live.insert(number, live);
            groups.next = number + 1;
        }
        groups.empty = groups
            .live
            .iter()
            .filter(|(_, &live)| live == 0)
            .map(|(&number, _)| number)
            .collect();
        groups.empty.sort_unstable();
        Ok(groups)
    }

    /// Whether no group is stored.
    pub(crate) fn is_empty(&self) -> bool {
        self.live.is_empty()
    }

    /// Where `id` is listed, if anywhere.
    pub(crate) fn listing(&self, id: &str) -> Option<Listing> {
        self.listed.get(id).copied()
    }

    /// The group `id` is a member of, if it is one.
    pub(crate) fn member_of(&self, id: &str) -> Option<u64> {
        self.listing(id).filter(|l| l.live).map(|l| l.group)
    }

    /// How many members group `number` still has.
    pub(crate) fn members_left(&self, number: u64) -> u32 {
        self.live.get(&number).copied().unwrap_or(0)
    }

    /// Every member, by group.
    pub(crate) fn members_by_group(&self) -> HashMap<u64, Vec<&str>> {
        let mut out: HashMap<u64, Vec<&str>> = HashMap::new();
        for (id, listing) in &self.listed {
            if listing.live {
                out.entry(listing.group).or_default().push(id);
            }
        }
        out
    }

    /// One member of `group` less.
    fn leave(&mut self, group: u64) {
        if let Some(live) = self.live.get_mut(&group) {
            *live = live.saturating_sub(1);
        }
    }

    /// Takes in what an applied commit did (see [`GroupChanges`]).
    pub(crate) fn apply(&mut self, changes: &mut GroupChanges) {
        for id in changes.moved.drain(..) {
            if let Some(listing) = self.listed.get_mut(id.as_str()) {
                if std::mem::replace(&mut listing.live, false) {
                    let group = listing.group;
                    self.leave(group);
                }
            }
        }
        for id in changes.unlisted.drain(..) {
            self.listed.remove(id.as_str());
        }
        for (number, ids) in changes.removed.drain(..) {
            self.live.remove(&number);
            self.empty.retain(|&empty| empty != number);
            for id in ids {
                // Unless a newer group lists it.
                if self
                    .listed
                    .get(id.as_str())
                    .is_some_and(|l| l.group == number)
                {
                    self.listed.remove(id.as_str());
                }
            }
        }
        for (number, ids) in changes.written.drain(..) {
            self.live.insert(number, ids.len() as u32);
            for id in ids {
                let listing = Listing {
                    group: number,
                    live: true,
                };
                if let Some(old) = self.listed.insert(id.into_boxed_str(), listing) {
                    if old.live && old.group != number {
                        self.leave(old.group);
                    }
                }
            }
            self.next = self.next.max(number + 1);
        }
    }
}

/// What one commit does to the start groups, taken into [`StartGroups`] once applied.
#[derive(Debug, Default)]
pub(crate) struct GroupChanges {
    /// New groups: number and member ids.
    pub(crate) written: Vec<(u64, Vec<String>)>,
    /// Members moved out of their groups.
    pub(crate) moved: Vec<String>,
    /// Ids a rewritten group no longer lists (deleted workflows).
    pub(crate) unlisted: Vec<String>,
    /// Groups removed, with the ids they listed.
    pub(crate) removed: Vec<(u64, Vec<String>)>,
}

impl GroupChanges {
    /// Whether the commit changes nothing of the groups.
    pub(crate) fn is_empty(&self) -> bool {
        self.written.is_empty()
            && self.moved.is_empty()
            && self.unlisted.is_empty()
            && self.removed.is_empty()
    }

    /// Forgets everything (a commit that failed to encode).
    pub(crate) fn clear(&mut self) {
        self.written.clear();
        self.moved.clear();
        self.unlisted.clear();
        self.removed.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_group_lists_its_members_in_order_and_refuses_every_truncation() {
        let mut value = Vec::new();
        push_member("a", b"record-a", &mut value);
        push_member("bb", b"", &mut value);
        push_member("ccc", b"r", &mut value);
        assert_eq!(member_len("a", b"record-a"), 6 + 1 + 8);
        let k = key(7);
        assert_eq!(number(&k).ok(), Some(7));
        let listed = members(&k, &value).expect("a whole group");
        assert_eq!(
            listed,
            vec![
                ("a", &b"record-a"[..]),
                ("bb", &b""[..]),
                ("ccc", &b"r"[..])
            ]
        );
        let ends = [0, 15, 23, value.len()];
        for cut in 0..value.len() {
            let result = members(&k, &value[..cut]);
            if ends.contains(&cut) {
                assert!(result.is_ok(), "cut {cut}");
            } else {
                assert!(matches!(result, Err(Error::Corrupt { .. })), "cut {cut}");
            }
        }
    }
}

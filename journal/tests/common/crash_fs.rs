//! The files a power cut could leave, rebuilt from a traced run (in the spirit of the
//! ALICE study, "All File Systems Are Not Created Equal", OSDI 2014).
//!
//! The model, per file system object, at a cut (a trace line):
//! - a write or truncate of a file is durable once an `fsync`/`fdatasync` of that file
//!   *entered* after the write returned, and returned before the cut;
//! - a name created, renamed or removed in a directory is durable once an `fsync` of that
//!   directory did the same;
//! - anything else issued before the cut may be lost: dropped whole, or (writes) kept in
//!   part, in 4 KiB pieces, in any combination. `sync_file_range` makes nothing durable.
//!
//! Only the subtree `root` (a journal folder) and its entry in its parent are modelled;
//! the parent itself exists and is durable.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use super::strace::{Call, Event};

/// Which of the calls that are not durable at a cut a crash state keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    /// Every call not yet durable is lost.
    Nothing,
    /// Every call issued before the cut is kept: what a killed process leaves.
    Everything,
    /// The calls not yet durable reach the disk in the order they were issued, and the
    /// power fails at a random one, from this seed: those before it are kept, it is torn
    /// (a write keeps a random set of its 4 KiB pieces), those after it are lost.
    InOrder(u64),
    /// A random subset, from this seed: each call kept or dropped, a write sometimes
    /// torn into kept and lost 4 KiB pieces, regardless of the order they were issued in
    /// (a disk cache may reorder writes that were never flushed).
    Random(u64),
}

/// An operation on a file's contents.
#[derive(Debug, Clone)]
enum DataOp {
    Write { offset: u64, data: Vec<u8> },
    Truncate(u64),
}

/// An operation on a directory's entries.
#[derive(Debug, Clone)]
enum NameOp {
    Link { path: PathBuf, inode: usize },
    Unlink { path: PathBuf },
    Rename { from: PathBuf, to: PathBuf },
}

#[derive(Debug, Clone)]
struct Timed<T> {
    start: usize,
    end: usize,
    /// The directory inode (for name ops) or file inode (for data ops) it applies to.
    inode: usize,
    op: T,
}

/// A traced run seen as operations on inodes.
#[derive(Debug)]
pub struct History {
    root: PathBuf,
    parent: PathBuf,
    is_dir: Vec<bool>,
    data: Vec<Timed<DataOp>>,
    names: Vec<Timed<NameOp>>,
    /// `(start, end, inode)` of every fsync/fdatasync.
    syncs: Vec<(usize, usize, usize)>,
    /// Calls on the journal the model cannot replay.
    pub unmodelled: Vec<String>,
}

/// Inode 0: the journal folder's parent, which exists and is durable.
const PARENT: usize = 0;

impl History {
    /// Replays `events` against an in-memory namespace to find which inode each call
    /// touched.
    pub fn new(events: &[Event], root: &Path) -> History {
        let parent = root
            .parent()
            .expect("the journal has a parent")
            .to_path_buf();
        let mut h = History {
            root: root.to_path_buf(),
            parent: parent.clone(),
            is_dir: vec![true],
            data: Vec::new(),
            names: Vec::new(),
            syncs: Vec::new(),
            unmodelled: Vec::new(),
        };
        let mut live: HashMap<PathBuf, usize> = HashMap::new();
        live.insert(parent, PARENT);
        for e in events {
            let (start, end) = (e.start, e.end);
            match &e.call {
                Call::Open {
                    path,
                    create,
                    truncate,
                } if h.inside(path) => {
                    if *create && !live.contains_key(path) {
                        let inode = h.new_inode(false);
                        live.insert(path.clone(), inode);
                        h.name_op(
                            &live,
                            start,
                            end,
                            path,
                            NameOp::Link {
                                path: path.clone(),
                                inode,
                            },
                        );
                    }
                    if *truncate {
                        if let Some(&inode) = live.get(path) {
                            h.data.push(Timed {
                                start,
                                end,
                                inode,
                                op: DataOp::Truncate(0),
                            });
                        }
                    }
                }
                Call::Write { path, offset, data } if h.inside(path) => {
                    let inode = *live.get(path).unwrap_or_else(|| {
                        panic!("trace line {start}: write to unknown {}", path.display())
                    });
                    let op = DataOp::Write {
                        offset: *offset,
                        data: data.clone(),
                    };
                    h.data.push(Timed {
                        start,
                        end,
                        inode,
                        op,
                    });
                }
                Call::Truncate { path, len } if h.inside(path) => {
                    let inode = live[path];
                    h.data.push(Timed {
                        start,
                        end,
                        inode,
                        op: DataOp::Truncate(*len),
                    });
                }
                Call::Sync { path, .. } if h.inside(path) || *path == h.parent => {
                    h.syncs.push((start, end, live[path]));
                }
                Call::Mkdir { path } if h.inside(path) => {
                    let inode = h.new_inode(true);
                    live.insert(path.clone(), inode);
                    h.name_op(
                        &live,
                        start,
                        end,
                        path,
                        NameOp::Link {
                            path: path.clone(),
                            inode,
                        },
                    );
                }
                Call::Unlink { path } | Call::Rmdir { path } if h.inside(path) => {
                    live.remove(path);
                    h.name_op(
                        &live,
                        start,
                        end,
                        path,
                        NameOp::Unlink { path: path.clone() },
                    );
                }
                Call::Rename { from, to } if h.inside(from) || h.inside(to) => {
                    assert_eq!(
                        from.parent(),
                        to.parent(),
                        "renames across folders are not modelled"
                    );
                    if let Some(inode) = live.remove(from) {
                        live.insert(to.clone(), inode);
                    }
                    h.name_op(
                        &live,
                        start,
                        end,
                        to,
                        NameOp::Rename {
                            from: from.clone(),
                            to: to.clone(),
                        },
                    );
                }
                Call::Unmodelled {
                    name,
                    path: Some(path),
                } if h.inside(path) => {
                    h.unmodelled.push(format!("{name} on {}", path.display()));
                }
                _ => {}
            }
        }
        h
    }

    fn inside(&self, path: &Path) -> bool {
        path.starts_with(&self.root)
    }

    fn new_inode(&mut self, dir: bool) -> usize {
        self.is_dir.push(dir);
        self.is_dir.len() - 1
    }

    fn name_op(
        &mut self,
        live: &HashMap<PathBuf, usize>,
        start: usize,
        end: usize,
        path: &Path,
        op: NameOp,
    ) {
        let dir = path.parent().and_then(|p| live.get(p)).copied();
        let inode = dir.unwrap_or_else(|| panic!("no folder for {}", path.display()));
        self.names.push(Timed {
            start,
            end,
            inode,
            op,
        });
    }

    /// Whether `op` on `inode` is durable at `cut`.
    fn durable(&self, inode: usize, end: usize, cut: usize) -> bool {
        self.syncs
            .iter()
            .any(|&(s, e, i)| i == inode && s > end && e < cut)
    }

    /// How many calls issued before `cut` are not durable at it.
    pub fn volatile_at(&self, cut: usize) -> usize {
        let data = self
            .data
            .iter()
            .filter(|t| t.start < cut && !self.durable(t.inode, t.end, cut));
        let names = self
            .names
            .iter()
            .filter(|t| t.start < cut && !self.durable(t.inode, t.end, cut));
        data.count() + names.count()
    }

    /// Writes into `dest` (an empty folder standing for the journal's parent) the files a
    /// power cut at trace line `cut` could leave, as chosen by `keep`. Returns how many
    /// not-yet-durable calls it dropped or tore.
    pub fn crash_state(&self, cut: usize, keep: Keep, dest: &Path) -> usize {
        let mut rng = match keep {
            Keep::Random(seed) | Keep::InOrder(seed) => Some(fastrand::Rng::with_seed(seed)),
            _ => None,
        };
        // For `InOrder`: the issue line of the call the power cut tears.
        let torn_at = match (&mut rng, keep) {
            (Some(rng), Keep::InOrder(_)) => {
                let mut starts: Vec<usize> = (self.data.iter().map(|t| (t.start, t.end, t.inode)))
                    .chain(self.names.iter().map(|t| (t.start, t.end, t.inode)))
                    .filter(|&(start, end, inode)| start < cut && !self.durable(inode, end, cut))
                    .map(|(start, _, _)| start)
                    .collect();
                starts.sort_unstable();
                starts
                    .get(rng.usize(0..=starts.len()))
                    .copied()
                    .unwrap_or(usize::MAX)
            }
            _ => usize::MAX,
        };
        let mut lost = 0;
        // 0: drop, 1: keep, 2: tear.
        let choose = |rng: &mut Option<fastrand::Rng>, start: usize, can_tear: bool| -> u8 {
            match (keep, rng) {
                (Keep::Nothing, _) => 0,
                (Keep::Everything, _) => 1,
                (Keep::InOrder(_), _) if start < torn_at => 1,
                (Keep::InOrder(_), _) if start == torn_at && can_tear => 2,
                (Keep::InOrder(_), _) => 0,
                (Keep::Random(_), Some(rng)) => match rng.u8(0..10) {
                    0..=3 => 0,
                    4..=7 => 1,
                    _ if can_tear => 2,
                    _ => 0,
                },
                (Keep::Random(_), None) => unreachable!(),
            }
        };
        // Names: which path names which inode after the cut.
        let mut names: BTreeMap<PathBuf, usize> = BTreeMap::new();
        names.insert(self.parent.clone(), PARENT);
        for t in self.names.iter().filter(|t| t.start < cut) {
            if !self.durable(t.inode, t.end, cut) && choose(&mut rng, t.start, false) == 0 {
                lost += 1;
                continue;
            }
            match &t.op {
                NameOp::Link { path, inode } => {
                    names.insert(path.clone(), *inode);
                }
                NameOp::Unlink { path } => {
                    names.remove(path);
                }
                NameOp::Rename { from, to } => {
                    if let Some(inode) = names.remove(from) {
                        names.insert(to.clone(), inode);
                    }
                }
            }
        }
        // Contents of every file.
        let mut contents: HashMap<usize, Vec<u8>> = HashMap::new();
        for t in self.data.iter().filter(|t| t.start < cut) {
            let file = contents.entry(t.inode).or_default();
            let mode = if self.durable(t.inode, t.end, cut) {
                1
            } else {
                lost += 1;
                choose(&mut rng, t.start, matches!(t.op, DataOp::Write { .. }))
            };
            match (&t.op, mode) {
                (_, 0) => {}
                (DataOp::Truncate(len), _) => file.resize(*len as usize, 0),
                (DataOp::Write { offset, data }, 1) => write_at(file, *offset, data),
                (DataOp::Write { offset, data }, _) => {
                    let rng = rng.as_mut().expect("tearing needs a random state");
                    let mut at = 0usize;
                    while at < data.len() {
                        let here = *offset + at as u64;
                        let piece = (4096 - (here % 4096) as usize).min(data.len() - at);
                        if rng.bool() {
                            write_at(file, here, &data[at..at + piece]);
                        }
                        at += piece;
                    }
                }
            }
        }
        // A name is only reachable if its folder is.
        for (path, inode) in &names {
            if *inode == PARENT || !path.starts_with(&self.root) {
                continue;
            }
            let reachable = path
                .ancestors()
                .skip(1)
                .take_while(|a| a.starts_with(&self.parent) && *a != self.parent)
                .all(|a| names.get(a).is_some_and(|&i| self.is_dir[i]));
            if !reachable {
                continue;
            }
            let relative = path.strip_prefix(&self.parent).expect("inside the parent");
            let target = dest.join(relative);
            if self.is_dir[*inode] {
                std::fs::create_dir_all(&target).expect("create a folder of the crash state");
            } else {
                if let Some(folder) = target.parent() {
                    std::fs::create_dir_all(folder).expect("create a folder of the crash state");
                }
                let bytes = contents.get(inode).map(Vec::as_slice).unwrap_or(&[]);
                std::fs::write(&target, bytes).expect("write a file of the crash state");
            }
        }
        lost
    }
}

fn write_at(file: &mut Vec<u8>, offset: u64, data: &[u8]) {
    let offset = offset as usize;
    if file.len() < offset + data.len() {
        file.resize(offset + data.len(), 0);
    }
    file[offset..offset + data.len()].copy_from_slice(data);
}

//! Runs a child process under strace and reads back the file-system calls it made, in
//! order, with the bytes it wrote: what the durability and crash-state tests check.
//!
//! strace must be installed: a test that needs it fails (never skips) without it, since
//! a durability claim that is not checked is not a claim.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The system calls traced: every way the child writes, syncs or names a file.
/// `sync_file_range` is recorded but is no durability point (it flushes neither the
/// disk's cache nor metadata).
pub const TRACED: &str = "trace=write,pwrite64,writev,pwritev,pwritev2,fsync,fdatasync,\
sync_file_range,sync,syncfs,open,openat,creat,lseek,rename,renameat,renameat2,unlink,\
unlinkat,mkdir,mkdirat,rmdir,ftruncate,truncate,fallocate";

/// One completed system call.
#[derive(Debug, Clone)]
pub struct Event {
    /// The trace line where the call was entered: what it can depend on happened before.
    pub start: usize,
    /// The trace line where it returned: what happens after may depend on it.
    pub end: usize,
    /// What it did.
    pub call: Call,
}

/// The calls the tests model, with paths made absolute.
#[derive(Debug, Clone)]
pub enum Call {
    /// A file opened, maybe created or truncated.
    Open {
        path: PathBuf,
        create: bool,
        truncate: bool,
    },
    /// Bytes written at `offset` (the file position for `write`).
    Write {
        path: PathBuf,
        offset: u64,
        data: Vec<u8>,
    },
    /// Bytes written to standard output: where the child says what it acknowledged.
    Stdout(Vec<u8>),
    /// `fsync` or `fdatasync` (both make the file's data and size durable).
    Sync {
        path: PathBuf,
        data_only: bool,
    },
    /// `sync_file_range`: starts writeback, durable nothing.
    SyncRange {
        path: PathBuf,
    },
    Rename {
        from: PathBuf,
        to: PathBuf,
    },
    Unlink {
        path: PathBuf,
    },
    Mkdir {
        path: PathBuf,
    },
    Rmdir {
        path: PathBuf,
    },
    Truncate {
        path: PathBuf,
        len: u64,
    },
    /// A call the model does not handle (`writev`, `sync`, a growing `fallocate`...), so
    /// the test can fail if one touches the journal.
    Unmodelled {
        name: String,
        path: Option<PathBuf>,
    },
}

/// A traced run: the child's output and its calls.
pub struct Traced {
    pub output: Output,
    pub events: Vec<Event>,
}

impl Traced {
    /// The lines the child printed, each with the trace line of the `write` that printed
    /// it (its start).
    pub fn stdout_lines(&self) -> Vec<(usize, String)> {
        let mut lines = Vec::new();
        let mut pending = String::new();
        for event in &self.events {
            if let Call::Stdout(bytes) = &event.call {
                for &b in bytes {
                    if b == b'\n' {
                        lines.push((event.start, std::mem::take(&mut pending)));
                    } else {
                        pending.push(char::from(b));
                    }
                }
            }
        }
        lines
    }
}

/// Runs `child` under `strace -f` (following its threads) and parses the trace.
///
/// Panics, failing the test, if strace is missing or the child fails.
pub fn run(child: &Command, trace_file: &Path) -> Traced {
    let mut cmd = Command::new("strace");
    cmd.args(["-f", "-y", "-xx", "-s", "67108864", "-e", TRACED, "-o"])
        .arg(trace_file)
        .arg(child.get_program())
        .args(child.get_args());
    for (key, value) in child.get_envs() {
        match value {
            Some(value) => cmd.env(key, value),
            None => cmd.env_remove(key),
        };
    }
    let output = match cmd.output() {
        Ok(output) => output,
        Err(err) => panic!(
            "cannot run strace ({err}): this test needs it to observe the child's system \
             calls; install it (apt-get install strace)"
        ),
    };
    assert!(
        output.status.success(),
        "the child under strace failed: {}\nstdout: {}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let text = std::fs::read_to_string(trace_file).expect("read the strace output");
    let cwd = std::env::current_dir().expect("current dir");
    Traced {
        output,
        events: parse(&text, &cwd),
    }
}

/// Parses strace output made with `-f -y -xx`.
pub fn parse(text: &str, cwd: &Path) -> Vec<Event> {
    let mut events = Vec::new();
    // Calls entered but not returned yet, per thread: (line, text up to the cut).
    let mut unfinished: HashMap<&str, (usize, String)> = HashMap::new();
    // File positions of descriptors, for `write` (threads of one process share them).
    let mut positions: HashMap<i64, u64> = HashMap::new();
    for (line_no, line) in text.lines().enumerate() {
        let line = line.trim_end();
        let Some((pid, rest)) = line.split_once(char::is_whitespace) else {
            continue;
        };
        let rest = rest.trim_start();
        if rest.starts_with("+++") || rest.starts_with("---") {
            continue;
        }
        let (start, whole) = if let Some(head) = rest.strip_suffix("<unfinished ...>") {
            unfinished.insert(pid, (line_no, head.trim_end().to_owned()));
            continue;
        } else if rest.starts_with("<...") {
            let Some((_, tail)) = rest.split_once("resumed>") else {
                panic!("strace line {line_no}: cannot read {line:?}");
            };
            let Some((start, head)) = unfinished.remove(pid) else {
                continue; // entered before tracing began
            };
            (start, format!("{head}{tail}"))
        } else {
            (line_no, rest.to_owned())
        };
        if let Some(call) = parse_call(&whole, cwd, &mut positions) {
            events.push(Event {
                start,
                end: line_no,
                call,
            });
        }
    }
    events
}

/// One call's text, `name(args) = ret`, as a [`Call`]; `None` for failed calls and calls
/// that do not touch files.
fn parse_call(text: &str, cwd: &Path, positions: &mut HashMap<i64, u64>) -> Option<Call> {
    let open = text.find('(')?;
    let name = &text[..open];
    // strace pads resumed calls: `...)      = 6<path>`.
    let equals = text.rfind(" = ")?;
    let close = text[..equals].rfind(')')?;
    let args = split_args(&text[open + 1..close]);
    let ret = text[equals + 3..].trim();
    if ret.starts_with('-') || ret == "?" {
        return None; // failed, or never returned
    }
    let ret_number: i64 = ret
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let arg = |i: usize| args.get(i).map(String::as_str).unwrap_or("");
    let path_arg = |i: usize| absolute(cwd, &string(arg(i)));
    let at_arg = |dir: usize, i: usize| {
        let p = PathBuf::from(bytes_to_os(&string(arg(i))));
        if p.is_absolute() {
            p
        } else {
            fd_path(arg(dir)).map_or_else(|| cwd.join(&p), |dir| dir.join(&p))
        }
    };
    let call = match name {
        "open" | "openat" | "creat" => {
            let (flags, path) = match name {
                "open" => (arg(1), path_arg(0)),
                "openat" => (arg(2), at_arg(0, 1)),
                _ => ("O_CREAT|O_TRUNC", path_arg(0)),
            };
            positions.insert(ret_number, 0);
            Call::Open {
                path: fd_path(ret).unwrap_or(path),
                create: flags.contains("O_CREAT"),
                truncate: flags.contains("O_TRUNC"),
            }
        }
        "write" | "pwrite64" => {
            let fd = fd_number(arg(0));
            let mut data = string(arg(1));
            data.truncate(usize::try_from(ret_number).ok()?);
            if fd == 1 {
                return Some(Call::Stdout(data));
            }
            let offset = if name == "write" {
                let position = positions.entry(fd).or_insert(0);
                let at = *position;
                *position += data.len() as u64;
                at
            } else {
                arg(3).parse().ok()?
            };
            Call::Write {
                path: fd_path(arg(0))?,
                offset,
                data,
            }
        }
        "lseek" => {
            positions.insert(fd_number(arg(0)), u64::try_from(ret_number).ok()?);
            return None;
        }
        "fsync" | "fdatasync" => Call::Sync {
            path: fd_path(arg(0))?,
            data_only: name == "fdatasync",
        },
        "sync_file_range" => Call::SyncRange {
            path: fd_path(arg(0))?,
        },
        "rename" => Call::Rename {
            from: path_arg(0),
            to: path_arg(1),
        },
        "renameat" | "renameat2" => Call::Rename {
            from: at_arg(0, 1),
            to: at_arg(2, 3),
        },
        "unlink" => Call::Unlink { path: path_arg(0) },
        "unlinkat" if arg(2).contains("AT_REMOVEDIR") => Call::Rmdir { path: at_arg(0, 1) },
        "unlinkat" => Call::Unlink { path: at_arg(0, 1) },
        "mkdir" => Call::Mkdir { path: path_arg(0) },
        "mkdirat" => Call::Mkdir { path: at_arg(0, 1) },
        "rmdir" => Call::Rmdir { path: path_arg(0) },
        "ftruncate" => Call::Truncate {
            path: fd_path(arg(0))?,
            len: arg(1).parse().ok()?,
        },
        "truncate" => Call::Truncate {
            path: path_arg(0),
            len: arg(1).parse().ok()?,
        },
        // A `fallocate` that keeps the size changes nothing a reader sees.
        "fallocate" if arg(1).contains("FALLOC_FL_KEEP_SIZE") => return None,
        _ => Call::Unmodelled {
            name: name.to_owned(),
            path: fd_path(arg(0)),
        },
    };
    Some(call)
}

/// Splits an argument list at top-level commas (strings are all `\xNN` with `-xx`, so
/// only brackets need tracking).
fn split_args(args: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut current = String::new();
    let mut in_string = false;
    for c in args.chars() {
        match c {
            '"' => in_string = !in_string,
            '<' | '[' | '{' if !in_string => depth += 1,
            '>' | ']' | '}' if !in_string => depth -= 1,
            ',' if !in_string && depth == 0 => {
                out.push(current.trim().to_owned());
                current.clear();
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    if !current.trim().is_empty() {
        out.push(current.trim().to_owned());
    }
    out
}

/// The bytes of a `-xx` string argument, `"\x61\x62"`.
fn string(arg: &str) -> Vec<u8> {
    assert!(
        !arg.ends_with("..."),
        "strace truncated a string argument: raise -s"
    );
    unhex(arg.trim_matches('"'))
}

fn unhex(escaped: &str) -> Vec<u8> {
    escaped
        .split("\\x")
        .filter(|piece| !piece.is_empty())
        .map(|piece| u8::from_str_radix(&piece[..2], 16).expect("a \\xNN byte"))
        .collect()
}

fn bytes_to_os(bytes: &[u8]) -> std::ffi::OsString {
    use std::os::unix::ffi::OsStringExt;
    std::ffi::OsString::from_vec(bytes.to_vec())
}

/// The path `-y` prints after a descriptor, `5<\x2f...>`.
fn fd_path(arg: &str) -> Option<PathBuf> {
    let inner = arg.split_once('<')?.1.strip_suffix('>')?;
    Some(PathBuf::from(bytes_to_os(&unhex(inner))))
}

fn fd_number(arg: &str) -> i64 {
    arg.split('<')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(-1)
}

fn absolute(cwd: &Path, bytes: &[u8]) -> PathBuf {
    let p = PathBuf::from(bytes_to_os(bytes));
    if p.is_absolute() {
        p
    } else {
        cwd.join(p)
    }
}

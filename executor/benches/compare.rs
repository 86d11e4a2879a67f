//! A noise-resistant side-by-side run of the same workloads as the `executor` bench:
//! the four executors take turns (in rotating order), round after round, and each reports its *minimum*
//! and median ns per operation — the minimum is what the code costs when no other
//! process interferes, which a shared 2-core machine rarely allows for long.
//!
//! `cargo bench -p ordo-executor --bench compare` (add `-- 200` for more rounds). For a
//! measure that does not move with the machine's load at all, `scripts/callgrind` counts
//! instructions per operation on the same workloads.

mod workloads;

use std::time::Instant;

use workloads::{trivial, yield_once, AsyncExecutor, Ordo, Pool, Subject, Tokio, N};

/// ns per operation of one iteration of `work`.
fn time<S: Subject>(subject: &mut S, work: fn(&mut S)) -> f64 {
    let start = Instant::now();
    work(subject);
    start.elapsed().as_nanos() as f64 / N as f64
}

struct Row {
    name: &'static str,
    samples: Vec<f64>,
}

impl Row {
    fn min(&self) -> f64 {
        self.samples.iter().copied().fold(f64::INFINITY, f64::min)
    }
    fn median(&self) -> f64 {
        let mut sorted = self.samples.clone();
        sorted.sort_by(f64::total_cmp);
        sorted[sorted.len() / 2]
    }
}

fn compare(name: &str, rounds: usize, works: [fn(&mut Subjects) -> f64; 4]) {
    let mut subjects = Subjects::new();
    let names = [Ordo::NAME, Pool::NAME, AsyncExecutor::NAME, Tokio::NAME];
    let mut rows: Vec<Row> = names
        .iter()
        .map(|&name| Row {
            name,
            samples: Vec::new(),
        })
        .collect();
    for work in &works {
        work(&mut subjects); // warm up: allocator, queues, slabs
    }
    for round in 0..rounds {
        // Rotate who goes first, so no executor always follows the same neighbour.
        for turn in 0..works.len() {
            let index = (round + turn) % works.len();
            let sample = works[index](&mut subjects);
            rows[index].samples.push(sample);
        }
    }
    let ordo = rows[0].min();
    println!("{name}");
    for row in &rows {
        println!(
            "  {:<30} min {:>7.1} ns/op   median {:>7.1} ns/op   ordo is {:.2}x faster (min)",
            row.name,
            row.min(),
            row.median(),
            row.min() / ordo
        );
    }
}

struct Subjects {
    ordo: Ordo,
    pool: Pool,
    async_executor: AsyncExecutor,
    tokio: Tokio,
}

impl Subjects {
    fn new() -> Self {
        Subjects {
            ordo: Ordo::new(),
            pool: Pool::new(),
            async_executor: AsyncExecutor::new(),
            tokio: Tokio::new(),
        }
    }
}

macro_rules! works {
    ($method:ident $(, $arg:expr)?) => {
        [
            |s: &mut Subjects| time(&mut s.ordo, |x| x.$method($($arg)?)),
            |s: &mut Subjects| time(&mut s.pool, |x| x.$method($($arg)?)),
            |s: &mut Subjects| time(&mut s.async_executor, |x| x.$method($($arg)?)),
            |s: &mut Subjects| time(&mut s.tokio, |x| x.$method($($arg)?)),
        ]
    };
}

fn main() {
    // `cargo bench` passes `--bench`; a bare number sets the rounds.
    let rounds = std::env::args()
        .skip(1)
        .find_map(|arg| arg.parse().ok())
        .unwrap_or(60);
    compare("spawn_complete_10k", rounds, works!(spawn_n, trivial));
    compare("spawn_yield_10k", rounds, works!(spawn_n, yield_once));
    compare("ping_pong_10k", rounds, works!(ping_pong_n));
}

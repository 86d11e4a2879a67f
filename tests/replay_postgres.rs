//! The catalogue's workflow shapes (concurrent steps, nested joins, spawned tasks,
//! retries, durable sleeps, messages, events, children, queues) crashed after every
//! commit and recovered under other latencies, on the PostgreSQL journal: each gives
//! what it gives on sled, and no recovery diverges. Skipped, saying so, without a
//! PostgreSQL server (`ORDO_REQUIRE_POSTGRES=1` makes that a failure).

use ordo::RuntimeBuilder;
use ordo_testkit::catalogue::{check_crash_replay_on, Shape};
use ordo_testkit::postgres::TestPostgres;
use ordo_testkit::{Env, JournalKind};

fn same_on_both(shape: Shape) {
    let register = move |b: RuntimeBuilder, env: Env| shape.register(b, env);
    let on_sled = check_crash_replay_on(&register, shape.order(), 3, 4, JournalKind::Sled);
    let on_postgres = check_crash_replay_on(&register, shape.order(), 3, 4, JournalKind::Postgres);
    assert_eq!(on_postgres, on_sled, "{shape:?}");
}

#[test]
fn every_shape_crashed_at_every_commit_recovers_on_postgres_as_on_sled() {
    if TestPostgres::shared().is_none() {
        eprintln!("skipped: no PostgreSQL server");
        return;
    }
    for shape in [
        Shape::JoinAll { n: 4 },
        Shape::NestedJoins { outer: 2, inner: 2 },
        Shape::TwoSequences { a: 2, b: 3 },
        Shape::SelectTimeout {
            timeout_ms: 20,
            biased: true,
        },
        Shape::Unordered { n: 3 },
        Shape::Spawned { tasks: 2 },
        Shape::Retry {
            fails: 2,
            max_attempts: 3,
        },
        Shape::Sleep { ms: 30 },
        Shape::Mailbox { n: 2 },
        Shape::Events { wait_ms: 20 },
        Shape::Children { n: 2 },
        Shape::Enqueue { n: 2 },
    ] {
        same_on_both(shape);
    }
}

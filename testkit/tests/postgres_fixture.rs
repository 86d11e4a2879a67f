//! `ordo_testkit::postgres::TestPostgres`: a throwaway cluster starts, hands out
//! separate databases `psql` can use, survives a restart with its data, and leaves
//! nothing behind when dropped. Skips (prints and returns) on machines without
//! PostgreSQL, unless `ORDO_REQUIRE_POSTGRES=1` makes that a failure.

use std::path::Path;
use std::process::Command;

use ordo_testkit::postgres::TestPostgres;

/// Runs one SQL command with `psql` against `url`; its unaligned, tuples-only output.
fn psql(bin_dir: &Path, url: &str, sql: &str) -> String {
    let out = Command::new(bin_dir.join("psql"))
        .args([
            "-X",
            "-q",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            url,
            "-c",
            sql,
        ])
        .output()
        .expect("running psql");
    assert!(
        out.status.success(),
        "psql {url} -c {sql:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn databases_are_separate_survive_a_restart_and_go_with_the_fixture() {
    let Some(pg) = TestPostgres::start() else {
        return;
    };
    let bin = pg.bin_dir().to_path_buf();
    assert_eq!(psql(&bin, pg.url(), "select 1"), "1");

    let a = pg.database("fixture-a");
    let b = pg.database("fixture-a");
    assert_ne!(a, b, "every call gets a database of its own");
    for url in [&a, &b] {
        assert_eq!(psql(&bin, url, "select 1"), "1");
    }
    psql(
        &bin,
        &a,
        "create table t (x int); insert into t values (42)",
    );
    assert_eq!(
        psql(
            &bin,
            &b,
            "select count(*) from pg_tables where tablename = 't'"
        ),
        "0",
        "a table of one database is not seen in another"
    );

    if pg.is_external() {
        eprintln!("skipped the restart and cleanup checks: external server");
        return;
    }
    let dir = pg
        .dir()
        .expect("a local cluster has a folder")
        .to_path_buf();
    assert!(dir.join("data").is_dir());

    pg.restart();
    assert_eq!(
        psql(&bin, &a, "select x from t"),
        "42",
        "data survives a restart"
    );
    assert_eq!(psql(&bin, &b, "select 1"), "1");

    pg.stop();
    pg.stop(); // stopping a stopped server is a no-op
    let down = Command::new(bin.join("psql"))
        .args(["-X", "-d", &a, "-c", "select 1"])
        .output()
        .expect("running psql");
    assert!(
        !down.status.success(),
        "a stopped server refuses connections"
    );
    pg.start_again();
    assert_eq!(psql(&bin, &a, "select x from t"), "42");

    drop(pg);
    assert!(!dir.exists(), "{} is removed on drop", dir.display());
}

#[test]
fn the_shared_cluster_is_one_per_process() {
    let Some(pg) = TestPostgres::shared() else {
        return;
    };
    let again = TestPostgres::shared().expect("the shared cluster started before");
    assert!(std::ptr::eq(pg, again));
    let url = pg.database("shared");
    assert!(
        url.starts_with("postgres") && url.contains("/shared_"),
        "{url}"
    );
    assert_eq!(psql(pg.bin_dir(), &url, "select 1"), "1");
}

#[test]
fn stop_panics_on_an_external_server_only() {
    let Some(pg) = TestPostgres::start() else {
        return;
    };
    if pg.is_external() {
        let stopped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| pg.stop()));
        assert!(stopped.is_err(), "stop must refuse an external server");
    } else {
        // Two clusters at once: separate ports, separate folders.
        let other = TestPostgres::start().expect("a second cluster");
        assert_ne!(pg.url(), other.url());
        assert_ne!(pg.dir(), other.dir());
    }
}

#[test]
fn a_postgres_journal_and_its_forks_take_their_databases_with_them() {
    let Some(pg) = TestPostgres::shared() else {
        return;
    };
    let exists = |url: &str| {
        let name = url.rsplit('/').next().expect("a database in the URL");
        psql(
            pg.bin_dir(),
            pg.url(),
            &format!("select count(*) from pg_database where datname = '{name}'"),
        ) == "1"
    };
    let journal = ordo_testkit::Journal::new(ordo_testkit::JournalKind::Postgres);
    drop(journal.builder().build().expect("a runtime on the journal"));
    let twin = journal.fork();
    let urls: Vec<String> = [&journal, &twin]
        .iter()
        .map(|j| match j {
            ordo_testkit::Journal::Postgres(url) => url.clone(),
            _ => unreachable!("a PostgreSQL journal forks into another"),
        })
        .collect();
    assert_ne!(urls[0], urls[1]);
    assert!(urls.iter().all(|url| exists(url)));

    drop((journal, twin));
    // Dropped on a thread of the testkit's own: wait for it, a minute at most.
    let began = std::time::Instant::now();
    while urls.iter().any(|url| exists(url)) {
        assert!(
            began.elapsed() < std::time::Duration::from_secs(60),
            "still there a minute after the drop: {urls:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

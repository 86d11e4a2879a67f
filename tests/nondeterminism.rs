//! A replay that diverges from the journal is detected, reported with both sides,
//! and leaves the journal untouched, so the original code can still recover it.

mod common;

use common::order::{original, renamed};
use common::{builder, recorded_steps};
use ordo::{Ctx, Error, RuntimeBuilder, Status};

fn fewer_steps(b: RuntimeBuilder) -> RuntimeBuilder {
    b.register("order", |ctx: Ctx, (): ()| async move {
        let a = ctx
            .step("reserve", || async { Ok::<_, String>(1u32) })
            .await?;
        Ok::<_, String>(a)
    })
}

/// A journal where "reserve" and "charge" are recorded and the workflow is pending.
fn interrupted() -> tempfile::TempDir {
    let dir = common::order::interrupted();
    assert_eq!(recorded_steps(dir.path(), "o-1").len(), 2);
    dir
}

fn recover_with(
    dir: &std::path::Path,
    code: fn(RuntimeBuilder) -> RuntimeBuilder,
) -> Result<Result<u32, String>, Error> {
    let rt = code(builder(dir)).build().expect("build");
    let report = rt.recover().expect("recover");
    assert_eq!(report.resumed, vec!["o-1".to_string()]);
    let h = rt.handle::<u32, String>("o-1").expect("handle");
    rt.block_on(h.result())
}

#[test]
fn renaming_a_step_is_reported_with_both_names_and_the_journal_still_recovers() {
    let dir = interrupted();
    let before = recorded_steps(dir.path(), "o-1");
    match recover_with(dir.path(), renamed) {
        Err(Error::NonDeterminism {
            workflow_id,
            step_id,
            recorded,
            found,
        }) => {
            assert_eq!((workflow_id.as_str(), step_id), ("o-1", 1));
            assert_eq!((recorded.as_str(), found.as_str()), ("charge", "bill"));
            let message = Error::NonDeterminism {
                workflow_id,
                step_id,
                recorded,
                found,
            }
            .to_string();
            assert!(
                message.contains("charge") && message.contains("bill"),
                "{message}"
            );
        }
        other => panic!("expected non-determinism, got {other:?}"),
    }
    // Untouched: same completions, still pending.
    assert_eq!(recorded_steps(dir.path(), "o-1"), before);
    let journal = ordo_testkit::store::open(dir.path());
    assert_eq!(
        journal.workflow("o-1").expect("read").map(|r| r.status),
        Some(Status::Pending)
    );
    drop(journal);

    // The original code recovers it: the two recorded steps replay, "ship" runs.
    assert_eq!(recover_with(dir.path(), original).expect("recovers"), Ok(6));
    assert_eq!(recorded_steps(dir.path(), "o-1").len(), 3);
}

#[test]
fn a_recorded_step_the_code_no_longer_creates_is_reported() {
    let dir = interrupted();
    match recover_with(dir.path(), fewer_steps) {
        Err(Error::NonDeterminism {
            step_id, recorded, ..
        }) => assert_eq!((step_id, recorded.as_str()), (1, "charge")),
        other => panic!("expected non-determinism, got {other:?}"),
    }
    assert_eq!(recover_with(dir.path(), original).expect("recovers"), Ok(6));
}

//! Every recorded value knows its type: a value read back as another type (after a code
//! change, or through a wrongly typed handle) is a `TypeMismatch` naming the workflow,
//! the value and both types, never a silently wrong value.

mod common;

use common::{builder, journal_dir};
use ordo::{Ctx, Error, RuntimeBuilder};

fn counts_u32(b: RuntimeBuilder) -> RuntimeBuilder {
    b.register("count", |ctx: Ctx, (): ()| async move {
        let n = ctx
            .step("count", || async { Ok::<_, String>(0u32) })
            .await?;
        ctx.step("more", || async { Ok::<_, String>(1u32) }).await?;
        Ok::<_, String>(n)
    })
}

fn counts_string(b: RuntimeBuilder) -> RuntimeBuilder {
    b.register("count", |ctx: Ctx, (): ()| async move {
        let n = ctx
            .step("count", || async { Ok::<_, String>(String::from("zero")) })
            .await?;
        ctx.step("more", || async { Ok::<_, String>(1u32) }).await?;
        Ok::<_, String>(n.len() as u32)
    })
}

#[test]
fn a_recorded_step_read_as_another_type_names_the_step_and_both_types() {
    let dir = journal_dir();
    {
        let rt = counts_u32(builder(dir.path()).halt_after_commits(1))
            .build()
            .expect("build");
        let h = rt
            .start::<_, u32, String>("count", "c-1", ())
            .expect("start");
        assert!(matches!(
            rt.block_on(h.result()),
            Err(Error::Stopped { .. })
        ));
    }
    let rt = counts_string(builder(dir.path())).build().expect("build");
    assert_eq!(rt.recover().expect("recover").resumed, ["c-1"]);
    let h = rt.handle::<u32, String>("c-1").expect("handle");
    let err = rt
        .block_on(h.result())
        .expect_err("the step's type changed");
    // Without fingerprints bincode reads the recorded 0u32 as "" and the run goes on.
    match &err {
        Error::TypeMismatch {
            workflow_id,
            what,
            expected,
            recorded,
            ..
        } => {
            assert_eq!(workflow_id, "c-1");
            assert_eq!(what, "the outcome of step 0 (\"count\")");
            assert_eq!(*expected, "alloc::string::String");
            assert_eq!(recorded, "u32");
        }
        other => panic!("{other}"),
    }
    assert!(
        err.to_string().contains("the journal recorded u32"),
        "{err}"
    );
}

#[test]
fn a_finished_workflow_read_through_a_wrongly_typed_handle_is_a_mismatch() {
    let dir = journal_dir();
    let rt = counts_u32(builder(dir.path())).build().expect("build");
    let h = rt
        .start::<_, u32, String>("count", "c-2", ())
        .expect("start");
    assert_eq!(rt.block_on(h.result()).expect("finishes"), Ok(0));
    drop((h, rt));

    let rt = counts_u32(builder(dir.path())).build().expect("build");
    let as_string = rt.handle::<String, String>("c-2").expect("handle");
    let err = rt.block_on(as_string.result()).expect_err("not a String");
    assert!(
        matches!(&err, Error::TypeMismatch { what, recorded, .. } if what == "output" && recorded == "u32"),
        "{err}"
    );
    let as_bool = rt.handle::<bool, String>("c-2").expect("handle");
    assert!(matches!(
        rt.block_on(as_bool.result()),
        Err(Error::TypeMismatch { .. })
    ));
    // The right type still reads it.
    let right = rt.handle::<u32, String>("c-2").expect("handle");
    assert_eq!(rt.block_on(right.result()).expect("reads"), Ok(0));
    // And a start with the wrong handle types is refused before anything runs.
    assert!(matches!(
        rt.start::<_, bool, String>("count", "c-3", ()),
        Err(Error::TypeMismatch { .. })
    ));
}

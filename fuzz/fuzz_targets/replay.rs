//! Workflow shapes with fuzzer-chosen latencies, outcomes, crash point and recovery
//! schedule; `ordo_testkit::catalogue` panics when a crash-and-replay invariant breaks.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| ordo_testkit::catalogue::replay(data));

#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| ordo_executor::fuzzing::executor_schedule(data));

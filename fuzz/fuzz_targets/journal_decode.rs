#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| ordo_journal::fuzzing::journal_decode(data));

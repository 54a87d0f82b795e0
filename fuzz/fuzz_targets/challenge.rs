#![no_main]
// Arbitrary bytes as challenge input: see kopeo::fuzzing::challenge.
libfuzzer_sys::fuzz_target!(|data: &[u8]| kopeo::fuzzing::challenge(data));

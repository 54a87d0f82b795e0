#![no_main]
// Arbitrary bytes as signature input: see kopeo::fuzzing::signature.
libfuzzer_sys::fuzz_target!(|data: &[u8]| kopeo::fuzzing::signature(data));

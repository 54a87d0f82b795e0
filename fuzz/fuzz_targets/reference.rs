#![no_main]
// Arbitrary bytes as reference input: see kopeo::fuzzing::reference.
libfuzzer_sys::fuzz_target!(|data: &[u8]| kopeo::fuzzing::reference(data));

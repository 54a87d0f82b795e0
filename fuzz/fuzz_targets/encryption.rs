#![no_main]
// Arbitrary bytes as encryption input: see kopeo::fuzzing::encryption.
libfuzzer_sys::fuzz_target!(|data: &[u8]| kopeo::fuzzing::encryption(data));

#![no_main]
// Arbitrary bytes as manifest input: see kopeo::fuzzing::manifest.
libfuzzer_sys::fuzz_target!(|data: &[u8]| kopeo::fuzzing::manifest(data));

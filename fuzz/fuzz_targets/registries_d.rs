#![no_main]
// Arbitrary bytes as registries_d input: see kopeo::fuzzing::registries_d.
libfuzzer_sys::fuzz_target!(|data: &[u8]| kopeo::fuzzing::registries_d(data));

#![no_main]
// Arbitrary bytes as sync yaml input: see kopeo::fuzzing::sync_yaml.
libfuzzer_sys::fuzz_target!(|data: &[u8]| kopeo::fuzzing::sync_yaml(data));

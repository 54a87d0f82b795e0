#![no_main]
// Arbitrary bytes as operator yaml input: see kopeo::fuzzing::operator_yaml.
libfuzzer_sys::fuzz_target!(|data: &[u8]| kopeo::fuzzing::operator_yaml(data));

#![no_main]
// Arbitrary bytes as policy_json input: see kopeo::fuzzing::policy_json.
libfuzzer_sys::fuzz_target!(|data: &[u8]| kopeo::fuzzing::policy_json(data));

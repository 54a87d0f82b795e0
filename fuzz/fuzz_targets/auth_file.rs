#![no_main]
// Arbitrary bytes as auth file input: see kopeo::fuzzing::auth_file.
libfuzzer_sys::fuzz_target!(|data: &[u8]| kopeo::fuzzing::auth_file(data));

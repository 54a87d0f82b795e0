#![no_main]
// Arbitrary bytes as link header input: see kopeo::fuzzing::link_header.
libfuzzer_sys::fuzz_target!(|data: &[u8]| kopeo::fuzzing::link_header(data));

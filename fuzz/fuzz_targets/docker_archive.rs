#![no_main]
// Arbitrary bytes as docker archive input: see kopeo::fuzzing::docker_archive.
libfuzzer_sys::fuzz_target!(|data: &[u8]| kopeo::fuzzing::docker_archive(data));

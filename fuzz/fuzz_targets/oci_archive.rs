#![no_main]
// Arbitrary bytes as oci archive input: see kopeo::fuzzing::oci_archive.
libfuzzer_sys::fuzz_target!(|data: &[u8]| kopeo::fuzzing::oci_archive(data));

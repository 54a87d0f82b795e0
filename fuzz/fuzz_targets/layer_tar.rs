#![no_main]
// Arbitrary bytes as a layer tar for containers-storage: see kopeo::fuzzing::layer_tar.
libfuzzer_sys::fuzz_target!(|data: &[u8]| kopeo::fuzzing::layer_tar(data));

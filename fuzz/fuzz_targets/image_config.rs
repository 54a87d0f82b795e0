#![no_main]
// Arbitrary bytes as image config input: see kopeo::fuzzing::image_config.
libfuzzer_sys::fuzz_target!(|data: &[u8]| kopeo::fuzzing::image_config(data));

#![no_main]
// Arbitrary bytes as token answer input: see kopeo::fuzzing::token_answer.
libfuzzer_sys::fuzz_target!(|data: &[u8]| kopeo::fuzzing::token_answer(data));

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| atrest::fuzzing::key_material(data));

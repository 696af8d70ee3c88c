#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cometa_fuzz::profile_load(data));

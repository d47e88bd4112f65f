#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| dropcache_fuzz::path(data));

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| brine_fuzz::targets::noise_respond(data));

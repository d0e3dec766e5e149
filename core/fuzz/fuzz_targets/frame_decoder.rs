//! The streaming frame decoder on arbitrary bytes, split into reads at points derived
//! from the input. See `tnlm_core_fuzz::check_frame_stream` for what is checked.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| tnlm_core_fuzz::check_frame_stream(data));

//! Every payload layout of the catalog on arbitrary bytes, decoded by the real decoder and
//! walked by the schema. See `tnlm_core_fuzz::check_payload` for what is checked.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| tnlm_core_fuzz::check_payload(data));

//! The epoch on arbitrary structured input, under the paper's mechanism and both Yuma rules: no
//! panic, invariants hold, fixed agrees with float.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| deepnode_testkit::fuzzing::epoch_oracle(data));

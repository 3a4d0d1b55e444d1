//! Ledger extrinsics: decode and apply arbitrary (raw or oracle-signed) extrinsics to a small
//! chain; refused ones change nothing, accepted ones keep issuance, epochs mint at most
//! emission.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| deepnode_testkit::fuzzing::extrinsic_oracle(data));

//! SCALE decoding of every on-chain type: no panic, decode then encode is identity.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| deepnode_testkit::fuzzing::codec_oracle(data));

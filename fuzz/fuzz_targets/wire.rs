//! The peer wire's header and chunk decoders: no panic, decode then encode is identity, the
//! limits check never panics.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| deepnode_testkit::fuzzing::wire_oracle(data));

//! The weights controller on arbitrary policies, networks and losses: it never asks for more
//! than a valid row can hold, and a row naming every peer always meets it.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| deepnode_testkit::fuzzing::controller_oracle(data));

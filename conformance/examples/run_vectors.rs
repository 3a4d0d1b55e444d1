//! Runs every conformance vector under a directory and prints the report; exits 0 only when
//! all passed. Built for `wasm32-wasip1` by `scripts/test.sh` and run under Node's WASI by
//! `scripts/wasi-run.mjs`, so the vectors are also checked on a 32-bit target, bit for bit.
//!
//! ```sh
//! cargo run -p deepnode-conformance --example run_vectors -- conformance/vectors
//! ```

use std::path::Path;
use std::process::ExitCode;

use deepnode_conformance::run_dir;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let [_, dir] = args.as_slice() else {
        eprintln!("usage: run_vectors DIR");
        return ExitCode::from(2);
    };
    match run_dir(Path::new(dir)) {
        Ok(report) => {
            println!("{report}");
            println!(
                "target: {} ({}-bit pointers)",
                std::env::consts::ARCH,
                usize::BITS
            );
            if report.all_passed() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(2)
        }
    }
}

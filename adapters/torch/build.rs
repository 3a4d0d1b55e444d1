//! torch-sys links libtorch but gives the final binaries no run path, so tests, benches and
//! programs of this crate would exit 127 (libtorch_cpu.so not found). `LD_LIBRARY_PATH` in
//! `.cargo/config.toml` does not reach `cargo test`; a run path in the binaries does.

fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    if let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
    }
}

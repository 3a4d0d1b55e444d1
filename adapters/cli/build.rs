//! With the `torch` feature, `deepnode` links libtorch; torch-sys gives the binary no run path,
//! so it would exit 127 (libtorch_cpu.so not found). This adds one (as adapters/torch does).

fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    if let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg-bins=-Wl,-rpath,{lib}");
        println!("cargo:rustc-link-arg-tests=-Wl,-rpath,{lib}");
    }
}

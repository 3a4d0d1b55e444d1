//! Where the PyTorch baseline runs: a Python that imports torch, and the baseline's script.

use std::path::PathBuf;
use std::process::Command;

/// `adapters/torch/bench/pytorch_step.py`.
pub fn script() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/bench/pytorch_step.py"
    ))
}

/// A Python with torch and its torch version: `DEEPNODE_PYTHON`, else the environment
/// `scripts/pytorch.sh` installs (`pytorch/bin/python3` in the target directory, found above
/// this executable), else `python3`; `Err` says why none fits.
pub fn with_torch() -> Result<(PathBuf, String), String> {
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(p) = std::env::var_os("DEEPNODE_PYTHON") {
        candidates.push(p.into());
    } else {
        if let Ok(exe) = std::env::current_exe() {
            candidates.extend(
                exe.ancestors()
                    .map(|a| a.join("pytorch/bin/python3"))
                    .filter(|p| p.exists())
                    .take(1),
            );
        }
        candidates.push("python3".into());
    }
    let mut why = Vec::new();
    for python in candidates {
        let out = Command::new(&python)
            .args(["-c", "import torch; print(torch.__version__)"])
            .output();
        match out {
            Ok(o) if o.status.success() => {
                let version = String::from_utf8_lossy(&o.stdout).trim().to_owned();
                return Ok((python, version));
            }
            Ok(_) => why.push(format!("{} has no torch", python.display())),
            Err(e) => why.push(format!("{}: {e}", python.display())),
        }
    }
    Err(format!(
        "no Python with torch ({}); scripts/pytorch.sh installs one",
        why.join("; ")
    ))
}

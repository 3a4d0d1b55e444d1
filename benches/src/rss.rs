//! Peak resident memory from the kernel (Linux), for every runner's table.

/// `VmHWM` of /proc/self/status, in MiB (None off Linux).
pub fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// Resets the process's peak resident size (`VmHWM`), so that each phase reports its own
/// (Linux: writing 5 to /proc/self/clear_refs); does nothing elsewhere.
pub fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

//! grpcd's memory budget (see rustcore::limits): `--memory-limit SIZE`, else the
//! HFT_LAB_MEMORY_LIMIT variable, else half the RAM (MemTotal of /proc/meminfo).

use std::sync::atomic::{AtomicBool, Ordering};

use rustcore::limits;

static CONFIGURED: AtomicBool = AtomicBool::new(false);

fn total_ram() -> Option<u64> {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| limits::parse_meminfo(&t))
}

/// `--memory-limit SIZE` (parsed by main's argument loop).
pub fn from_flag(value: &str) -> Result<(), String> {
    let bytes =
        limits::parse_size(value, total_ram()).map_err(|e| format!("--memory-limit: {e}"))?;
    limits::set_memory_limit(bytes);
    CONFIGURED.store(true, Ordering::SeqCst);
    Ok(())
}

/// Applies the variable or the default unless the flag was given; returns (bytes, source).
/// An invalid variable is a start-up error (exit code 2), like an invalid flag.
pub fn ensure_configured() -> (u64, &'static str) {
    if CONFIGURED.load(Ordering::SeqCst) {
        return (limits::memory_limit(), "--memory-limit");
    }
    let ram = total_ram();
    let (bytes, source) = match std::env::var(limits::ENV_VAR) {
        Ok(v) if !v.trim().is_empty() => match limits::parse_size(&v, ram) {
            Ok(b) => (b, limits::ENV_VAR),
            Err(e) => {
                eprintln!("grpcd: {}: {e}", limits::ENV_VAR);
                std::process::exit(2);
            }
        },
        _ => (limits::default_limit(ram), "default (half the RAM)"),
    };
    limits::set_memory_limit(bytes);
    CONFIGURED.store(true, Ordering::SeqCst);
    (limits::memory_limit(), source)
}

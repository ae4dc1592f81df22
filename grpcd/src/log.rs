//! Structured logs: one JSON object per line on stderr (the desktop app shows them in its log panel).

use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

fn escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            '\n' => o.push_str("\\n"),
            c if (c as u32) < 0x20 => o.push_str(&format!("\\u{:04x}", c as u32)),
            c => o.push(c),
        }
    }
    o
}

// ---- issue 16: --log-level (successful calls log at DEBUG: one line per call) ----

static MIN_LEVEL: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);

fn rank(level: &str) -> u8 {
    match level {
        "DEBUG" => 0,
        "INFO" => 1,
        "WARN" => 2,
        _ => 3,
    }
}

/// The lowest level written: debug (default), info, warn or error.
pub fn set_level(name: &str) -> Result<(), String> {
    let level = match name.to_ascii_lowercase().as_str() {
        "debug" => 0,
        "info" => 1,
        "warn" | "warning" => 2,
        "error" => 3,
        _ => {
            return Err(format!(
                "--log-level must be debug, info, warn or error, got '{name}'"
            ))
        }
    };
    MIN_LEVEL.store(level, std::sync::atomic::Ordering::Relaxed);
    Ok(())
}

pub fn enabled(level: &str) -> bool {
    rank(level) >= MIN_LEVEL.load(std::sync::atomic::Ordering::Relaxed)
}

pub fn write(level: &str, msg: &str, fields: &[(&str, &str)]) {
    if !enabled(level) {
        return;
    }
    let ts = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    let mut line = format!(
        "{{\"ts\":{ts:.3},\"level\":\"{level}\",\"msg\":\"{}\"",
        escape(msg)
    );
    for (k, v) in fields {
        line.push_str(&format!(",\"{}\":\"{}\"", escape(k), escape(v)));
    }
    line.push('}');
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

pub fn info(msg: &str, fields: &[(&str, &str)]) {
    write("INFO", msg, fields)
}

pub fn warn(msg: &str, fields: &[(&str, &str)]) {
    write("WARN", msg, fields)
}

pub fn error(msg: &str, fields: &[(&str, &str)]) {
    write("ERROR", msg, fields)
}

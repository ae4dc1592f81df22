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

pub fn write(level: &str, msg: &str, fields: &[(&str, &str)]) {
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

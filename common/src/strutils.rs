//! oslo's `strutils`, the parts the API and scheduler share.

/// oslo's `bool_from_string`: `1 t true on y yes` and `0 f false off n no`, any case,
/// trimmed; anything else is `None` (strict callers refuse it, lenient ones read
/// `false`).
pub fn bool_from_string(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "1" | "t" | "true" | "on" | "y" | "yes" => Some(true),
        "0" | "f" | "false" | "off" | "n" | "no" => Some(false),
        _ => None,
    }
}

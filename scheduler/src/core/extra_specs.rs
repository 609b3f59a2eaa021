//! Cinder's extra-spec operators: whether a reported capability value satisfies a
//! requirement written as `"<op> operand..."` (or a bare value, compared as a string).
//!
//! | requirement | passes when |
//! |---|---|
//! | `<is> True` | both sides read as the same boolean (oslo's `bool_from_string`: anything unrecognised is false) |
//! | `<in> abc` | the operand is a substring of the capability |
//! | `<all-in> a b` | every operand is a substring of the capability (Nova's operator; the issue names it) |
//! | `<or> a <or> b` | the capability is one of the operands |
//! | `s== s!= s< s<= s> s>=` | the string comparison holds (a capability that is not a string never compares) |
//! | `== != >= <=`, `=` (meaning `>=`) | the numeric comparison holds (non-numbers fail) |
//! | anything else | the capability is the string of the whole requirement (a bool `True` is not `"True"`) |
//!
//! Only the first operand counts; an operator without one fails.

use serde_json::Value;

/// The capability as a string, when it is one (Cinder compares raw values: no
/// coercion).
fn string(value: &Value) -> Option<&str> {
    match value {
        Value::String(s) => Some(s),
        _ => None,
    }
}

/// Python's `float(x)`.
fn number(value: &Value) -> Option<f64> {
    match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        Value::Bool(b) => Some(f64::from(u8::from(*b))),
        _ => None,
    }
    .filter(|f: &f64| !f.is_nan())
}

/// oslo's `bool_from_string(x)` (not strict): a bool as is, anything else by its text,
/// false when unrecognised.
fn boolean(value: &Value) -> bool {
    match value {
        Value::Bool(b) => *b,
        Value::String(s) => parse_bool(s),
        Value::Number(n) => parse_bool(&n.to_string()),
        _ => false,
    }
}

fn parse_bool(s: &str) -> bool {
    cinder_common::strutils::bool_from_string(s).unwrap_or(false)
}

/// Whether one capability value satisfies `req`.
pub fn matches(value: &Value, req: &str) -> bool {
    let mut words = req.split_whitespace();
    let op = words.next().unwrap_or("");
    const OPS: &[&str] = &[
        "<is>", "<in>", "<all-in>", "<or>", "s==", "s!=", "s<", "s<=", "s>", "s>=", "==", "!=",
        ">=", "<=", "=",
    ];
    if !OPS.contains(&op) {
        return string(value) == Some(req);
    }
    if value.is_null() {
        return false;
    }
    if op == "<or>" {
        // `<or> a <or> b <or> c`: the operands are every other word.
        return string(value).is_some_and(|v| words.step_by(2).any(|o| o == v));
    }
    if op == "<all-in>" {
        let Some(v) = string(value) else { return false };
        let mut any = false;
        for o in words {
            any = true;
            if !v.contains(o) {
                return false;
            }
        }
        return any;
    }
    let Some(operand) = words.next() else {
        return false;
    };
    match op {
        "<is>" => boolean(value) == parse_bool(operand),
        "<in>" => string(value).is_some_and(|v| v.contains(operand)),
        "s==" | "s!=" | "s<" | "s<=" | "s>" | "s>=" => match string(value) {
            Some(v) => match op {
                "s==" => v == operand,
                "s!=" => v != operand,
                "s<" => v < operand,
                "s<=" => v <= operand,
                "s>" => v > operand,
                _ => v >= operand,
            },
            // Python: a number is never equal to a string, always unequal.
            None => op == "s!=",
        },
        _ => {
            let (Some(a), Some(b)) = (number(value), operand.trim().parse::<f64>().ok()) else {
                return false;
            };
            match op {
                "==" => a == b,
                "!=" => a != b,
                "<=" => a <= b,
                // `>=` and Cinder's `=`, which means "at least".
                _ => a >= b,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::matches;
    use serde_json::{json, Value};

    #[test]
    fn every_operator_matches_as_cinder_does() {
        let table: &[(Value, &str, bool)] = &[
            // bare values: string equality of the whole requirement
            (json!("ceph"), "ceph", true),
            (json!("ceph"), "Ceph", false),
            (json!("ceph-a"), "ceph", false),
            (json!(true), "True", false),
            (json!(5), "5", false),
            (json!("> 5"), "> 5", true), // not an operator: the whole text
            (json!("a b"), "a b", true),
            // <is>
            (json!(true), "<is> True", true),
            (json!(true), "<is> true", true),
            (json!(false), "<is> True", false),
            (json!(false), "<is> False", true),
            (json!("True"), "<is> True", true),
            (json!("False"), "<is> True", false),
            (json!(true), "<is> maybe", false),
            (json!("garbage"), "<is> False", true), // unrecognised reads as false
            (json!(true), "<is>", false),
            (json!(1), "<is> True", true),
            (json!(5), "<is> True", false),
            // <in>: substring
            (json!("abc"), "<in> b", true),
            (json!("abc"), "<in> d", false),
            (json!("abc"), "<in>", false),
            // <all-in>
            (json!("abc def"), "<all-in> abc def", true),
            (json!("abc def"), "<all-in> abc xyz", false),
            (json!("abc"), "<all-in>", false),
            // <or>
            (json!("b"), "<or> a <or> b", true),
            (json!("c"), "<or> a <or> b", false),
            (json!("a"), "<or> a", true),
            (json!("<or>"), "<or> a <or> b", false),
            // string comparisons
            (json!("abc"), "s== abc", true),
            (json!("abc"), "s== abd", false),
            (json!("abc"), "s!= abd", true),
            (json!("abc"), "s!= abc", false),
            (json!("abc"), "s< abd", true),
            (json!("abd"), "s< abc", false),
            (json!("abc"), "s<= abc", true),
            (json!("abd"), "s> abc", true),
            (json!("abc"), "s>= abd", false),
            (json!("12"), "s< 9", true), // strings, not numbers
            (json!(5), "s== 5", false),
            (json!(5), "s!= 5", true),
            (json!(true), "s== True", false),
            // numeric comparisons
            (json!(10), "== 10", true),
            (json!(10.0), "== 10", true),
            (json!("10"), "== 10", true),
            (json!(10), "== 11", false),
            (json!(10), "!= 11", true),
            (json!(10), "!= 10", false),
            (json!(10), ">= 10", true),
            (json!(9), ">= 10", false),
            (json!(10), "<= 10", true),
            (json!(11), "<= 10", false),
            (json!(10), "= 5", true), // `=` means at least
            (json!(4), "= 5", false),
            (json!("many"), ">= 5", false), // not a number: fails
            (json!(10), ">= lots", false),
            (json!(10), ">=", false),
            (json!(true), "== 1", true),       // float(True)
            (json!(10), ">= 5 ignored", true), // only the first operand counts
            (json!(null), "== 0", false),
            (json!([1, 2]), "== 1", false),
        ];
        for (value, req, want) in table {
            assert_eq!(matches(value, req), *want, "{value} against {req:?}");
        }
    }
}

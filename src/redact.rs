//! What keeps secrets and forged lines out of everything s3ferry writes: every log line,
//! error message and report passes through [`scrub`] (secret keys and session tokens become
//! `***`, access key ids are masked to `AKIA…1234`) and log lines through [`escape_controls`]
//! (a file name with a newline cannot start a second record).
//!
//! Secrets are registered where credentials are resolved ([`register_secret`],
//! [`register_key_id`]); scrubbing by value, at the last moment, also covers what libraries
//! log at `-vvv` (signed headers, canonical requests) without having to trust each of them.

use std::borrow::Cow;
use std::sync::RwLock;

/// (text to hide, what to show instead), longest first so that no replacement leaves part of
/// a longer secret behind.
static HIDDEN: RwLock<Vec<(String, String)>> = RwLock::new(Vec::new());

fn add(text: &str, shown: String) {
    if text.is_empty() {
        return;
    }
    let mut h = HIDDEN.write().unwrap_or_else(|e| e.into_inner());
    if h.iter().any(|(t, _)| t == text) {
        return;
    }
    h.push((text.to_string(), shown));
    h.sort_by_key(|(t, _)| std::cmp::Reverse(t.len()));
}

/// A secret access key or session token: never shown, in any form.
pub fn register_secret(secret: &str) {
    add(secret, "***".into());
}

/// An access key id: shown only masked.
pub fn register_key_id(id: &str) {
    add(id, mask_key_id(id));
}

/// A set of credentials: the key id masked, the secret and the token hidden.
pub fn register_credentials(key_id: &str, secret: &str, token: Option<&str>) {
    register_key_id(key_id);
    register_secret(secret);
    if let Some(t) = token {
        register_secret(t);
    }
}

/// `AKIA…1234`: enough to tell keys apart, not enough to use one.
pub fn mask_key_id(id: &str) -> String {
    let chars: Vec<char> = id.chars().collect();
    if chars.len() < 12 {
        return "***".into();
    }
    let head: String = chars[..4].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}…{tail}")
}

/// `text` with every registered secret hidden.
pub fn scrub(text: &str) -> Cow<'_, str> {
    let h = HIDDEN.read().unwrap_or_else(|e| e.into_inner());
    if !h.iter().any(|(t, _)| text.contains(t.as_str())) {
        return Cow::Borrowed(text);
    }
    let mut out = text.to_string();
    for (t, shown) in h.iter() {
        if out.contains(t.as_str()) {
            out = out.replace(t.as_str(), shown);
        }
    }
    Cow::Owned(out)
}

/// `text` with control characters escaped (`\n`, `\r`, `\t`, `\u{1b}`, …), so that it stays
/// on one line and cannot drive a terminal.
pub fn escape_controls(text: &str) -> Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// Both: what a log line or a path in an output file goes through.
pub fn safe(text: &str) -> String {
    escape_controls(&scrub(text)).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_hidden_and_key_ids_masked() {
        register_secret("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY");
        register_secret("FwoGZXIvYXdzEXAMPLETOKEN");
        register_key_id("AKIAIOSFODNN7EXAMPLE");
        let line = "Credential=AKIAIOSFODNN7EXAMPLE/20260101/us-east-1 secret wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY x-amz-security-token:FwoGZXIvYXdzEXAMPLETOKEN";
        let s = scrub(line);
        assert!(!s.contains("wJalrXUtnFEMI"), "{s}");
        assert!(!s.contains("FwoGZXIvYXdz"), "{s}");
        assert!(!s.contains("AKIAIOSFODNN7EXAMPLE"), "{s}");
        assert!(s.contains("AKIA…MPLE"), "{s}");
        assert_eq!(scrub("nothing here"), "nothing here");
        assert_eq!(mask_key_id("short"), "***");
    }

    #[test]
    fn controls_are_escaped() {
        assert_eq!(
            escape_controls("a\nb\rc\td\u{1b}[2J"),
            "a\\nb\\rc\\td\\u{1b}[2J"
        );
        assert_eq!(escape_controls("plain é"), "plain é");
        assert_eq!(safe("x\ny"), "x\\ny");
    }
}

//! Text machines sent (hostnames, labels), made safe for a terminal: `leases`, `status` and
//! `node` print it.

/// A hostname as a machine sent it, safe for a terminal: control characters (escape
/// sequences that could rewrite the screen, newlines that could forge rows) and backslashes
/// are shown escaped, as Rust writes them.
pub fn printable(name: &str) -> String {
    name.chars().flat_map(|c| if c.is_control() || c == '\\' { c.escape_default().collect::<Vec<char>>() } else { vec![c] }).collect()
}

#[cfg(test)]
mod tests {
    use super::printable;

    #[test]
    fn control_characters_in_hostnames_are_shown_escaped() {
        assert_eq!(printable("lab-01"), "lab-01");
        assert_eq!(printable("x\u{1b}[2J\nfake row\r"), "x\\u{1b}[2J\\nfake row\\r");
        assert_eq!(printable("a\\b\u{7f}"), "a\\\\b\\u{7f}");
        assert_eq!(printable("übermaschine"), "übermaschine", "printable unicode stays");
    }
}

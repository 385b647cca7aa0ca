//! Text made safe inside HTML (the node's listings and status page show names from strangers'
//! disks; the server's dashboard shows what machines report) and XML (the node's ADC client's
//! settings).

/// Text made safe inside HTML or XML.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn markup_and_control_characters_become_text() {
        assert_eq!(super::escape("\"><img src=x onerror='a&b'>\u{7}"), "&quot;&gt;&lt;img src=x onerror=&#39;a&amp;b&#39;&gt;\u{fffd}");
    }
}

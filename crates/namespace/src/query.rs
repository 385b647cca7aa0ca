//! What `swarmboot search WORDS`, the dashboard's search box and `/api/v1/search?q=` take:
//! words (each matches a word of a name or path that starts with it), and filters —
//! `size>700M`, `size<2G`, `type:video` (audio, image, document, archive, disk-image),
//! `ext:mkv`, `in:movies/old` — and the SQLite FTS5 query the words become (every word quoted:
//! nothing a user types is FTS5 syntax).

/// The words a namespace path is found by: each part split at anything not a letter or digit,
/// and each run also at a change of case or between letters and digits (`TheMatrix2.mkv` is
/// found by `thematrix2`, `the`, `matrix`, `2` and `mkv`), lower case, space-separated. The
/// index matches search words as prefixes of these.
pub fn words(ns_path: &str) -> String {
    let mut out: Vec<String> = Vec::new();
    for run in ns_path.split(|c: char| !c.is_alphanumeric()).filter(|r| !r.is_empty()) {
        let lower = run.to_lowercase();
        let chars: Vec<char> = run.chars().collect();
        let mut start = 0;
        let mut pieces: Vec<String> = Vec::new();
        for i in 1..chars.len() {
            let (a, b) = (chars[i - 1], chars[i]);
            let case_up = a.is_lowercase() && b.is_uppercase();
            let digits = a.is_ascii_digit() != b.is_ascii_digit();
            if case_up || digits {
                pieces.push(chars[start..i].iter().collect::<String>().to_lowercase());
                start = i;
            }
        }
        if start > 0 {
            pieces.push(chars[start..].iter().collect::<String>().to_lowercase());
        }
        out.push(lower);
        out.extend(pieces);
    }
    out.join(" ")
}

/// Longest query, in bytes.
pub const MAX_QUERY: usize = 512;
/// Most words and filters.
pub const MAX_TERMS: usize = 16;

/// A parsed search.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query {
    /// Words, lower-cased, each a prefix.
    pub words: Vec<String>,
    pub min_size: Option<u64>,
    pub max_size: Option<u64>,
    /// Extensions (lower case, no dot); empty: any.
    pub extensions: Vec<String>,
    /// Only beneath this namespace path.
    pub under: Option<String>,
}

/// A query that cannot be run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    #[error("an empty search: give words, or filters such as size>1G, type:video, ext:iso, in:movies")]
    Empty,
    #[error("a search longer than {MAX_QUERY} bytes")]
    TooLong,
    #[error("more than {MAX_TERMS} words and filters")]
    TooMany,
    #[error("{0:?}: a size is a number with an optional K, M, G or T (size>700M, size<2G)")]
    BadSize(String),
    #[error("type:{0}: one of video, audio, image, document, archive, disk-image")]
    BadType(String),
    #[error("{0:?}: a filter needs a value (ext:iso, in:movies)")]
    NoValue(String),
}

/// The extensions of a `type:`.
pub fn extensions_of(kind: &str) -> Option<&'static [&'static str]> {
    Some(match kind {
        "video" => &["mkv", "mp4", "avi", "webm", "mov", "m4v", "mpg", "mpeg", "ts", "wmv", "flv", "ogv"],
        "audio" => &["mp3", "flac", "ogg", "opus", "wav", "m4a", "aac", "wma", "aiff"],
        "image" => &["jpg", "jpeg", "png", "gif", "webp", "tif", "tiff", "bmp", "svg", "heic", "raw"],
        "document" => &["pdf", "txt", "md", "odt", "doc", "docx", "epub", "rtf", "ods", "xls", "xlsx", "odp", "ppt", "pptx", "html"],
        "archive" => &["zip", "tar", "gz", "tgz", "xz", "bz2", "zst", "7z", "rar", "deb", "rpm"],
        "disk-image" => &["iso", "img", "qcow2", "vmdk", "vdi", "squashfs"],
        _ => return None,
    })
}

fn size(text: &str, whole: &str) -> Result<u64, QueryError> {
    let bad = || QueryError::BadSize(whole.into());
    let t = text.trim();
    let (num, unit) = match t.char_indices().find(|(_, c)| !c.is_ascii_digit() && *c != '.') {
        Some((i, _)) => (&t[..i], t[i..].trim_end_matches(['b', 'B', 'i'])),
        None => (t, ""),
    };
    let n: f64 = num.parse().map_err(|_| bad())?;
    let mult: u64 = match unit.to_ascii_uppercase().as_str() {
        "" => 1,
        "K" => 1 << 10,
        "M" => 1 << 20,
        "G" => 1 << 30,
        "T" => 1 << 40,
        _ => return Err(bad()),
    };
    let v = n * mult as f64;
    if !v.is_finite() || v < 0.0 || v > u64::MAX as f64 {
        return Err(bad());
    }
    Ok(v as u64)
}

impl Query {
    /// Reads what a user typed.
    pub fn parse(text: &str) -> Result<Query, QueryError> {
        if text.len() > MAX_QUERY {
            return Err(QueryError::TooLong);
        }
        let mut q = Query::default();
        let terms: Vec<&str> = text.split_whitespace().collect();
        if terms.len() > MAX_TERMS {
            return Err(QueryError::TooMany);
        }
        for t in terms {
            let lower = t.to_lowercase();
            if let Some(v) = lower.strip_prefix("size>") {
                q.min_size = Some(size(v, t)?);
            } else if let Some(v) = lower.strip_prefix("size<") {
                q.max_size = Some(size(v, t)?);
            } else if let Some(v) = lower.strip_prefix("type:") {
                q.extensions.extend(extensions_of(v).ok_or_else(|| QueryError::BadType(v.into()))?.iter().map(|e| e.to_string()));
            } else if let Some(v) = lower.strip_prefix("ext:") {
                let v = v.trim_start_matches('.');
                if v.is_empty() {
                    return Err(QueryError::NoValue(t.into()));
                }
                q.extensions.push(v.into());
            } else if let Some(v) = t.strip_prefix("in:").or_else(|| t.strip_prefix("IN:")) {
                let v = v.trim_matches('/');
                if v.is_empty() {
                    return Err(QueryError::NoValue(t.into()));
                }
                q.under = Some(v.into());
            } else {
                // Words are matched on letters and digits (FTS5's unicode61 tokenizer); a word
                // with none ("-", "…") would match everything.
                if lower.chars().any(char::is_alphanumeric) {
                    q.words.push(lower);
                }
            }
        }
        if q.words.is_empty() && q.min_size.is_none() && q.max_size.is_none() && q.extensions.is_empty() && q.under.is_none() {
            return Err(QueryError::Empty);
        }
        Ok(q)
    }

    /// The FTS5 `MATCH` expression for the words (`None`: no words, filters only): each word
    /// a quoted prefix, all required.
    pub fn fts(&self) -> Option<String> {
        if self.words.is_empty() {
            return None;
        }
        Some(self.words.iter().map(|w| format!("\"{}\"*", w.replace('"', "\"\""))).collect::<Vec<_>>().join(" AND "))
    }

    /// Whether a hit passes the filters (the words are the index's to match).
    pub fn keeps(&self, ns_path: &str, size: u64) -> bool {
        let ext_ok = self.extensions.is_empty() || {
            let name = crate::entry::name(ns_path);
            name.rsplit_once('.').is_some_and(|(_, e)| self.extensions.iter().any(|x| x.eq_ignore_ascii_case(e)))
        };
        let under_ok = self.under.as_ref().is_none_or(|u| ns_path.strip_prefix(u.as_str()).is_some_and(|r| r.starts_with('/')));
        ext_ok && under_ok && self.min_size.is_none_or(|m| size > m) && self.max_size.is_none_or(|m| size < m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_become_quoted_prefixes_and_filters_are_read() {
        let q = Query::parse("Kill bi\"ll size>700M size<2G type:video ext:.ISO in:/movies/old/").unwrap();
        assert_eq!(q.words, ["kill", "bi\"ll"]);
        assert_eq!(q.fts().unwrap(), "\"kill\"* AND \"bi\"\"ll\"*");
        assert_eq!((q.min_size, q.max_size), (Some(700 << 20), Some(2 << 30)));
        assert!(q.extensions.contains(&"mkv".to_string()) && q.extensions.contains(&"iso".to_string()));
        assert_eq!(q.under.as_deref(), Some("movies/old"));
        assert!(q.keeps("movies/old/KillBill.MKV", 800 << 20));
        assert!(!q.keeps("movies/old/KillBill.mkv", 100), "too small");
        assert!(!q.keeps("movies/older/KillBill.mkv", 800 << 20), "in:movies/old is a directory, not a prefix");
        assert!(!q.keeps("movies/old/KillBill.srt", 800 << 20));
        assert_eq!(Query::parse("size>1.5G").unwrap().min_size, Some(1610612736));
        assert_eq!(Query::parse("type:audio").unwrap().fts(), None);
    }

    #[test]
    fn names_are_found_by_their_words_and_the_words_inside_them() {
        assert_eq!(words("movies/TheMatrix2.mkv"), "movies thematrix2 the matrix 2 mkv");
        assert_eq!(words("a/Kill Bill (2003)/x_y"), "a kill bill 2003 x y");
        assert_eq!(words("Ünïcode $(touch x)"), "ünïcode touch x");
        assert_eq!(words("HTTPServer"), "httpserver", "no change from lower to upper: one word");
    }

    #[test]
    fn what_cannot_be_run_says_why() {
        assert_eq!(Query::parse("  "), Err(QueryError::Empty));
        assert_eq!(Query::parse("- …"), Err(QueryError::Empty), "no letters: would match everything");
        assert_eq!(Query::parse(&"a ".repeat(17)), Err(QueryError::TooMany));
        assert_eq!(Query::parse(&"a".repeat(513)), Err(QueryError::TooLong));
        assert_eq!(Query::parse("size>lots"), Err(QueryError::BadSize("size>lots".into())));
        assert_eq!(Query::parse("size>5X"), Err(QueryError::BadSize("size>5X".into())));
        assert_eq!(Query::parse("type:film"), Err(QueryError::BadType("film".into())));
        assert_eq!(Query::parse("ext:"), Err(QueryError::NoValue("ext:".into())));
        assert!(Query::parse("size>1e400").is_err());
    }
}

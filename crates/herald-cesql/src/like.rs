//! Compilation and matching of `LIKE` patterns (CESQL specification,
//! section "Like operator"). Pure string matching, no I/O.
//!
//! In a pattern `%` matches any sequence of characters (including none), `_`
//! matches exactly one character, `\%` and `\_` match a literal `%` or `_`,
//! and every other character, including a `\` that does not precede `%` or
//! `_`, matches itself, case-sensitively. Matching works on Unicode scalar
//! values and runs in O(text × pattern) time without recursion.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    /// Exactly this character.
    Char(char),
    /// `_`: any single character.
    AnyOne,
    /// `%`: any sequence of characters.
    AnyMany,
}

/// A compiled `LIKE` pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LikePattern {
    tokens: Vec<Token>,
}

impl LikePattern {
    /// Compiles the (already unquoted) pattern string. Never fails: every
    /// string is a valid pattern.
    pub(crate) fn new(source: &str) -> Self {
        let mut tokens = Vec::with_capacity(source.len());
        let mut chars = source.chars().peekable();
        while let Some(c) = chars.next() {
            let token = match c {
                '\\' => match chars.peek() {
                    Some(&escaped @ ('%' | '_')) => {
                        chars.next();
                        Token::Char(escaped)
                    }
                    _ => Token::Char('\\'),
                },
                '%' => {
                    // Consecutive `%` are equivalent to one.
                    if tokens.last() == Some(&Token::AnyMany) {
                        continue;
                    }
                    Token::AnyMany
                }
                '_' => Token::AnyOne,
                other => Token::Char(other),
            };
            tokens.push(token);
        }
        Self { tokens }
    }

    /// Whether `text` matches the whole pattern.
    ///
    /// Classic wildcard matching: advance greedily and, on a mismatch, retry
    /// from the most recent `%` with the text position moved by one
    /// character.
    pub(crate) fn matches(&self, text: &str) -> bool {
        let tokens = &self.tokens;
        let mut t = 0; // byte offset in `text`, always on a char boundary
        let mut p = 0; // index in `tokens`
        // Token index after the last `%` and the text offset it currently
        // absorbs up to.
        let mut backtrack: Option<(usize, usize)> = None;

        while let Some(c) = text.get(t..).and_then(|rest| rest.chars().next()) {
            match tokens.get(p) {
                Some(Token::AnyMany) => {
                    p += 1;
                    backtrack = Some((p, t));
                    continue;
                }
                Some(Token::AnyOne) => {
                    p += 1;
                    t += c.len_utf8();
                    continue;
                }
                Some(Token::Char(expected)) if *expected == c => {
                    p += 1;
                    t += c.len_utf8();
                    continue;
                }
                _ => {}
            }
            let Some((after_percent, absorbed)) = backtrack else {
                return false;
            };
            // Let the last `%` absorb one more character and try again.
            let Some(skipped) = text.get(absorbed..).and_then(|rest| rest.chars().next()) else {
                return false;
            };
            let next = absorbed + skipped.len_utf8();
            backtrack = Some((after_percent, next));
            p = after_percent;
            t = next;
        }
        tokens
            .get(p..)
            .is_none_or(|rest| rest.iter().all(|token| *token == Token::AnyMany))
    }
}

#[cfg(test)]
mod tests {
    use super::LikePattern;

    fn like(text: &str, pattern: &str) -> bool {
        LikePattern::new(pattern).matches(text)
    }

    #[test]
    fn like_percent_matches_any_sequence() {
        assert!(like("abc", "a%b%c"));
        assert!(like("azzzbzzzc", "a%b%c"));
        assert!(like("", "%"));
        assert!(like("abc", "%%"));
        assert!(!like("ab.cde", ".%.%."));
        assert!(like(".ab.cde.", ".%.%."));
    }

    #[test]
    fn like_underscore_matches_exactly_one_character() {
        assert!(like("azbzc", "a_b_c"));
        assert!(!like("abc", "a_b_c"));
        assert!(!like("", "_"));
        assert!(like("é", "_"));
        assert!(like("日本語", "_本_"));
    }

    #[test]
    fn like_treats_escaped_percent_literally() {
        assert!(like("a%b%c", "a\\%b\\%c"));
        assert!(!like("azbzc", "a\\%b\\%c"));
        assert!(!like("abc", "abc\\%"));
        assert!(like("abc%", "abc\\%"));
    }

    #[test]
    fn like_treats_escaped_underscore_literally() {
        assert!(like("a_b_c", "a\\_b\\_c"));
        assert!(!like("azbzc", "a\\_b\\_c"));
    }

    #[test]
    fn like_keeps_other_backslashes_literal() {
        assert!(like("ab\\c", "ab\\c"));
        assert!(!like("abc", "ab\\c"));
        assert!(like("a\\", "a\\"));
        // `\\%` is a literal backslash followed by an escaped percent.
        assert!(like("a\\%", "a\\\\%"));
        assert!(!like("a\\x", "a\\\\%"));
    }

    #[test]
    fn like_is_case_sensitive_and_anchored() {
        assert!(!like("aBc", "_b%"));
        assert!(like("abcd1", "_b%"));
        assert!(!like("xabc", "abc"));
        assert!(!like("abcx", "abc"));
    }

    #[test]
    fn like_backtracking_stays_linear_in_practice() {
        let text = "a".repeat(5_000);
        let pattern = format!("{}b", "%a".repeat(50));
        assert!(!like(&text, &pattern));
    }
}

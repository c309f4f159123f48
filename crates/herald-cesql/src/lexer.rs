//! Tokenizer for CESQL expression text (CESQL specification, section
//! "Language syntax"). Turns a `&str` into tokens with character positions;
//! no I/O.

use crate::error::ParseError;

/// Keywords, matched case-insensitively (section "Language syntax").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Keyword {
    And,
    Or,
    Xor,
    Not,
    Like,
    In,
    Exists,
    True,
    False,
}

impl Keyword {
    fn from_word(word: &str) -> Option<Self> {
        const KEYWORDS: [(&str, Keyword); 9] = [
            ("AND", Keyword::And),
            ("OR", Keyword::Or),
            ("XOR", Keyword::Xor),
            ("NOT", Keyword::Not),
            ("LIKE", Keyword::Like),
            ("IN", Keyword::In),
            ("EXISTS", Keyword::Exists),
            ("TRUE", Keyword::True),
            ("FALSE", Keyword::False),
        ];
        KEYWORDS
            .iter()
            .find(|(text, _)| word.eq_ignore_ascii_case(text))
            .map(|(_, keyword)| *keyword)
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::And => "AND",
            Self::Or => "OR",
            Self::Xor => "XOR",
            Self::Not => "NOT",
            Self::Like => "LIKE",
            Self::In => "IN",
            Self::Exists => "EXISTS",
            Self::True => "TRUE",
            Self::False => "FALSE",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TokenKind {
    /// An unsigned run of decimal digits; the sign is handled by the parser.
    Integer(String),
    /// A string literal, already unescaped.
    String(String),
    /// A run of ASCII letters, digits and `_` that is neither a keyword nor
    /// all digits: an attribute or function name, in its original case.
    Word(String),
    Keyword(Keyword),
    LeftParen,
    RightParen,
    Comma,
    Plus,
    Minus,
    Star,
    Slash,
    Percent,
    Equal,
    /// `!=` or `<>`.
    NotEqual,
    Less,
    LessOrEqual,
    Greater,
    GreaterOrEqual,
    End,
}

impl TokenKind {
    /// Short description for error messages.
    pub(crate) fn describe(&self) -> String {
        match self {
            Self::Integer(digits) => format!("integer {digits}"),
            Self::String(_) => "string literal".to_owned(),
            Self::Word(word) => format!("'{word}'"),
            Self::Keyword(keyword) => keyword.as_str().to_owned(),
            Self::LeftParen => "'('".to_owned(),
            Self::RightParen => "')'".to_owned(),
            Self::Comma => "','".to_owned(),
            Self::Plus => "'+'".to_owned(),
            Self::Minus => "'-'".to_owned(),
            Self::Star => "'*'".to_owned(),
            Self::Slash => "'/'".to_owned(),
            Self::Percent => "'%'".to_owned(),
            Self::Equal => "'='".to_owned(),
            Self::NotEqual => "'!='".to_owned(),
            Self::Less => "'<'".to_owned(),
            Self::LessOrEqual => "'<='".to_owned(),
            Self::Greater => "'>'".to_owned(),
            Self::GreaterOrEqual => "'>='".to_owned(),
            Self::End => "end of input".to_owned(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Token {
    pub(crate) kind: TokenKind,
    /// 0-based character index of the token's first character.
    pub(crate) position: usize,
}

/// Splits `input` into tokens. The last token is always [`TokenKind::End`].
pub(crate) fn tokenize(input: &str) -> Result<Vec<Token>, ParseError> {
    let chars: Vec<char> = input.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while let Some(&c) = chars.get(i) {
        let start = i;
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let kind = match c {
            '(' => single(&mut i, TokenKind::LeftParen),
            ')' => single(&mut i, TokenKind::RightParen),
            ',' => single(&mut i, TokenKind::Comma),
            '+' => single(&mut i, TokenKind::Plus),
            '-' => single(&mut i, TokenKind::Minus),
            '*' => single(&mut i, TokenKind::Star),
            '/' => single(&mut i, TokenKind::Slash),
            '%' => single(&mut i, TokenKind::Percent),
            '=' => single(&mut i, TokenKind::Equal),
            '!' if chars.get(i + 1) == Some(&'=') => {
                i += 2;
                TokenKind::NotEqual
            }
            '<' => match chars.get(i + 1) {
                Some('=') => {
                    i += 2;
                    TokenKind::LessOrEqual
                }
                Some('>') => {
                    i += 2;
                    TokenKind::NotEqual
                }
                _ => single(&mut i, TokenKind::Less),
            },
            '>' => match chars.get(i + 1) {
                Some('=') => {
                    i += 2;
                    TokenKind::GreaterOrEqual
                }
                _ => single(&mut i, TokenKind::Greater),
            },
            '\'' | '"' => TokenKind::String(string_literal(&chars, &mut i)?),
            c if is_word_char(c) => {
                while chars.get(i).is_some_and(|&c| is_word_char(c)) {
                    i += 1;
                }
                let word: String = chars.get(start..i).unwrap_or_default().iter().collect();
                classify_word(word)
            }
            other => {
                return Err(ParseError::new(
                    start,
                    format!("unexpected character {other:?}"),
                ));
            }
        };
        tokens.push(Token {
            kind,
            position: start,
        });
    }
    tokens.push(Token {
        kind: TokenKind::End,
        position: chars.len(),
    });
    Ok(tokens)
}

fn single(i: &mut usize, kind: TokenKind) -> TokenKind {
    *i += 1;
    kind
}

fn is_word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

fn classify_word(word: String) -> TokenKind {
    if word.bytes().all(|b| b.is_ascii_digit()) {
        TokenKind::Integer(word)
    } else if let Some(keyword) = Keyword::from_word(&word) {
        TokenKind::Keyword(keyword)
    } else {
        TokenKind::Word(word)
    }
}

/// Reads a `'...'` or `"..."` literal starting at `chars[*i]` (the opening
/// quote) and advances `*i` past the closing quote.
///
/// Section "Value identifiers and literals" only defines `\'` (respectively
/// `\"`) as an escape for the delimiter. A backslash always pairs with the
/// character after it, so a backslash can never close the literal; the pair
/// `\<delimiter>` becomes the delimiter and every other pair is kept
/// verbatim (so `'ab\c'` is the four characters `ab\c`, which keeps `LIKE`
/// escapes such as `'a\%'` intact).
fn string_literal(chars: &[char], i: &mut usize) -> Result<String, ParseError> {
    let start = *i;
    let Some(&quote) = chars.get(start) else {
        return Err(ParseError::new(start, "expected a string literal"));
    };
    let mut value = String::new();
    let mut j = start + 1;
    loop {
        match chars.get(j) {
            None => {
                return Err(ParseError::new(start, "unterminated string literal"));
            }
            Some(&c) if c == quote => {
                *i = j + 1;
                return Ok(value);
            }
            Some('\\') => match chars.get(j + 1) {
                Some(&next) if next == quote => {
                    value.push(quote);
                    j += 2;
                }
                Some(&next) => {
                    value.push('\\');
                    value.push(next);
                    j += 2;
                }
                None => {
                    return Err(ParseError::new(start, "unterminated string literal"));
                }
            },
            Some(&c) => {
                value.push(c);
                j += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(input: &str) -> Vec<TokenKind> {
        tokenize(input)
            .expect("input should tokenize")
            .into_iter()
            .map(|t| t.kind)
            .collect()
    }

    fn string(input: &str) -> String {
        match kinds(input).as_slice() {
            [TokenKind::String(s), TokenKind::End] => s.clone(),
            other => panic!("expected a single string literal, got {other:?}"),
        }
    }

    #[test]
    fn single_quoted_string_unescapes_only_its_delimiter() {
        assert_eq!(string(r#"'a"b\'c'"#), "a\"b'c");
        assert_eq!(string(r"'ab\c'"), r"ab\c");
        assert_eq!(string(r"'a\\'"), r"a\\");
        assert_eq!(string(r#"'a\"'"#), r#"a\""#);
    }

    #[test]
    fn double_quoted_string_unescapes_only_its_delimiter() {
        assert_eq!(string(r#""a'b\"c""#), "a'b\"c");
        assert_eq!(string(r#""\'""#), r"\'");
    }

    #[test]
    fn unterminated_string_reports_opening_quote() {
        let error = tokenize("x = 'abc").expect_err("should fail");
        assert_eq!(error.position(), 4);
        assert_eq!(error.message(), "unterminated string literal");
        assert!(tokenize(r"'abc\'").is_err());
    }

    #[test]
    fn keywords_are_case_insensitive_and_words_keep_case() {
        assert_eq!(
            kinds("tRuE aNd Subject"),
            vec![
                TokenKind::Keyword(Keyword::True),
                TokenKind::Keyword(Keyword::And),
                TokenKind::Word("Subject".to_owned()),
                TokenKind::End
            ]
        );
    }

    #[test]
    fn operators_are_recognised() {
        assert_eq!(
            kinds("<> != <= >= < > ="),
            vec![
                TokenKind::NotEqual,
                TokenKind::NotEqual,
                TokenKind::LessOrEqual,
                TokenKind::GreaterOrEqual,
                TokenKind::Less,
                TokenKind::Greater,
                TokenKind::Equal,
                TokenKind::End
            ]
        );
    }

    #[test]
    fn digits_then_letters_form_a_word() {
        assert_eq!(
            kinds("123 1abc"),
            vec![
                TokenKind::Integer("123".to_owned()),
                TokenKind::Word("1abc".to_owned()),
                TokenKind::End
            ]
        );
    }

    #[test]
    fn positions_count_characters() {
        let tokens = tokenize("'é' # ").expect_err("should fail");
        assert_eq!(tokens.position(), 4);
    }
}

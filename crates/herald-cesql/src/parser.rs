//! Pratt parser turning CESQL tokens into the expression tree (CESQL
//! specification, sections "Language syntax" and "Evaluation of the
//! expression" for operator precedence). No I/O.
//!
//! Precedence, tightest first: function invocations, unary `NOT` and `-`,
//! `LIKE`, `EXISTS`, `IN`, then the binary operators `* / %`, `+ -`,
//! comparisons, and finally `AND`, `OR`, `XOR`, which share one level. Equal
//! precedence associates left to right. Nesting is capped at
//! [`MAX_DEPTH`] so that neither parsing nor evaluation can exhaust the
//! stack.

use crate::ast::{BinaryOp, Expr, Precedence};
use crate::error::ParseError;
use crate::functions::Function;
use crate::lexer::{Keyword, Token, TokenKind, tokenize};
use crate::like::LikePattern;
use crate::value::Value;

/// Maximum nesting depth of an expression: of the parser's recursion
/// (parentheses, prefix operators, operands) and of the resulting tree.
/// Long flat chains such as `a OR b OR c ...` or big `IN` sets do not count
/// against it.
pub(crate) const MAX_DEPTH: usize = 64;

/// Binding power of the operand of a prefix operator: higher than every
/// infix or postfix operator, so `NOT a = b` is `(NOT a) = b`.
const UNARY_BP: u8 = 11;
const LIKE_BP: u8 = 10;
const IN_BP: u8 = 9;

/// Left and right binding powers of a binary precedence level; the right
/// one is higher, which makes the level left-associative.
fn binding_power(precedence: Precedence) -> (u8, u8) {
    match precedence {
        Precedence::Logic => (1, 2),
        Precedence::Comparison => (3, 4),
        Precedence::Additive => (5, 6),
        Precedence::Multiplicative => (7, 8),
    }
}

fn binary_op(kind: &TokenKind) -> Option<BinaryOp> {
    let op = match kind {
        TokenKind::Keyword(Keyword::And) => BinaryOp::And,
        TokenKind::Keyword(Keyword::Or) => BinaryOp::Or,
        TokenKind::Keyword(Keyword::Xor) => BinaryOp::Xor,
        TokenKind::Equal => BinaryOp::Equal,
        TokenKind::NotEqual => BinaryOp::NotEqual,
        TokenKind::Less => BinaryOp::Less,
        TokenKind::LessOrEqual => BinaryOp::LessOrEqual,
        TokenKind::Greater => BinaryOp::Greater,
        TokenKind::GreaterOrEqual => BinaryOp::GreaterOrEqual,
        TokenKind::Plus => BinaryOp::Add,
        TokenKind::Minus => BinaryOp::Subtract,
        TokenKind::Star => BinaryOp::Multiply,
        TokenKind::Slash => BinaryOp::Divide,
        TokenKind::Percent => BinaryOp::Remainder,
        _ => return None,
    };
    Some(op)
}

/// Parses a complete expression.
pub(crate) fn parse(input: &str) -> Result<Expr, ParseError> {
    let tokens = tokenize(input)?;
    let end = Token {
        kind: TokenKind::End,
        position: input.chars().count(),
    };
    let mut parser = Parser {
        tokens,
        index: 0,
        recursion: 0,
        end,
    };
    let parsed = parser.expression(0)?;
    let token = parser.peek();
    if token.kind != TokenKind::End {
        return Err(ParseError::new(
            token.position,
            format!(
                "unexpected {}, expected end of input",
                token.kind.describe()
            ),
        ));
    }
    Ok(parsed.expr)
}

/// A parsed subtree and its depth (a leaf has depth 1).
struct Parsed {
    expr: Expr,
    depth: usize,
}

enum Postfix {
    Like,
    In,
}

struct Parser {
    tokens: Vec<Token>,
    index: usize,
    recursion: usize,
    /// Returned when reading past the last token.
    end: Token,
}

fn too_deep(position: usize) -> ParseError {
    ParseError::new(
        position,
        format!("expression is nested too deeply (maximum depth is {MAX_DEPTH})"),
    )
}

impl Parser {
    fn peek(&self) -> &Token {
        self.peek_at(0)
    }

    fn peek_at(&self, offset: usize) -> &Token {
        self.tokens.get(self.index + offset).unwrap_or(&self.end)
    }

    fn advance(&mut self) -> Token {
        let token = self.peek().clone();
        if self.index < self.tokens.len() {
            self.index += 1;
        }
        token
    }

    fn expect(&mut self, kind: &TokenKind, what: &str) -> Result<(), ParseError> {
        let token = self.advance();
        if token.kind == *kind {
            Ok(())
        } else {
            Err(ParseError::new(
                token.position,
                format!("expected {what}, found {}", token.kind.describe()),
            ))
        }
    }

    /// Wraps `expr` after checking the tree depth limit.
    fn node(expr: Expr, depth: usize, position: usize) -> Result<Parsed, ParseError> {
        if depth > MAX_DEPTH {
            return Err(too_deep(position));
        }
        Ok(Parsed { expr, depth })
    }

    fn expression(&mut self, min_bp: u8) -> Result<Parsed, ParseError> {
        if self.recursion >= MAX_DEPTH {
            return Err(too_deep(self.peek().position));
        }
        self.recursion += 1;
        let result = self.expression_inner(min_bp);
        self.recursion -= 1;
        result
    }

    fn expression_inner(&mut self, min_bp: u8) -> Result<Parsed, ParseError> {
        let mut lhs = self.prefix()?;
        loop {
            let position = self.peek().position;
            let (postfix, negated) = match &self.peek().kind {
                TokenKind::Keyword(Keyword::Like) => (Postfix::Like, false),
                TokenKind::Keyword(Keyword::In) => (Postfix::In, false),
                TokenKind::Keyword(Keyword::Not) => match self.peek_at(1).kind {
                    TokenKind::Keyword(Keyword::Like) => (Postfix::Like, true),
                    TokenKind::Keyword(Keyword::In) => (Postfix::In, true),
                    _ => {
                        return Err(ParseError::new(position, "expected LIKE or IN after NOT"));
                    }
                },
                kind => {
                    let Some(op) = binary_op(kind) else {
                        break;
                    };
                    let (left_bp, right_bp) = binding_power(op.precedence());
                    if left_bp < min_bp {
                        break;
                    }
                    self.advance();
                    let rhs = self.expression(right_bp)?;
                    lhs = Self::binary(lhs, op, rhs, position)?;
                    continue;
                }
            };
            let bp = match postfix {
                Postfix::Like => LIKE_BP,
                Postfix::In => IN_BP,
            };
            if bp < min_bp {
                break;
            }
            if negated {
                self.advance();
            }
            self.advance();
            lhs = match postfix {
                Postfix::Like => self.like(lhs, negated, position)?,
                Postfix::In => self.in_set(lhs, negated, position)?,
            };
        }
        Ok(lhs)
    }

    /// Appends `op rhs` to `lhs`, extending `lhs` in place when it is a
    /// chain of the same precedence level (which is equivalent because the
    /// level is left-associative).
    fn binary(
        lhs: Parsed,
        op: BinaryOp,
        rhs: Parsed,
        position: usize,
    ) -> Result<Parsed, ParseError> {
        match lhs.expr {
            Expr::Binary { first, mut rest }
                if rest
                    .first()
                    .is_some_and(|(other, _)| other.precedence() == op.precedence()) =>
            {
                let depth = lhs.depth.max(rhs.depth + 1);
                rest.push((op, rhs.expr));
                Self::node(Expr::Binary { first, rest }, depth, position)
            }
            other => Self::node(
                Expr::Binary {
                    first: Box::new(other),
                    rest: vec![(op, rhs.expr)],
                },
                1 + lhs.depth.max(rhs.depth),
                position,
            ),
        }
    }

    /// After `LIKE`: the pattern must be a string literal (section "Like
    /// operator"), anything else is a parse error.
    fn like(
        &mut self,
        operand: Parsed,
        negated: bool,
        position: usize,
    ) -> Result<Parsed, ParseError> {
        let token = self.advance();
        let TokenKind::String(pattern) = token.kind else {
            return Err(ParseError::new(
                token.position,
                format!(
                    "expected a string literal pattern after LIKE, found {}",
                    token.kind.describe()
                ),
            ));
        };
        Self::node(
            Expr::Like {
                operand: Box::new(operand.expr),
                pattern: LikePattern::new(&pattern),
                negated,
            },
            operand.depth + 1,
            position,
        )
    }

    /// After `IN`: a parenthesized, non-empty, comma-separated list.
    fn in_set(
        &mut self,
        operand: Parsed,
        negated: bool,
        position: usize,
    ) -> Result<Parsed, ParseError> {
        self.expect(&TokenKind::LeftParen, "'(' after IN")?;
        let mut set = Vec::new();
        let mut depth = operand.depth;
        loop {
            let element = self.expression(0)?;
            depth = depth.max(element.depth);
            set.push(element.expr);
            let token = self.advance();
            match token.kind {
                TokenKind::Comma => {}
                TokenKind::RightParen => break,
                other => {
                    return Err(ParseError::new(
                        token.position,
                        format!("expected ',' or ')', found {}", other.describe()),
                    ));
                }
            }
        }
        Self::node(
            Expr::In {
                operand: Box::new(operand.expr),
                set,
                negated,
            },
            depth + 1,
            position,
        )
    }

    fn prefix(&mut self) -> Result<Parsed, ParseError> {
        let token = self.advance();
        let position = token.position;
        match token.kind {
            TokenKind::Integer(digits) => {
                literal(Value::Integer(integer_literal(&digits, false, position)?))
            }
            TokenKind::Plus | TokenKind::Minus => {
                let negative = token.kind == TokenKind::Minus;
                if let TokenKind::Integer(digits) = &self.peek().kind {
                    // A signed integer literal (section "Value identifiers
                    // and literals"); folding the sign lets -2147483648 be
                    // written.
                    let value = integer_literal(digits, negative, position)?;
                    self.advance();
                    return literal(Value::Integer(value));
                }
                if !negative {
                    return Err(ParseError::new(
                        self.peek().position,
                        "expected an integer literal after '+'",
                    ));
                }
                let operand = self.expression(UNARY_BP)?;
                Self::node(
                    Expr::Negate(Box::new(operand.expr)),
                    operand.depth + 1,
                    position,
                )
            }
            TokenKind::String(text) => literal(Value::String(text)),
            TokenKind::Keyword(Keyword::True) => literal(Value::Boolean(true)),
            TokenKind::Keyword(Keyword::False) => literal(Value::Boolean(false)),
            TokenKind::Keyword(Keyword::Not) => {
                let operand = self.expression(UNARY_BP)?;
                Self::node(
                    Expr::Not(Box::new(operand.expr)),
                    operand.depth + 1,
                    position,
                )
            }
            TokenKind::Keyword(Keyword::Exists) => {
                let token = self.advance();
                let TokenKind::Word(name) = token.kind else {
                    return Err(ParseError::new(
                        token.position,
                        format!(
                            "expected an attribute name after EXISTS, found {}",
                            token.kind.describe()
                        ),
                    ));
                };
                literal_node(Expr::Exists(attribute_name(&name, token.position)?))
            }
            TokenKind::LeftParen => {
                let inner = self.expression(0)?;
                self.expect(&TokenKind::RightParen, "')'")?;
                Ok(inner)
            }
            TokenKind::Word(name) => {
                if self.peek().kind == TokenKind::LeftParen {
                    self.advance();
                    self.call(&name, position)
                } else {
                    literal_node(Expr::Attribute(attribute_name(&name, position)?))
                }
            }
            other => Err(ParseError::new(
                position,
                format!("expected an expression, found {}", other.describe()),
            )),
        }
    }

    /// A function invocation; the name and the opening parenthesis have
    /// been consumed.
    fn call(&mut self, name: &str, position: usize) -> Result<Parsed, ParseError> {
        let name = function_name(name, position)?;
        let mut args = Vec::new();
        let mut depth = 0;
        if self.peek().kind == TokenKind::RightParen {
            self.advance();
        } else {
            loop {
                let arg = self.expression(0)?;
                depth = depth.max(arg.depth);
                args.push(arg.expr);
                let token = self.advance();
                match token.kind {
                    TokenKind::Comma => {}
                    TokenKind::RightParen => break,
                    other => {
                        return Err(ParseError::new(
                            token.position,
                            format!("expected ',' or ')', found {}", other.describe()),
                        ));
                    }
                }
            }
        }
        let function = Function::resolve(&name, args.len());
        Self::node(
            Expr::Call {
                name,
                function,
                args,
                position,
            },
            depth + 1,
            position,
        )
    }
}

fn literal(value: Value) -> Result<Parsed, ParseError> {
    literal_node(Expr::Literal(value))
}

fn literal_node(expr: Expr) -> Result<Parsed, ParseError> {
    Ok(Parsed { expr, depth: 1 })
}

/// Integer literals must fit a signed 32-bit integer (section "Value
/// identifiers and literals").
fn integer_literal(digits: &str, negative: bool, position: usize) -> Result<i32, ParseError> {
    let out_of_range = || ParseError::new(position, "integer literal is out of the 32-bit range");
    let magnitude: i64 = digits.parse().map_err(|_| out_of_range())?;
    let value = if negative { -magnitude } else { magnitude };
    i32::try_from(value).map_err(|_| out_of_range())
}

/// Attribute names are letters and digits (section "Value identifiers and
/// literals"); they are matched case-insensitively by lowercasing them.
fn attribute_name(word: &str, position: usize) -> Result<String, ParseError> {
    if word.bytes().all(|b| b.is_ascii_alphanumeric()) {
        Ok(word.to_ascii_lowercase())
    } else {
        Err(ParseError::new(
            position,
            format!("invalid attribute name '{word}': only letters and digits are allowed"),
        ))
    }
}

/// Function names are a letter followed by letters and `_` (section
/// "Function invocations"); they are case-insensitive and kept uppercase.
fn function_name(word: &str, position: usize) -> Result<String, ParseError> {
    let mut bytes = word.bytes();
    let valid = bytes.next().is_some_and(|b| b.is_ascii_alphabetic())
        && bytes.all(|b| b.is_ascii_alphabetic() || b == b'_');
    if valid {
        Ok(word.to_ascii_uppercase())
    } else {
        Err(ParseError::new(
            position,
            format!("invalid function name '{word}': only letters and '_' are allowed"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(input: &str) -> Expr {
        parse(input).expect("expression should parse")
    }

    fn attribute(name: &str) -> Box<Expr> {
        Box::new(Expr::Attribute(name.to_owned()))
    }

    #[test]
    fn same_level_operators_form_one_flat_chain() {
        let Expr::Binary { first, rest } = tree("a OR b AND c XOR d") else {
            panic!("expected a binary chain");
        };
        assert_eq!(first, attribute("a"));
        let ops: Vec<BinaryOp> = rest.iter().map(|(op, _)| *op).collect();
        assert_eq!(ops, vec![BinaryOp::Or, BinaryOp::And, BinaryOp::Xor]);
    }

    #[test]
    fn higher_levels_nest_inside_lower_ones() {
        let Expr::Binary { first, rest } = tree("a + b * c = d") else {
            panic!("expected a binary chain");
        };
        assert_eq!(rest.len(), 1);
        assert_eq!(rest[0].0, BinaryOp::Equal);
        assert!(matches!(*first, Expr::Binary { ref rest, .. } if rest[0].0 == BinaryOp::Add));
    }

    #[test]
    fn not_applies_to_the_operand_before_like() {
        let Expr::Like {
            operand, negated, ..
        } = tree("NOT a LIKE 'x'")
        else {
            panic!("expected LIKE at the root");
        };
        assert!(!negated);
        assert_eq!(*operand, Expr::Not(attribute("a")));
    }

    #[test]
    fn not_like_and_not_in_are_negated_postfix_operators() {
        assert!(matches!(
            tree("a NOT LIKE 'x'"),
            Expr::Like { negated: true, .. }
        ));
        assert!(matches!(
            tree("a NOT IN (1)"),
            Expr::In { negated: true, .. }
        ));
    }

    #[test]
    fn minus_before_an_integer_is_part_of_the_literal() {
        assert_eq!(tree("-2147483648"), Expr::Literal(Value::Integer(i32::MIN)));
        assert_eq!(
            tree("--1"),
            Expr::Negate(Box::new(Expr::Literal(Value::Integer(-1))))
        );
        assert_eq!(tree("+7"), Expr::Literal(Value::Integer(7)));
        assert!(parse("+a").is_err());
    }

    #[test]
    fn identifiers_are_lowercased_and_functions_resolved() {
        assert_eq!(tree("SOURCE"), Expr::Attribute("source".to_owned()));
        assert_eq!(tree("EXISTS Time"), Expr::Exists("time".to_owned()));
        let Expr::Call {
            name,
            function,
            args,
            ..
        } = tree("concat_ws(',', 1)")
        else {
            panic!("expected a call");
        };
        assert_eq!(name, "CONCAT_WS");
        assert_eq!(function, Some(Function::ConcatWs));
        assert_eq!(args.len(), 2);
        assert!(matches!(
            tree("CONCAT_WS()"),
            Expr::Call { function: None, .. }
        ));
    }

    #[test]
    fn parentheses_do_not_create_nodes() {
        assert_eq!(tree("((a))"), *attribute("a"));
    }

    #[test]
    fn trailing_tokens_are_rejected_with_their_position() {
        let error = parse("a = 1 b").expect_err("should fail");
        assert_eq!(error.position(), 6);
        assert_eq!(error.message(), "unexpected 'b', expected end of input");
    }
}

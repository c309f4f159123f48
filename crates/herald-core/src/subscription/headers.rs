//! Custom headers of a subscription: extra request headers (an endpoint's API key, say) sent
//! with every delivery and test send, and [`validate`], the pure check every create and update
//! passes through.
//!
//! A header may not be one that frames or routes the request (`Host`, `Content-Length`,
//! `Transfer-Encoding`, the hop-by-hop headers of RFC 9110 7.6.1), nor one Herald sets itself
//! (`Content-Type`, `webhook-*`, `ce-*`, `traceparent`, `tracestate`); its value is visible
//! ASCII with inner spaces or tabs, so no CR or LF can split the request. Values are secrets:
//! [`CustomHeader`]'s `Debug` never prints one, the subscription store seals them like signing
//! secrets, and the gRPC API answers with names only. No I/O.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::SubscriptionError;

/// Most custom headers a subscription carries.
pub const MAX_HEADERS: usize = 16;

/// Longest header name, in bytes.
pub const MAX_HEADER_NAME_LEN: usize = 64;

/// Longest header value, in bytes.
pub const MAX_HEADER_VALUE_LEN: usize = 1024;

/// Most bytes of names and values together.
pub const MAX_HEADERS_TOTAL_LEN: usize = 4096;

/// Names refused whatever their case: framing, routing and hop-by-hop headers, and those Herald
/// sets on every request.
const FORBIDDEN_NAMES: &[&str] = &[
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "upgrade",
    "expect",
    "content-type",
    "content-encoding",
    "traceparent",
    "tracestate",
];

/// Name prefixes refused whatever their case: the Standard Webhooks headers (and
/// `WebHook-Request-Origin`) and the CloudEvents binary-mode attributes Herald sets.
const FORBIDDEN_PREFIXES: &[&str] = &["webhook-", "ce-"];

/// One extra request header: its name as given (matched without regard to case) and its value.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomHeader {
    pub name: String,
    pub value: String,
}

impl CustomHeader {
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> CustomHeader {
        CustomHeader {
            name: name.into(),
            value: value.into(),
        }
    }
}

impl fmt::Debug for CustomHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CustomHeader({}: <redacted>)", self.name)
    }
}

/// Checks a subscription's custom headers, naming the field at fault (`headers`,
/// `headers[i].name`, `headers[i].value`).
pub fn validate(headers: &[CustomHeader]) -> Result<(), SubscriptionError> {
    if headers.len() > MAX_HEADERS {
        return Err(SubscriptionError::new(
            "headers",
            format!("at most {MAX_HEADERS} custom headers"),
        ));
    }
    let total: usize = headers
        .iter()
        .map(|header| header.name.len() + header.value.len())
        .sum();
    if total > MAX_HEADERS_TOTAL_LEN {
        return Err(SubscriptionError::new(
            "headers",
            format!("names and values must be at most {MAX_HEADERS_TOTAL_LEN} bytes together"),
        ));
    }
    for (index, header) in headers.iter().enumerate() {
        let name_field = format!("headers[{index}].name");
        check_name(&header.name).map_err(|reason| SubscriptionError::new(&name_field, reason))?;
        let duplicate = headers
            .iter()
            .take(index)
            .any(|earlier| earlier.name.eq_ignore_ascii_case(&header.name));
        if duplicate {
            return Err(SubscriptionError::new(
                name_field,
                format!("`{}` is given twice", header.name),
            ));
        }
        check_value(&header.value)
            .map_err(|reason| SubscriptionError::new(format!("headers[{index}].value"), reason))?;
    }
    Ok(())
}

fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("must not be empty".to_owned());
    }
    if name.len() > MAX_HEADER_NAME_LEN {
        return Err(format!("must be at most {MAX_HEADER_NAME_LEN} bytes"));
    }
    // RFC 9110 5.6.2 token characters.
    let token = name
        .bytes()
        .all(|byte| byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte));
    if !token {
        return Err("must be letters, digits or !#$%&'*+-.^_`|~ (an HTTP field name)".to_owned());
    }
    let lower = name.to_ascii_lowercase();
    if FORBIDDEN_NAMES.contains(&lower.as_str()) {
        return Err(format!(
            "`{name}` frames or routes the request, or Herald sets it"
        ));
    }
    if let Some(prefix) = FORBIDDEN_PREFIXES
        .iter()
        .find(|prefix| lower.starts_with(*prefix))
    {
        return Err(format!("`{prefix}*` headers are set by Herald"));
    }
    Ok(())
}

/// Never quotes the value: it is a secret.
fn check_value(value: &str) -> Result<(), String> {
    if value.len() > MAX_HEADER_VALUE_LEN {
        return Err(format!("must be at most {MAX_HEADER_VALUE_LEN} bytes"));
    }
    let visible = value
        .bytes()
        .all(|byte| byte.is_ascii_graphic() || byte == b' ' || byte == b'\t');
    if !visible {
        return Err(
            "must be visible ASCII, spaces and tabs (no CR, LF or other control characters)"
                .to_owned(),
        );
    }
    if value.starts_with([' ', '\t']) || value.ends_with([' ', '\t']) {
        return Err("must not start or end with whitespace".to_owned());
    }
    Ok(())
}

/// Applies an update: every header of `set` replaces the one of the same name (any case) or is
/// added, then every name of `remove` is dropped. The caller validates the result.
pub fn apply_changes(current: &mut Vec<CustomHeader>, set: Vec<CustomHeader>, remove: &[String]) {
    for header in set {
        match current
            .iter_mut()
            .find(|existing| existing.name.eq_ignore_ascii_case(&header.name))
        {
            Some(existing) => *existing = header,
            None => current.push(header),
        }
    }
    current.retain(|header| {
        !remove
            .iter()
            .any(|name| name.eq_ignore_ascii_case(&header.name))
    });
}

#[cfg(test)]
mod tests {
    use super::{CustomHeader, MAX_HEADER_VALUE_LEN, MAX_HEADERS, apply_changes, validate};

    fn one(name: &str, value: &str) -> Vec<CustomHeader> {
        vec![CustomHeader::new(name, value)]
    }

    #[test]
    fn custom_headers_are_refused_naming_the_field_at_fault() {
        let long_value = "v".repeat(MAX_HEADER_VALUE_LEN + 1);
        let too_many: Vec<CustomHeader> = (0..=MAX_HEADERS)
            .map(|n| CustomHeader::new(format!("X-H{n}"), "v"))
            .collect();
        let too_large: Vec<CustomHeader> = (0..5)
            .map(|n| CustomHeader::new(format!("X-H{n}"), "v".repeat(1000)))
            .collect();
        let cases: Vec<(&str, Vec<CustomHeader>, Option<&str>)> = vec![
            ("none", Vec::new(), None),
            ("an API key", one("X-Api-Key", "k3y"), None),
            (
                "authorization",
                one("Authorization", "Bearer abc def"),
                None,
            ),
            ("a tab inside", one("X-A", "a\tb"), None),
            ("empty value", one("X-Empty", ""), None),
            ("empty name", one("", "v"), Some("headers[0].name")),
            ("space in name", one("X Api", "v"), Some("headers[0].name")),
            ("colon in name", one("X-Api:", "v"), Some("headers[0].name")),
            ("CR in value", one("X-A", "a\rb"), Some("headers[0].value")),
            (
                "LF in value",
                one("X-A", "a\nInjected: 1"),
                Some("headers[0].value"),
            ),
            (
                "CRLF in name",
                one("X-A\r\nB", "v"),
                Some("headers[0].name"),
            ),
            ("NUL in value", one("X-A", "a\0b"), Some("headers[0].value")),
            (
                "non-ASCII value",
                one("X-A", "café"),
                Some("headers[0].value"),
            ),
            ("leading space", one("X-A", " v"), Some("headers[0].value")),
            ("trailing tab", one("X-A", "v\t"), Some("headers[0].value")),
            (
                "value too long",
                one("X-A", &long_value),
                Some("headers[0].value"),
            ),
            (
                "name too long",
                one(&"X".repeat(65), "v"),
                Some("headers[0].name"),
            ),
            ("host", one("Host", "evil.example"), Some("headers[0].name")),
            (
                "content-length",
                one("content-length", "0"),
                Some("headers[0].name"),
            ),
            (
                "transfer-encoding",
                one("Transfer-Encoding", "chunked"),
                Some("headers[0].name"),
            ),
            (
                "connection",
                one("Connection", "close"),
                Some("headers[0].name"),
            ),
            (
                "keep-alive",
                one("Keep-Alive", "1"),
                Some("headers[0].name"),
            ),
            ("upgrade", one("Upgrade", "h2c"), Some("headers[0].name")),
            ("te", one("TE", "trailers"), Some("headers[0].name")),
            (
                "proxy-authorization",
                one("Proxy-Authorization", "x"),
                Some("headers[0].name"),
            ),
            (
                "content-type",
                one("Content-Type", "text/plain"),
                Some("headers[0].name"),
            ),
            (
                "webhook-signature",
                one("Webhook-Signature", "v1,x"),
                Some("headers[0].name"),
            ),
            (
                "webhook-request-origin",
                one("WebHook-Request-Origin", "x"),
                Some("headers[0].name"),
            ),
            ("ce-type", one("CE-Type", "x"), Some("headers[0].name")),
            (
                "traceparent",
                one("traceparent", "00-x"),
                Some("headers[0].name"),
            ),
            (
                "tracestate",
                one("TraceState", "a=b"),
                Some("headers[0].name"),
            ),
            (
                "a duplicate in another case",
                vec![CustomHeader::new("X-A", "1"), CustomHeader::new("x-a", "2")],
                Some("headers[1].name"),
            ),
            (
                "the second at fault",
                vec![
                    CustomHeader::new("X-A", "1"),
                    CustomHeader::new("Host", "h"),
                ],
                Some("headers[1].name"),
            ),
            ("too many", too_many, Some("headers")),
            ("too large together", too_large, Some("headers")),
        ];
        for (what, headers, field) in cases {
            let result = validate(&headers);
            assert_eq!(
                result.as_ref().err().map(|err| err.field.as_str()),
                field,
                "{what}: {result:?}"
            );
        }
    }

    #[test]
    fn a_refusal_and_debug_never_show_the_value() {
        let secret = "s3cr3t\nvalue";
        let err = validate(&one("X-Key", secret)).unwrap_err();
        assert!(!err.reason.contains("s3cr3t"), "{}", err.reason);
        let shown = format!("{:?}", CustomHeader::new("X-Key", "s3cr3t"));
        assert!(!shown.contains("s3cr3t"), "{shown}");
        assert!(shown.contains("X-Key"), "{shown}");
    }

    #[test]
    fn changes_replace_by_name_in_any_case_add_and_remove() {
        let mut headers = vec![
            CustomHeader::new("X-Api-Key", "old"),
            CustomHeader::new("X-Team", "a"),
        ];
        apply_changes(
            &mut headers,
            vec![
                CustomHeader::new("x-api-key", "new"),
                CustomHeader::new("X-Extra", "e"),
            ],
            &["X-TEAM".to_owned(), "X-Absent".to_owned()],
        );
        assert_eq!(
            headers,
            [
                CustomHeader::new("x-api-key", "new"),
                CustomHeader::new("X-Extra", "e"),
            ]
        );
    }
}

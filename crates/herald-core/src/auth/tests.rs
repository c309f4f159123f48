//! Bearer authentication tests.

use super::*;

fn auth(tokens: &[&str]) -> BearerAuth {
    BearerAuth {
        disabled: false,
        api_tokens: tokens.iter().map(|t| (*t).to_owned()).collect(),
    }
}

#[test]
fn accepts_only_configured_bearer_tokens() {
    let auth = auth(&["a-long-enough-token-1", "a-long-enough-token-2"]);
    assert!(auth.accepts(Some("Bearer a-long-enough-token-2")));
    assert!(auth.accepts(Some("bearer a-long-enough-token-1")));
    assert!(!auth.accepts(Some("Bearer a-long-enough-token-3")));
    assert!(!auth.accepts(Some("a-long-enough-token-1")));
    assert!(!auth.accepts(Some("Basic a-long-enough-token-1")));
    assert!(!auth.accepts(None));
    assert!(
        BearerAuth {
            disabled: true,
            api_tokens: Vec::new()
        }
        .accepts(None)
    );
}

#[test]
fn problems_name_the_section_and_its_variable() {
    assert_eq!(
        auth(&[]).problems("ingest"),
        [
            "ingest.auth.api_tokens is empty: set HERALD_INGEST__AUTH__API_TOKENS or run `herald dev`"
        ]
    );
    assert_eq!(
        auth(&["short"]).problems("control"),
        ["control.auth.api_tokens must each be at least 16 characters"]
    );
    assert!(
        BearerAuth {
            disabled: true,
            api_tokens: Vec::new()
        }
        .problems("control")
        .is_empty()
    );
}

#[test]
fn debug_output_never_shows_tokens() {
    let text = format!("{:?}", auth(&["a-long-enough-token-1"]));
    assert!(!text.contains("a-long-enough"), "{text}");
}

#[test]
fn a_bootstrap_token_is_named_by_its_index() {
    let auth = auth(&["a-long-enough-token-1", "a-long-enough-token-2"]);
    assert_eq!(
        auth.bootstrap_index(Some("Bearer a-long-enough-token-2")),
        Some(1)
    );
    assert_eq!(
        auth.bootstrap_index(Some("bearer a-long-enough-token-1")),
        Some(0)
    );
    assert_eq!(
        auth.bootstrap_index(Some("Bearer a-long-enough-token")),
        None
    );
    assert_eq!(auth.bootstrap_index(None), None);
}

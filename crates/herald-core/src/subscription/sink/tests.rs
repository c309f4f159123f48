//! Sinks and their digests: what may be shown or kept of a sink never holds its path or query.

use super::{Sink, SinkDigest};

const TOKENIZED: &str = "https://hooks.example.com:8443/in/path_t0ken?key=query_t0ken";

fn sink(text: &str) -> Sink {
    Sink::parse(text).unwrap()
}

#[test]
fn the_host_forms_and_debug_show_no_path_or_query() {
    let sink = sink(TOKENIZED);
    assert_eq!(sink.scheme_and_host(), "https://hooks.example.com:8443");
    assert_eq!(sink.authority(), "hooks.example.com:8443");
    assert_eq!(
        format!("{sink:?}"),
        "Sink(https://hooks.example.com:8443/…)"
    );
    let default_port = self::sink("http://example.com/hook?token=x");
    assert_eq!(default_port.scheme_and_host(), "http://example.com");
}

#[test]
fn a_digest_is_the_hex_sha256_of_the_url_and_matches_that_sink_only() {
    let digest = sink(TOKENIZED).digest();
    assert_eq!(digest.as_str().len(), 64);
    assert!(!digest.as_str().contains("t0ken"));
    // `printf %s https://example.com/hook | sha256sum`
    assert_eq!(
        sink("https://example.com/hook").digest().as_str(),
        "19f1352238b915338c91b6a9fdd2dd4be99a13c18e95bbfbf1443ee01fb616b6"
    );
    assert!(digest.is_of(&sink(TOKENIZED)));
    assert!(!digest.is_of(&sink(
        "https://hooks.example.com:8443/in/path_t0ken?key=other"
    )));
}

#[test]
fn a_stored_digest_reads_back_and_a_stored_url_reads_as_its_digest() {
    let digest = sink(TOKENIZED).digest();
    let json = serde_json::to_string(&digest).unwrap();
    assert_eq!(json, format!("\"{}\"", digest.as_str()));
    let read: SinkDigest = serde_json::from_str(&json).unwrap();
    assert_eq!(read, digest);
    // Written before digests existed: the URL itself.
    let legacy: SinkDigest = serde_json::from_value(serde_json::json!(TOKENIZED)).unwrap();
    assert_eq!(legacy, digest);
}

#[test]
fn a_stored_digest_that_is_neither_form_is_refused_without_quoting_it() {
    for text in [
        "ftp://example.com/secret_t0ken",
        "ABCDEF",
        "not a url secret_t0ken",
    ] {
        let err = serde_json::from_value::<SinkDigest>(serde_json::json!(text)).unwrap_err();
        assert!(!err.to_string().contains("t0ken"), "{err}");
    }
}

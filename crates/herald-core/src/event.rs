//! CloudEvents 1.0: validation of incoming events and their one stored form.
//!
//! Herald stores every event as structured-mode JSON (CloudEvents JSON Event Format), and
//! delivers it so, or in HTTP binary mode ([`Event::to_binary`]) for subscriptions that ask.
//! An event that arrives in structured mode keeps the producer's exact bytes, so no number or
//! string is re-encoded on the way; an event that arrives in binary mode (HTTP `ce-` headers,
//! or NATS headers) is converted once, here, with its payload embedded raw when it is JSON.
//! Validation follows the CloudEvents core specification (section "Context Attributes") and
//! reports the first offending attribute by name.
//!
//! No I/O: callers hand in bytes and header pairs.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt::{self, Write as _};

use base64::Engine as _;
use bytes::Bytes;
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};

use crate::ErrorCode;

#[cfg(test)]
mod tests;

/// The only CloudEvents version Herald accepts.
pub const SPEC_VERSION: &str = "1.0";

/// Media type of a structured-mode CloudEvent in JSON.
pub const STRUCTURED_CONTENT_TYPE: &str = "application/cloudevents+json";

/// What every structured-mode CloudEvents media type starts with (`+json`, `-batch+json`, ...).
const STRUCTURED_PREFIX: &str = "application/cloudevents";

/// Media type of a CloudEvents JSON batch.
pub const BATCH_CONTENT_TYPE: &str = "application/cloudevents-batch+json";

/// A validated CloudEvent together with its structured JSON encoding.
#[derive(Clone, PartialEq)]
pub struct Event {
    attributes: Attributes,
    structured: Bytes,
}

/// The context attributes of an event, in their canonical string or typed form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attributes {
    pub id: String,
    pub source: String,
    pub ty: String,
    pub datacontenttype: Option<String>,
    pub dataschema: Option<String>,
    pub subject: Option<String>,
    pub time: Option<String>,
    pub extensions: BTreeMap<String, ExtensionValue>,
}

/// The value of an extension attribute: the CloudEvents types a JSON event can carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExtensionValue {
    String(String),
    Boolean(bool),
    Integer(i32),
}

/// Why an event was refused. Always names the attribute at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    #[error("body is not a JSON object: {0}")]
    NotJson(String),
    #[error("missing required attribute `{0}`")]
    Missing(&'static str),
    #[error("attribute `{attribute}`: {reason}")]
    Invalid { attribute: String, reason: String },
    #[error("unsupported specversion `{0}`: Herald accepts \"1.0\"")]
    SpecVersion(String),
    #[error("data: {0}")]
    Data(String),
}

impl EventError {
    /// Returns the error code of every event validation failure: the caller sent a bad event.
    pub fn code(&self) -> ErrorCode {
        ErrorCode::InvalidArgument
    }

    /// Returns a short snake_case name of the failure, a bounded metric label.
    pub fn reason(&self) -> &'static str {
        match self {
            EventError::NotJson(_) => "not_json",
            EventError::Missing(_) => "missing_attribute",
            EventError::Invalid { .. } => "invalid_attribute",
            EventError::SpecVersion(_) => "unsupported_specversion",
            EventError::Data(_) => "invalid_data",
        }
    }

    fn invalid(attribute: &str, reason: impl Into<String>) -> EventError {
        EventError::Invalid {
            attribute: attribute.to_owned(),
            reason: reason.into(),
        }
    }
}

/// The stable message id of an event: derived from `(source, id)`, which CloudEvents says
/// identifies an event uniquely. It is the JetStream deduplication id (`Nats-Msg-Id`) and the
/// Standard Webhooks `webhook-id` of every delivery of the event.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MessageId(String);

impl MessageId {
    /// Derives the message id of the event `(source, id)`.
    ///
    /// The source is length-prefixed so that no two different pairs hash the same input.
    pub fn derive(source: &str, id: &str) -> MessageId {
        let mut hasher = Sha256::new();
        hasher.update((source.len() as u64).to_be_bytes());
        hasher.update(source.as_bytes());
        hasher.update(id.as_bytes());
        let digest = hasher.finalize();
        let mut text = String::with_capacity(4 + 32);
        text.push_str("msg_");
        crate::digest::push_hex(&mut text, digest.get(..16).unwrap_or_default());
        MessageId(text)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Event {
    /// Parses and validates a structured-mode event (CloudEvents JSON Event Format).
    ///
    /// The stored encoding is `body` itself, byte for byte.
    pub fn from_structured(body: Bytes) -> Result<Event, EventError> {
        let members: BTreeMap<Cow<'_, str>, &RawValue> =
            serde_json::from_slice(&body).map_err(|err| EventError::NotJson(err.to_string()))?;
        let attributes = attributes_from_json(&members)?;
        drop(members);
        Ok(Event {
            attributes,
            structured: body,
        })
    }

    /// Builds an event from binary-mode parts: `ce-` prefixed headers (any case, values still
    /// percent-encoded as the HTTP and NATS bindings send them), the content type and the body.
    pub fn from_binary<'a>(
        headers: impl IntoIterator<Item = (&'a str, &'a [u8])>,
        content_type: Option<&str>,
        body: &[u8],
    ) -> Result<Event, EventError> {
        let mut raw: BTreeMap<String, String> = BTreeMap::new();
        for (name, value) in headers {
            let Some(attribute) = strip_prefix_ignore_case(name, "ce-") else {
                continue;
            };
            let attribute = attribute.to_ascii_lowercase();
            let value = decode_header_value(value)
                .map_err(|reason| EventError::invalid(&attribute, reason))?;
            raw.insert(attribute, value);
        }
        let spec_version = raw
            .remove("specversion")
            .ok_or(EventError::Missing("specversion"))?;
        if spec_version != SPEC_VERSION {
            return Err(EventError::SpecVersion(spec_version));
        }
        if raw.contains_key("datacontenttype") {
            return Err(EventError::invalid(
                "datacontenttype",
                "binary mode carries it in the content-type header, not ce-datacontenttype",
            ));
        }
        let mut take = |name: &'static str| raw.remove(name);
        let id = take("id").ok_or(EventError::Missing("id"))?;
        let source = take("source").ok_or(EventError::Missing("source"))?;
        let ty = take("type").ok_or(EventError::Missing("type"))?;
        let dataschema = take("dataschema");
        let subject = take("subject");
        let time = take("time");
        let extensions = raw
            .into_iter()
            .map(|(k, v)| (k, ExtensionValue::String(v)))
            .collect();
        let datacontenttype = content_type.map(str::to_owned);
        let attributes = Attributes {
            id,
            source,
            ty,
            datacontenttype,
            dataschema,
            subject,
            time,
            extensions,
        };
        attributes.validate()?;
        let structured = encode_structured(&attributes, body)?;
        Ok(Event {
            attributes,
            structured: Bytes::from(structured),
        })
    }

    /// Decodes a message stored on the events stream: structured mode when its content type
    /// is a CloudEvents one (what ingest stores), binary mode (`ce-` headers, the payload as
    /// data) otherwise, as producers publishing to NATS directly may (CloudEvents NATS binding).
    /// The one decoder of stored messages: delivery and replay read them alike.
    pub fn from_stored<'a>(
        content_type: Option<&str>,
        headers: impl IntoIterator<Item = (&'a str, &'a [u8])>,
        payload: &Bytes,
    ) -> Result<Event, EventError> {
        let structured = content_type.is_some_and(|value| {
            value
                .get(..STRUCTURED_PREFIX.len())
                .is_some_and(|head| head.eq_ignore_ascii_case(STRUCTURED_PREFIX))
        });
        if structured {
            return Event::from_structured(payload.clone());
        }
        Event::from_binary(headers, content_type, payload)
    }

    pub fn attributes(&self) -> &Attributes {
        &self.attributes
    }

    pub fn id(&self) -> &str {
        &self.attributes.id
    }

    pub fn source(&self) -> &str {
        &self.attributes.source
    }

    pub fn ty(&self) -> &str {
        &self.attributes.ty
    }

    /// Returns the structured JSON encoding: what is stored in JetStream and delivered.
    pub fn structured(&self) -> &Bytes {
        &self.structured
    }

    /// Returns the event in HTTP binary mode: attributes as `ce-` headers, data as the body.
    ///
    /// Reads the data back out of the structured form, so a JSON payload is sent byte for
    /// byte as the producer wrote it. Every stored event was validated when it was decoded, so
    /// this fails only on bytes that never passed [`Event::from_structured`].
    pub fn to_binary(&self) -> Result<BinaryForm, EventError> {
        let members: BTreeMap<Cow<'_, str>, &RawValue> =
            serde_json::from_slice(&self.structured)
                .map_err(|err| EventError::NotJson(err.to_string()))?;
        let present = |name: &str| members.get(name).copied().filter(|raw| raw.get() != "null");
        let attributes = &self.attributes;
        let (content_type, body) = if let Some(raw) = present("data_base64") {
            let encoded: String = serde_json::from_str(raw.get())
                .map_err(|_| EventError::invalid("data_base64", "must be a string"))?;
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(encoded.as_bytes())
                .map_err(|_| EventError::invalid("data_base64", "must be valid base64"))?;
            (attributes.datacontenttype.clone(), Bytes::from(decoded))
        } else if let Some(raw) = present("data") {
            let content_type = attributes
                .datacontenttype
                .clone()
                .unwrap_or_else(|| "application/json".to_owned());
            let text = match serde_json::from_str::<String>(raw.get()) {
                Ok(text) if !is_json_media_type(&content_type) => text.into_bytes(),
                _ => raw.get().as_bytes().to_vec(),
            };
            (Some(content_type), Bytes::from(text))
        } else {
            (attributes.datacontenttype.clone(), Bytes::new())
        };
        let mut headers = Vec::with_capacity(4 + attributes.extensions.len());
        let mut header = |name: &str, value: &str| {
            headers.push((format!("ce-{name}"), encode_header_value(value)));
        };
        header("specversion", SPEC_VERSION);
        header("id", &attributes.id);
        header("source", &attributes.source);
        header("type", &attributes.ty);
        let optional = [
            ("dataschema", &attributes.dataschema),
            ("subject", &attributes.subject),
            ("time", &attributes.time),
        ];
        for (name, value) in optional {
            if let Some(value) = value {
                header(name, value);
            }
        }
        for (name, value) in &attributes.extensions {
            header(name, &value.canonical());
        }
        Ok(BinaryForm {
            headers,
            content_type,
            body,
        })
    }

    /// Returns the message id derived from `(source, id)`.
    pub fn message_id(&self) -> MessageId {
        MessageId::derive(&self.attributes.source, &self.attributes.id)
    }

    /// Returns the ordering key: the `partitionkey` extension (CloudEvents Partitioning
    /// extension) when present.
    pub fn partition_key(&self) -> Option<Cow<'_, str>> {
        self.attributes
            .extensions
            .get("partitionkey")
            .map(ExtensionValue::canonical)
    }

    /// Returns the subject partition the event is stored on (`subject.rs`): its ordering key's,
    /// or, without one, its message id's; `message_id` is [`Event::message_id`], derived once
    /// by the caller.
    pub fn partition(&self, message_id: &MessageId) -> u32 {
        match self.partition_key() {
            Some(key) => crate::subject::partition_of(&key),
            None => crate::subject::partition_of(message_id.as_str()),
        }
    }

    /// Returns the canonical string form of a context attribute or extension, by name.
    pub fn attribute(&self, name: &str) -> Option<Cow<'_, str>> {
        self.attributes.get(name)
    }
}

/// An event laid out for CloudEvents HTTP binary mode ("Binary Content Mode"): its context
/// attributes as `ce-` headers, its data as the body, the data's media type as `Content-Type`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BinaryForm {
    /// `ce-specversion`, `ce-id`, `ce-source`, `ce-type`, then the optional attributes and the
    /// extensions; names lower-case, values percent-encoded as the binding asks
    /// ([`encode_header_value`]), so every value is printable ASCII.
    pub headers: Vec<(String, String)>,
    /// The `Content-Type` to send: the event's `datacontenttype`, or `application/json` for JSON
    /// `data` without one (the JSON Event Format's implied type); `None` when the event has
    /// neither.
    pub content_type: Option<String>,
    /// The data: JSON exactly as stored, a JSON string's text for other media types, and
    /// `data_base64` decoded to its bytes; empty when the event has no data.
    pub body: Bytes,
}

impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The payload may hold personal data: it is never printed.
        f.debug_struct("Event")
            .field("id", &self.attributes.id)
            .field("source", &self.attributes.source)
            .field("type", &self.attributes.ty)
            .field("structured_len", &self.structured.len())
            .finish()
    }
}

impl Attributes {
    /// Returns the canonical string form of an attribute (CloudEvents "Type System").
    pub fn get(&self, name: &str) -> Option<Cow<'_, str>> {
        fn borrowed(value: &Option<String>) -> Option<Cow<'_, str>> {
            value.as_deref().map(Cow::Borrowed)
        }
        match name {
            "specversion" => Some(Cow::Borrowed(SPEC_VERSION)),
            "id" => Some(Cow::Borrowed(&self.id)),
            "source" => Some(Cow::Borrowed(&self.source)),
            "type" => Some(Cow::Borrowed(&self.ty)),
            "datacontenttype" => borrowed(&self.datacontenttype),
            "dataschema" => borrowed(&self.dataschema),
            "subject" => borrowed(&self.subject),
            "time" => borrowed(&self.time),
            _ => self.extensions.get(name).map(ExtensionValue::canonical),
        }
    }

    fn validate(&self) -> Result<(), EventError> {
        check_non_empty_string("id", &self.id)?;
        check_non_empty_string("source", &self.source)?;
        check_uri_reference("source", &self.source)?;
        check_non_empty_string("type", &self.ty)?;
        if let Some(datacontenttype) = &self.datacontenttype {
            check_non_empty_string("datacontenttype", datacontenttype)?;
            check_media_type(datacontenttype)?;
        }
        if let Some(dataschema) = &self.dataschema {
            check_non_empty_string("dataschema", dataschema)?;
            if url::Url::parse(dataschema).is_err() {
                return Err(EventError::invalid("dataschema", "must be an absolute URI"));
            }
        }
        if let Some(subject) = &self.subject {
            check_non_empty_string("subject", subject)?;
        }
        if let Some(time) = &self.time {
            let parsed =
                time::OffsetDateTime::parse(time, &time::format_description::well_known::Rfc3339);
            if parsed.is_err() {
                return Err(EventError::invalid("time", "must be an RFC 3339 timestamp"));
            }
        }
        for (name, value) in &self.extensions {
            check_extension_name(name)?;
            if let ExtensionValue::String(text) = value {
                check_string(name, text)?;
            }
        }
        Ok(())
    }
}

impl ExtensionValue {
    /// Returns the canonical string representation (CloudEvents "Type System").
    pub fn canonical(&self) -> Cow<'_, str> {
        match self {
            ExtensionValue::String(text) => Cow::Borrowed(text),
            ExtensionValue::Boolean(true) => Cow::Borrowed("true"),
            ExtensionValue::Boolean(false) => Cow::Borrowed("false"),
            ExtensionValue::Integer(number) => Cow::Owned(number.to_string()),
        }
    }
}

const CONTEXT_ATTRIBUTES: [&str; 8] = [
    "id",
    "source",
    "specversion",
    "type",
    "datacontenttype",
    "dataschema",
    "subject",
    "time",
];

fn attributes_from_json(
    members: &BTreeMap<Cow<'_, str>, &RawValue>,
) -> Result<Attributes, EventError> {
    let spec_version = required_string(members, "specversion")?;
    if spec_version != SPEC_VERSION {
        return Err(EventError::SpecVersion(spec_version));
    }
    let mut extensions = BTreeMap::new();
    for (name, raw) in members {
        let name = name.as_ref();
        if CONTEXT_ATTRIBUTES.contains(&name) || name == "data" || name == "data_base64" {
            continue;
        }
        // The first parse only delimited the member: a number out of range (`1e400`) or
        // nesting past serde_json's recursion limit fails only now, and is the producer's error.
        let value: serde_json::Value = serde_json::from_str(raw.get())
            .map_err(|err| EventError::invalid(name, format!("not a valid JSON value: {err}")))?;
        let value = match value {
            serde_json::Value::Null => continue,
            serde_json::Value::String(text) => ExtensionValue::String(text),
            serde_json::Value::Bool(flag) => ExtensionValue::Boolean(flag),
            serde_json::Value::Number(number) => {
                let integer = number.as_i64().and_then(|n| i32::try_from(n).ok());
                let Some(integer) = integer else {
                    return Err(EventError::invalid(
                        name,
                        "a number extension must be a 32-bit integer",
                    ));
                };
                ExtensionValue::Integer(integer)
            }
            serde_json::Value::Array(_) | serde_json::Value::Object(_) => {
                return Err(EventError::invalid(
                    name,
                    "an extension must be a string, a boolean or an integer",
                ));
            }
        };
        extensions.insert(name.to_owned(), value);
    }
    let has_data = members.get("data").is_some_and(|raw| raw.get() != "null");
    if let Some(raw) = members.get("data_base64").filter(|raw| raw.get() != "null") {
        if has_data {
            return Err(EventError::Data(
                "`data` and `data_base64` are mutually exclusive".into(),
            ));
        }
        let Ok(encoded) = serde_json::from_str::<String>(raw.get()) else {
            return Err(EventError::invalid("data_base64", "must be a string"));
        };
        if base64::engine::general_purpose::STANDARD
            .decode(encoded.as_bytes())
            .is_err()
        {
            return Err(EventError::invalid("data_base64", "must be valid base64"));
        }
    }
    let attributes = Attributes {
        id: required_string(members, "id")?,
        source: required_string(members, "source")?,
        ty: required_string(members, "type")?,
        datacontenttype: optional_string(members, "datacontenttype")?,
        dataschema: optional_string(members, "dataschema")?,
        subject: optional_string(members, "subject")?,
        time: optional_string(members, "time")?,
        extensions,
    };
    attributes.validate()?;
    Ok(attributes)
}

fn required_string(
    members: &BTreeMap<Cow<'_, str>, &RawValue>,
    name: &'static str,
) -> Result<String, EventError> {
    optional_string(members, name)?.ok_or(EventError::Missing(name))
}

fn optional_string(
    members: &BTreeMap<Cow<'_, str>, &RawValue>,
    name: &'static str,
) -> Result<Option<String>, EventError> {
    let Some(raw) = members.get(name) else {
        return Ok(None);
    };
    match serde_json::from_str::<Option<String>>(raw.get()) {
        Ok(value) => Ok(value),
        Err(_) => Err(EventError::invalid(name, "must be a string")),
    }
}

fn check_non_empty_string(name: &str, value: &str) -> Result<(), EventError> {
    if value.is_empty() {
        return Err(EventError::invalid(name, "must not be empty"));
    }
    check_string(name, value)
}

/// CloudEvents "Type System", String: no control characters U+0000-U+001F and U+007F-U+009F.
fn check_string(name: &str, value: &str) -> Result<(), EventError> {
    if value
        .chars()
        .any(|c| matches!(c, '\u{0}'..='\u{1f}' | '\u{7f}'..='\u{9f}'))
    {
        return Err(EventError::invalid(
            name,
            "must not contain control characters",
        ));
    }
    Ok(())
}

fn check_uri_reference(name: &str, value: &str) -> Result<(), EventError> {
    if value
        .chars()
        .any(|c| c.is_whitespace() || matches!(c, '"' | '<' | '>' | '\\' | '^' | '`'))
    {
        return Err(EventError::invalid(name, "must be a URI-reference"));
    }
    Ok(())
}

/// RFC 2046 `type/subtype` with optional parameters.
fn check_media_type(value: &str) -> Result<(), EventError> {
    let essence = value.split(';').next().unwrap_or_default().trim();
    let valid = essence.split_once('/').is_some_and(|(kind, subtype)| {
        !kind.is_empty()
            && !subtype.is_empty()
            && essence
                .chars()
                .all(|c| c.is_ascii_graphic() && !"()<>@,;:\\\"[]?=".contains(c))
    });
    if valid {
        Ok(())
    } else {
        Err(EventError::invalid(
            "datacontenttype",
            "must be a media type such as application/json",
        ))
    }
}

/// CloudEvents "Attribute Naming Convention": lower-case ASCII letters and digits only.
fn check_extension_name(name: &str) -> Result<(), EventError> {
    let valid = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if valid {
        Ok(())
    } else {
        Err(EventError::invalid(
            name,
            "extension names must be lower-case ASCII letters and digits",
        ))
    }
}

/// Returns true for JSON media types: `application/json`, `text/json` and any `+json` suffix.
pub fn is_json_media_type(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json" || essence == "text/json" || essence.ends_with("+json")
}

fn is_text_media_type(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence.starts_with("text/") || essence.ends_with("+xml") || essence == "application/xml"
}

/// Writes the structured JSON form of a binary-mode event. JSON payloads are embedded as they
/// are; text payloads become a JSON string; anything else goes to `data_base64`.
fn encode_structured(attributes: &Attributes, body: &[u8]) -> Result<Vec<u8>, EventError> {
    fn member(out: &mut Vec<u8>, name: &str, value: &str) {
        out.push(b',');
        write_json_string(out, name);
        out.push(b':');
        write_json_string(out, value);
    }
    let mut out = Vec::with_capacity(body.len() + 256);
    out.extend_from_slice(br#"{"specversion":"1.0""#);
    member(&mut out, "id", &attributes.id);
    member(&mut out, "source", &attributes.source);
    member(&mut out, "type", &attributes.ty);
    let optional = [
        ("datacontenttype", &attributes.datacontenttype),
        ("dataschema", &attributes.dataschema),
        ("subject", &attributes.subject),
        ("time", &attributes.time),
    ];
    for (name, value) in optional {
        if let Some(value) = value {
            member(&mut out, name, value);
        }
    }
    for (name, value) in &attributes.extensions {
        member(&mut out, name, &value.canonical());
    }
    if !body.is_empty() {
        let declared = attributes.datacontenttype.as_deref();
        let content_type = declared.unwrap_or("application/json");
        // Without a content type, data that is not JSON is binary data, kept as it came: the
        // binary-mode form of an event holding `data_base64` and no `datacontenttype` (found
        // by the `batch` fuzz target) must decode back to it.
        let json = if is_json_media_type(content_type) {
            match serde_json::from_slice::<&RawValue>(body) {
                Ok(raw) => Some(raw),
                Err(_) if declared.is_none() => None,
                Err(err) => {
                    return Err(EventError::Data(format!(
                        "the content type is JSON but the body is not: {err}"
                    )));
                }
            }
        } else {
            None
        };
        if let Some(raw) = json {
            out.extend_from_slice(br#","data":"#);
            out.extend_from_slice(raw.get().as_bytes());
        } else if let (true, Some(_), Ok(text)) = (
            is_text_media_type(content_type),
            declared,
            std::str::from_utf8(body),
        ) {
            out.extend_from_slice(br#","data":"#);
            write_json_string(&mut out, text);
        } else {
            out.extend_from_slice(br#","data_base64":""#);
            out.extend_from_slice(
                base64::engine::general_purpose::STANDARD
                    .encode(body)
                    .as_bytes(),
            );
            out.push(b'"');
        }
    }
    out.push(b'}');
    Ok(out)
}

/// Appends `text` as a JSON string.
fn write_json_string(out: &mut Vec<u8>, text: &str) {
    #[allow(
        clippy::expect_used,
        reason = "serializing a str into a Vec<u8> has no failure path in serde_json"
    )]
    serde_json::to_writer(out, text).expect("writing a str to a Vec should not fail");
}

fn strip_prefix_ignore_case<'a>(name: &'a str, prefix: &str) -> Option<&'a str> {
    let head = name.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &name[prefix.len()..])
}

/// Decodes a binary-mode header value: first RFC 7230 double-quoted-string unescaping, then one
/// round of percent-decoding (HTTP and NATS protocol bindings, "Metadata Headers").
pub fn decode_header_value(value: &[u8]) -> Result<String, String> {
    let trimmed = value.trim_ascii();
    let unquoted: Cow<'_, [u8]> = match trimmed {
        [b'"', inner @ .., b'"'] => {
            let mut out = Vec::with_capacity(inner.len());
            let mut bytes = inner.iter();
            while let Some(&byte) = bytes.next() {
                if byte == b'\\' {
                    let Some(&escaped) = bytes.next() else {
                        return Err("unterminated escape in quoted value".to_owned());
                    };
                    out.push(escaped);
                } else {
                    out.push(byte);
                }
            }
            Cow::Owned(out)
        }
        _ => Cow::Borrowed(trimmed),
    };
    let mut out = Vec::with_capacity(unquoted.len());
    let mut index = 0;
    while let Some(&byte) = unquoted.get(index) {
        if byte == b'%' {
            let hex = unquoted
                .get(index + 1..index + 3)
                .ok_or("truncated percent-escape")?;
            let text = std::str::from_utf8(hex).map_err(|_| "invalid percent-escape")?;
            let decoded = u8::from_str_radix(text, 16).map_err(|_| "invalid percent-escape")?;
            out.push(decoded);
            index += 3;
        } else {
            out.push(byte);
            index += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "percent-decoded value is not UTF-8".to_owned())
}

/// Percent-encodes a value for a binary-mode header (the inverse of [`decode_header_value`]).
pub fn encode_header_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if (0x21..=0x7e).contains(&byte) && byte != b'"' && byte != b'%' {
            out.push(char::from(byte));
        } else {
            // Writing to a String cannot fail.
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}

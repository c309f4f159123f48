//! The event-type catalog: registered event types, each with a description, an owner and one or
//! more versions carrying a JSON Schema for `data` and example payloads, and the compiled form
//! ingest checks events against.
//!
//! An event names its version with `dataschema` (the URI a version registers) or the
//! `dataversion` extension ([`VERSION_EXTENSION`]); an event naming neither is checked against
//! the type's latest version. Schemas are compiled once per catalog revision
//! ([`CompiledCatalog::compile`]), never per event; remote `$ref`s are not fetched (no I/O), so
//! a schema that needs one is refused when it is registered. The serde form of [`EventType`] is
//! what the catalog bucket stores. No I/O.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::event::{Event, is_json_media_type};
use crate::subject;

#[cfg(test)]
mod tests;

/// The extension attribute an event names its data's version with, when it has no `dataschema`.
pub const VERSION_EXTENSION: &str = "dataversion";

/// Longest description accepted, in bytes.
pub const MAX_DESCRIPTION_LEN: usize = 4096;

/// One registered event type, as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventType {
    /// The CloudEvents `type` (`com.example.order.created`).
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Who to ask about it: a team, a person, an address.
    #[serde(default)]
    pub owner: String,
    /// Oldest first; the last one is the latest.
    pub versions: Vec<Version>,
    /// Why the type is deprecated, and what to use instead; `None` while it is not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deprecated: Option<String>,
}

/// One version of an event type's payload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Version {
    /// The version's name (`1`, `2024-06`), matched against the `dataversion` extension.
    pub version: String,
    /// The `dataschema` URI events of this version carry, if they carry one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataschema: Option<String>,
    /// The JSON Schema `data` must satisfy.
    pub schema: serde_json::Value,
    /// Example payloads, each valid against `schema`.
    #[serde(default)]
    pub examples: Vec<serde_json::Value>,
}

/// Why an event type was refused, with the path of the offending field (`versions[1].schema`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct CatalogError {
    pub field: String,
    pub reason: String,
}

impl EventType {
    /// Checks the type before it is stored: a name Herald accepts as an event type, at least one
    /// version, unique version names and `dataschema` URIs, schemas that compile and examples
    /// they accept.
    pub fn validate(&self) -> Result<(), CatalogError> {
        let error = |field: &str, reason: String| CatalogError {
            field: field.to_owned(),
            reason,
        };
        if self.name.is_empty() || subject::event_subject(0, &self.name).is_none() {
            return Err(error(
                "name",
                "must be a non-empty event type that fits a subject".to_owned(),
            ));
        }
        if self.description.len() > MAX_DESCRIPTION_LEN {
            return Err(error(
                "description",
                format!("is longer than {MAX_DESCRIPTION_LEN} bytes"),
            ));
        }
        if self.versions.is_empty() {
            return Err(error(
                "versions",
                "at least one version is needed".to_owned(),
            ));
        }
        for (index, version) in self.versions.iter().enumerate() {
            let field = |name: &str| format!("versions[{index}].{name}");
            if version.version.is_empty() {
                return Err(error(&field("version"), "must not be empty".to_owned()));
            }
            let earlier = self.versions.get(..index).unwrap_or_default();
            if earlier.iter().any(|other| other.version == version.version) {
                return Err(error(
                    &field("version"),
                    format!("`{}` is registered twice", version.version),
                ));
            }
            if version.dataschema.is_some()
                && earlier
                    .iter()
                    .any(|other| other.dataschema == version.dataschema)
            {
                return Err(error(
                    &field("dataschema"),
                    "two versions name the same dataschema".to_owned(),
                ));
            }
            let validator = compile_schema(&version.schema)
                .map_err(|reason| error(&field("schema"), reason))?;
            for (example_index, example) in version.examples.iter().enumerate() {
                if let Err(violation) = validator.validate(example) {
                    return Err(error(
                        &format!("versions[{index}].examples[{example_index}]"),
                        format!(
                            "does not satisfy the schema at `{}`: {violation}",
                            violation.instance_path()
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Returns the latest version.
    pub fn latest(&self) -> Option<&Version> {
        self.versions.last()
    }
}

/// Compiles a JSON Schema (any draft `jsonschema` knows, 2020-12 when it names none); remote
/// references are not resolved.
fn compile_schema(schema: &serde_json::Value) -> Result<jsonschema::Validator, String> {
    jsonschema::validator_for(schema).map_err(|err| format!("not a usable JSON Schema: {err}"))
}

/// The catalog compiled for checking events: one validator per version of every type.
#[derive(Debug, Default)]
pub struct CompiledCatalog {
    types: HashMap<String, CompiledType>,
}

#[derive(Debug)]
struct CompiledType {
    versions: Vec<CompiledVersion>,
}

#[derive(Debug)]
struct CompiledVersion {
    version: String,
    dataschema: Option<String>,
    validator: jsonschema::Validator,
}

/// What the catalog says about one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The type is registered and `data` satisfies the version's schema.
    Valid,
    /// The type is not in the catalog.
    Unregistered,
    /// The type is registered and the event does not satisfy it.
    Invalid(Violation),
}

/// Why an event of a registered type was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{pointer}: {message}")]
pub struct Violation {
    /// The version checked against, when one was found.
    pub version: Option<String>,
    /// JSON Pointer into the event (`/data/total`; `/dataschema` when no version matches).
    pub pointer: String,
    pub message: String,
}

impl CompiledCatalog {
    /// Compiles every version of every type. A stored type whose schema no longer compiles (it
    /// was checked when registered) is left out, so its events count as unregistered, and is
    /// returned with the reason.
    pub fn compile<'t>(
        event_types: impl IntoIterator<Item = &'t EventType>,
    ) -> (CompiledCatalog, Vec<CatalogError>) {
        let mut types = HashMap::new();
        let mut errors = Vec::new();
        'types: for event_type in event_types {
            let mut versions = Vec::with_capacity(event_type.versions.len());
            for (index, version) in event_type.versions.iter().enumerate() {
                match compile_schema(&version.schema) {
                    Ok(validator) => versions.push(CompiledVersion {
                        version: version.version.clone(),
                        dataschema: version.dataschema.clone(),
                        validator,
                    }),
                    Err(reason) => {
                        errors.push(CatalogError {
                            field: format!("{}.versions[{index}].schema", event_type.name),
                            reason,
                        });
                        continue 'types;
                    }
                }
            }
            types.insert(event_type.name.clone(), CompiledType { versions });
        }
        (CompiledCatalog { types }, errors)
    }

    /// Returns the number of registered types.
    pub fn len(&self) -> usize {
        self.types.len()
    }

    /// Returns true when no type is registered.
    pub fn is_empty(&self) -> bool {
        self.types.is_empty()
    }

    /// Checks `event` against its type's version: the one its `dataschema` names, else the one
    /// its `dataversion` extension names, else the latest.
    pub fn check(&self, event: &Event) -> Verdict {
        let Some(compiled) = self.types.get(event.ty()) else {
            return Verdict::Unregistered;
        };
        let attributes = event.attributes();
        let named_version = attributes.extensions.get(VERSION_EXTENSION);
        let version = if let Some(dataschema) = &attributes.dataschema {
            let found = compiled
                .versions
                .iter()
                .find(|version| version.dataschema.as_ref() == Some(dataschema));
            match (found, named_version) {
                (Some(version), _) => version,
                // A `dataschema` Herald does not know, but a version named otherwise.
                (None, Some(_)) => match self.by_name(compiled, event) {
                    Ok(version) => version,
                    Err(violation) => return Verdict::Invalid(violation),
                },
                (None, None) => {
                    return Verdict::Invalid(Violation {
                        version: None,
                        pointer: "/dataschema".to_owned(),
                        message: format!(
                            "`{dataschema}` is no registered version of `{}`",
                            event.ty()
                        ),
                    });
                }
            }
        } else if named_version.is_some() {
            match self.by_name(compiled, event) {
                Ok(version) => version,
                Err(violation) => return Verdict::Invalid(violation),
            }
        } else {
            match compiled.versions.last() {
                Some(version) => version,
                None => return Verdict::Valid,
            }
        };
        let data = match data_of(event) {
            Ok(data) => data,
            Err(message) => {
                return Verdict::Invalid(Violation {
                    version: Some(version.version.clone()),
                    pointer: "/data".to_owned(),
                    message,
                });
            }
        };
        match version.validator.validate(&data) {
            Ok(()) => Verdict::Valid,
            Err(error) => Verdict::Invalid(Violation {
                version: Some(version.version.clone()),
                pointer: format!("/data{}", error.instance_path()),
                message: error.to_string(),
            }),
        }
    }

    fn by_name<'c>(
        &self,
        compiled: &'c CompiledType,
        event: &Event,
    ) -> Result<&'c CompiledVersion, Violation> {
        let named = event
            .attributes()
            .extensions
            .get(VERSION_EXTENSION)
            .map(|value| value.canonical().into_owned())
            .unwrap_or_default();
        compiled
            .versions
            .iter()
            .find(|version| version.version == named)
            .ok_or_else(|| Violation {
                version: None,
                pointer: format!("/{VERSION_EXTENSION}"),
                message: format!("`{named}` is no registered version of `{}`", event.ty()),
            })
    }
}

/// Returns the event's `data` as JSON (`null` when it has none); an error when it carries data
/// that is not JSON, which no schema can check.
fn data_of(event: &Event) -> Result<serde_json::Value, String> {
    #[derive(Deserialize)]
    struct DataOnly {
        data: Option<serde_json::Value>,
        data_base64: Option<serde::de::IgnoredAny>,
    }
    let is_json = event
        .attributes()
        .datacontenttype
        .as_deref()
        .is_none_or(is_json_media_type);
    let parsed: DataOnly = serde_json::from_slice(event.structured())
        .map_err(|err| format!("the event cannot be read: {err}"))?;
    if parsed.data_base64.is_some() || !is_json {
        return Err(
            "data of a registered type must be JSON, to be checked against its schema".to_owned(),
        );
    }
    Ok(parsed.data.unwrap_or(serde_json::Value::Null))
}

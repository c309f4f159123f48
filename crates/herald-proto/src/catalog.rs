//! Conversions between the catalog's wire form (`pb::EventType`, schemas and examples as JSON
//! text) and `herald_core::catalog::EventType`. Parsing the JSON text is checked here, naming
//! the field; everything else is checked by `EventType::validate`.

use herald_core::catalog::{CatalogError, EventType, Version};

use crate::v1 as pb;

#[cfg(test)]
mod tests;

/// Returns the event type a create request describes; the JSON text of schemas and examples
/// must parse, and an error names the field (`versions[0].examples[1]`). Not validated further.
pub fn event_type_from_pb(request: &pb::CreateEventTypeRequest) -> Result<EventType, CatalogError> {
    let mut versions = Vec::with_capacity(request.versions.len());
    for (index, version) in request.versions.iter().enumerate() {
        let schema = parse_json(&version.schema, || format!("versions[{index}].schema"))?;
        let mut examples = Vec::with_capacity(version.examples.len());
        for (example_index, example) in version.examples.iter().enumerate() {
            examples.push(parse_json(example, || {
                format!("versions[{index}].examples[{example_index}]")
            })?);
        }
        versions.push(Version {
            version: version.version.clone(),
            dataschema: Some(version.dataschema.clone()).filter(|uri| !uri.is_empty()),
            schema,
            examples,
        });
    }
    Ok(EventType {
        name: request.name.clone(),
        description: request.description.clone(),
        owner: request.owner.clone(),
        versions,
        deprecated: None,
    })
}

/// Returns the wire form of a stored event type at `revision`.
pub fn event_type_to_pb(event_type: &EventType, revision: u64) -> pb::EventType {
    pb::EventType {
        name: event_type.name.clone(),
        description: event_type.description.clone(),
        owner: event_type.owner.clone(),
        versions: event_type
            .versions
            .iter()
            .map(|version| pb::EventTypeVersion {
                version: version.version.clone(),
                dataschema: version.dataschema.clone().unwrap_or_default(),
                schema: version.schema.to_string(),
                examples: version.examples.iter().map(ToString::to_string).collect(),
            })
            .collect(),
        deprecated: event_type.deprecated.is_some(),
        deprecation_reason: event_type.deprecated.clone().unwrap_or_default(),
        revision,
    }
}

fn parse_json(text: &str, field: impl Fn() -> String) -> Result<serde_json::Value, CatalogError> {
    serde_json::from_str(text).map_err(|err| CatalogError {
        field: field(),
        reason: format!("is not JSON: {err}"),
    })
}

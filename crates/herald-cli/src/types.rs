//! `heraldctl types ...`: the event-type catalog over the control-plane EventTypes API, and
//! `types docs`, which renders the catalog as Markdown a provider can publish for the owners of
//! the endpoints it delivers to.

use anyhow::Context as _;
use serde_json::{Value, json};

use herald_core::catalog::EventType;
use herald_proto::v1 as pb;

use crate::args::{OutputFormat, TypeCreateArgs, TypesCommand};
use crate::client::TypeClient;
use crate::output;

#[cfg(test)]
mod tests;

/// Runs one `types` command and returns what to print, if anything (`docs --out` writes a file).
pub(crate) async fn run(
    client: &mut TypeClient,
    command: TypesCommand,
    format: OutputFormat,
) -> anyhow::Result<Option<String>> {
    let text = match command {
        TypesCommand::Create(args) => {
            let request = create_request(args).await?;
            let created = client.create_event_type(request).await?.into_inner();
            render_one(&created, format)
        }
        TypesCommand::List => {
            let listed = client
                .list_event_types(pb::ListEventTypesRequest {})
                .await?
                .into_inner();
            match format {
                OutputFormat::Table => types_table(&listed.event_types),
                OutputFormat::Json => output::json_text(&json!({
                    "event_types": listed.event_types.iter().map(type_json).collect::<Vec<_>>(),
                })),
            }
        }
        TypesCommand::Get { name } => {
            let request = pb::GetEventTypeRequest { name };
            let event_type = client.get_event_type(request).await?.into_inner();
            render_one(&event_type, format)
        }
        TypesCommand::Deprecate { name, reason } => {
            let request = pb::DeprecateEventTypeRequest {
                name,
                reason,
                expected_revision: 0,
            };
            let event_type = client.deprecate_event_type(request).await?.into_inner();
            render_one(&event_type, format)
        }
        TypesCommand::Docs { out, title } => {
            let listed = client
                .list_event_types(pb::ListEventTypesRequest {})
                .await?
                .into_inner();
            let markdown = docs_markdown(&title, &listed.event_types);
            let Some(path) = out else {
                return Ok(Some(markdown));
            };
            tokio::fs::write(&path, markdown)
                .await
                .with_context(|| format!("failed to write {}", path.display()))?;
            return Ok(None);
        }
    };
    Ok(Some(text))
}

/// Builds the create request from flags (one version) or from a whole type in JSON (`--file`).
async fn create_request(args: TypeCreateArgs) -> anyhow::Result<pb::CreateEventTypeRequest> {
    if let Some(path) = &args.file {
        let text = read_input(path).await?;
        let event_type: EventType = serde_json::from_str(&text).with_context(|| {
            format!(
                "{} is not an event type: {{\"name\", \"description\", \"owner\", \"versions\": \
                 [{{\"version\", \"dataschema\", \"schema\", \"examples\"}}]}}",
                path.display()
            )
        })?;
        return Ok(request_of(&event_type));
    }
    let name = args.name.unwrap_or_default();
    let schema = match &args.schema {
        Some(path) => read_input(path).await?,
        // Without a schema, any data is valid: the type is documented, not checked.
        None => "true".to_owned(),
    };
    let mut examples = Vec::with_capacity(args.example.len());
    for path in &args.example {
        examples.push(read_input(path).await?);
    }
    Ok(pb::CreateEventTypeRequest {
        name,
        description: args.description,
        owner: args.owner,
        versions: vec![pb::EventTypeVersion {
            version: args.version,
            dataschema: args.dataschema.unwrap_or_default(),
            schema,
            examples,
        }],
    })
}

/// Returns the create request of a type given whole.
pub(crate) fn request_of(event_type: &EventType) -> pb::CreateEventTypeRequest {
    pb::CreateEventTypeRequest {
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
                examples: version.examples.iter().map(Value::to_string).collect(),
            })
            .collect(),
    }
}

/// Reads a file, or standard input when `path` is `-`.
async fn read_input(path: &std::path::Path) -> anyhow::Result<String> {
    if path == std::path::Path::new("-") {
        let read = tokio::task::spawn_blocking(|| {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut text).map(|_| text)
        });
        return read
            .await
            .context("failed to read standard input")?
            .context("failed to read standard input");
    }
    tokio::fs::read_to_string(path)
        .await
        .with_context(|| format!("failed to read {}", path.display()))
}

fn render_one(event_type: &pb::EventType, format: OutputFormat) -> String {
    match format {
        OutputFormat::Table => type_lines(event_type),
        OutputFormat::Json => output::json_text(&type_json(event_type)),
    }
}

/// Returns event types as a table with columns NAME, VERSIONS, OWNER, STATUS and DESCRIPTION.
pub(crate) fn types_table(event_types: &[pb::EventType]) -> String {
    let rows: Vec<Vec<String>> = event_types
        .iter()
        .map(|event_type| {
            vec![
                event_type.name.clone(),
                version_names(event_type),
                event_type.owner.clone(),
                status(event_type).to_owned(),
                first_line(&event_type.description),
            ]
        })
        .collect();
    output::table(
        &["NAME", "VERSIONS", "OWNER", "STATUS", "DESCRIPTION"],
        &rows,
    )
}

/// Returns one event type as aligned key/value lines, then each version's schema and examples.
pub(crate) fn type_lines(event_type: &pb::EventType) -> String {
    let mut pairs = vec![
        ("name", event_type.name.clone()),
        ("description", first_line(&event_type.description)),
        ("owner", event_type.owner.clone()),
        ("versions", version_names(event_type)),
        ("revision", event_type.revision.to_string()),
    ];
    if event_type.deprecated {
        pairs.push(("deprecated", event_type.deprecation_reason.clone()));
    }
    let width = pairs.iter().map(|(key, _)| key.len()).max().unwrap_or(0);
    let mut lines: Vec<String> = pairs
        .iter()
        .map(|(key, value)| format!("{key:<width$}  {value}").trim_end().to_owned())
        .collect();
    for version in &event_type.versions {
        lines.push(String::new());
        let dataschema = if version.dataschema.is_empty() {
            String::new()
        } else {
            format!(" (dataschema {})", version.dataschema)
        };
        lines.push(format!("version {}{dataschema}", version.version));
        lines.push(format!("  schema   {}", version.schema));
        for example in &version.examples {
            lines.push(format!("  example  {example}"));
        }
    }
    lines.join("\n")
}

/// Returns one event type as JSON, schemas and examples as JSON values.
pub(crate) fn type_json(event_type: &pb::EventType) -> Value {
    json!({
        "name": event_type.name,
        "description": event_type.description,
        "owner": event_type.owner,
        "deprecated": event_type.deprecated,
        "deprecation_reason": event_type.deprecation_reason,
        "revision": event_type.revision.to_string(),
        "versions": event_type.versions.iter().map(|version| json!({
            "version": version.version,
            "dataschema": version.dataschema,
            "schema": parsed(&version.schema),
            "examples": version.examples.iter().map(|example| parsed(example)).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}

/// Returns the catalog as Markdown: an index, then per type its description, owner,
/// deprecation, and per version how events name it, its schema and its examples.
pub(crate) fn docs_markdown(title: &str, event_types: &[pb::EventType]) -> String {
    let mut text = format!("# {title}\n\n");
    if event_types.is_empty() {
        text.push_str("No event types are registered.\n");
        return text;
    }
    text.push_str("| Type | Latest version | Owner | Description |\n|---|---|---|---|\n");
    for event_type in event_types {
        let latest = event_type
            .versions
            .last()
            .map(|version| version.version.as_str())
            .unwrap_or_default();
        let mut description = first_line(&event_type.description);
        if event_type.deprecated {
            description = format!("**Deprecated.** {description}");
        }
        text.push_str(&format!(
            "| `{}` | {} | {} | {} |\n",
            event_type.name,
            table_cell(latest),
            table_cell(&event_type.owner),
            table_cell(description.trim_end()),
        ));
    }
    text.push_str(&format!(
        "\nAn event names the version of its `data` with `dataschema` (the URI a version lists) \
         or the `{}` extension attribute; an event naming neither is of the latest version.\n",
        herald_core::catalog::VERSION_EXTENSION
    ));
    for event_type in event_types {
        text.push_str(&format!("\n## `{}`\n\n", event_type.name));
        if event_type.deprecated {
            text.push_str(&format!(
                "> **Deprecated:** {}\n\n",
                event_type.deprecation_reason
            ));
        }
        if !event_type.description.is_empty() {
            text.push_str(event_type.description.trim_end());
            text.push_str("\n\n");
        }
        if !event_type.owner.is_empty() {
            text.push_str(&format!("Owner: {}\n\n", event_type.owner));
        }
        for version in &event_type.versions {
            text.push_str(&format!("### Version `{}`\n\n", version.version));
            if !version.dataschema.is_empty() {
                text.push_str(&format!("`dataschema`: `{}`\n\n", version.dataschema));
            }
            text.push_str("Schema of `data`:\n\n");
            text.push_str(&json_block(&version.schema));
            for (index, example) in version.examples.iter().enumerate() {
                text.push_str(&format!("Example {}:\n\n", index + 1));
                text.push_str(&json_block(example));
            }
        }
    }
    text
}

fn json_block(text: &str) -> String {
    format!("```json\n{}\n```\n\n", output::json_text(&parsed(text)))
}

/// Parses JSON text, keeping text that does not parse as a string.
fn parsed(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned()))
}

fn version_names(event_type: &pb::EventType) -> String {
    event_type
        .versions
        .iter()
        .map(|version| version.version.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

fn status(event_type: &pb::EventType) -> &'static str {
    if event_type.deprecated {
        "deprecated"
    } else {
        "active"
    }
}

fn first_line(text: &str) -> String {
    text.lines().next().unwrap_or_default().to_owned()
}

/// Escapes what would end a Markdown table cell.
fn table_cell(text: &str) -> String {
    text.replace('|', "\\|")
}

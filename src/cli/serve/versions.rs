//! State machine versions and aliases, as Step Functions keeps them: a version is an immutable
//! copy of a state machine's definition and settings, numbered from 1
//! (`…:stateMachine:name:1`); an alias (`…:stateMachine:name:prod`) routes executions to one
//! version, or two by weight. Both are store records beside their state machine
//! (`StateMachineRecord`): a version under its own ARN with the definition it published, an
//! alias of kind `ALIAS` with its routing.

use serde_json::{Value, json};
use stepstone::engine::store::StateMachineRecord;

use super::{
    ApiError, Service, api_error, machine_of, now_nanos, page, seconds, store_error, text,
};

/// The kind of the records that are aliases.
pub(super) const ALIAS: &str = "ALIAS";

/// What a state machine ARN names: the machine itself, one of its versions, or an alias.
#[derive(Debug, PartialEq)]
pub(super) enum Qualified<'a> {
    Machine,
    Version { machine: &'a str },
    Alias { machine: &'a str },
}

/// Tells a state machine's ARN (`arn:aws:states:REGION:ACCOUNT:stateMachine:NAME`) from a
/// version's (`…:NAME:3`) and an alias's (`…:NAME:prod`).
pub(super) fn qualified(arn: &str) -> Qualified<'_> {
    let parts = arn.split(':').count();
    match arn.rsplit_once(':') {
        Some((machine, qualifier)) if parts == 8 => {
            if qualifier.bytes().all(|b| b.is_ascii_digit()) && !qualifier.is_empty() {
                Qualified::Version { machine }
            } else {
                Qualified::Alias { machine }
            }
        }
        _ => Qualified::Machine,
    }
}

/// True for the record of a state machine itself (not a version, alias or activity).
pub(super) fn is_machine(record: &StateMachineRecord) -> bool {
    qualified(&record.arn) == Qualified::Machine
        && matches!(record.kind.as_str(), "STANDARD" | "EXPRESS")
}

/// A new `revisionId`: random, in UUID form.
pub(super) fn new_revision() -> String {
    use std::hash::BuildHasher;
    let random = || std::collections::hash_map::RandomState::new().hash_one(now_nanos());
    let (a, b) = (random(), random());
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        0x8000 | (b >> 48) & 0x3fff,
        b & 0xffff_ffff_ffff
    )
}

/// Publishes `machine`'s current revision as a version, unless its latest version is that
/// revision already (AWS answers that version then). Saves the machine's version count.
pub(super) fn publish(
    service: &Service,
    machine: &mut StateMachineRecord,
    description: &str,
) -> Result<StateMachineRecord, ApiError> {
    if machine.versions > 0 {
        let latest = format!("{}:{}", machine.arn, machine.versions);
        if let Some(version) = service.store.state_machine(&latest).map_err(store_error)?
            && version.revision_id == machine.revision_id
        {
            return Ok(version);
        }
    }
    machine.versions += 1;
    let created = now_nanos();
    let version = StateMachineRecord {
        definition: machine.definition.clone(),
        role_arn: machine.role_arn.clone(),
        revision_id: machine.revision_id.clone(),
        description: description.to_owned(),
        ..StateMachineRecord::new(
            format!("{}:{}", machine.arn, machine.versions),
            machine.name.clone(),
            machine.kind.clone(),
            created,
        )
    };
    service
        .store
        .put_state_machine(&version)
        .map_err(store_error)?;
    service
        .store
        .put_state_machine(machine)
        .map_err(store_error)?;
    Ok(version)
}

/// `publish: true` on CreateStateMachine or UpdateStateMachine: publishes the machine's
/// revision (`versionDescription`) and adds `stateMachineVersionArn` to `answer`.
pub(super) fn publish_if_asked(
    service: &Service,
    machine: &mut StateMachineRecord,
    input: &Value,
    answer: &mut Value,
) -> Result<(), ApiError> {
    if input["publish"] == true {
        let description = input["versionDescription"].as_str().unwrap_or_default();
        let version = publish(service, machine, description)?;
        answer["stateMachineVersionArn"] = json!(version.arn);
    }
    Ok(())
}

/// The record an execution started with `arn` runs, and the version and alias it went
/// through: a machine runs its latest definition; a version its own; an alias picks one of its
/// versions by weight.
pub(super) fn to_run(
    service: &Service,
    arn: &str,
) -> Result<(StateMachineRecord, Option<String>, Option<String>), ApiError> {
    match qualified(arn) {
        Qualified::Machine => Ok((machine_of(service, arn)?, None, None)),
        Qualified::Version { .. } => {
            let version = machine_of(service, arn)?;
            Ok((version, Some(arn.to_owned()), None))
        }
        Qualified::Alias { .. } => {
            let alias = alias_of(service, arn)?;
            let roll = (now_nanos().unsigned_abs() % 100) as u32;
            let mut sum = 0;
            let chosen = alias
                .routing
                .iter()
                .find(|(_, weight)| {
                    sum += weight;
                    roll < sum
                })
                .or(alias.routing.last())
                .map(|(version, _)| version.clone())
                .ok_or_else(|| api_error("ValidationException", "the alias routes nowhere"))?;
            let version = machine_of(service, &chosen)?;
            Ok((version, Some(chosen), Some(arn.to_owned())))
        }
    }
}

fn alias_of(service: &Service, arn: &str) -> Result<StateMachineRecord, ApiError> {
    service
        .store
        .state_machine(arn)
        .map_err(store_error)?
        .filter(|r| r.kind == ALIAS)
        .ok_or_else(|| api_error("ResourceNotFound", format!("Resource not found: '{arn}'")))
}

/// The records of `machine`'s versions (`versions`) or aliases, newest first.
fn qualifiers_of(
    service: &Service,
    machine: &str,
    aliases: bool,
) -> Result<Vec<StateMachineRecord>, ApiError> {
    let prefix = format!("{machine}:");
    let mut found: Vec<StateMachineRecord> = service
        .store
        .state_machines()
        .map_err(store_error)?
        .into_iter()
        .filter(|r| r.arn.starts_with(&prefix))
        .filter(|r| (r.kind == ALIAS) == aliases)
        .collect();
    found.sort_by(|a, b| b.created.cmp(&a.created).then(b.arn.cmp(&a.arn)));
    Ok(found)
}

/// ListStateMachineVersions, or ListStateMachineAliases: newest first, paged.
fn list(service: &Service, input: &Value, aliases: bool) -> Result<Value, ApiError> {
    let (arn_key, list_key) = match aliases {
        true => ("stateMachineAliasArn", "stateMachineAliases"),
        false => ("stateMachineVersionArn", "stateMachineVersions"),
    };
    let machine = machine_of(service, text(input, "stateMachineArn")?)?;
    let listed: Vec<Value> = qualifiers_of(service, &machine.arn, aliases)?
        .iter()
        .map(|r| json!({arn_key: r.arn, "creationDate": seconds(r.created)}))
        .collect();
    page(listed, input, list_key)
}

/// Deletes `machine`'s versions and aliases (DeleteStateMachine).
pub(super) fn delete_all_of(service: &Service, machine: &str) -> Result<(), ApiError> {
    for aliases in [true, false] {
        for record in qualifiers_of(service, machine, aliases)? {
            service
                .store
                .delete_state_machine(&record.arn)
                .map_err(store_error)?;
        }
    }
    Ok(())
}

/// An alias's `routingConfiguration`, checked as AWS checks it: one or two versions of
/// `machine`, weights summing to 100.
fn routing(
    service: &Service,
    machine: &str,
    input: &Value,
) -> Result<Vec<(String, u32)>, ApiError> {
    let invalid = |m: String| api_error("ValidationException", m);
    let entries = input["routingConfiguration"]
        .as_array()
        .ok_or_else(|| invalid("'routingConfiguration' is required".into()))?;
    if entries.is_empty() || entries.len() > 2 {
        return Err(invalid(format!(
            "routingConfiguration has {} versions; an alias routes to 1 or 2",
            entries.len()
        )));
    }
    let mut routes = Vec::new();
    for entry in entries {
        let version = text(entry, "stateMachineVersionArn")?;
        let weight = entry["weight"]
            .as_u64()
            .filter(|w| *w <= 100)
            .ok_or_else(|| invalid("each weight must be 0 to 100".into()))?;
        if !matches!(qualified(version), Qualified::Version { machine: m } if m == machine) {
            return Err(invalid(format!(
                "'{version}' is not a version of {machine}"
            )));
        }
        machine_of(service, version)?;
        if routes.iter().any(|(v, _)| v == version) {
            return Err(invalid(format!("'{version}' is routed twice")));
        }
        routes.push((version.to_owned(), weight as u32));
    }
    if routes.iter().map(|(_, w)| w).sum::<u32>() != 100 {
        return Err(invalid("the weights must sum to 100".into()));
    }
    Ok(routes)
}

fn describe_alias(alias: &StateMachineRecord) -> Value {
    let routing: Vec<Value> = alias
        .routing
        .iter()
        .map(|(v, w)| json!({"stateMachineVersionArn": v, "weight": w}))
        .collect();
    json!({"stateMachineAliasArn": alias.arn, "name": alias.name, "description": alias.description,
        "routingConfiguration": routing, "creationDate": seconds(alias.created),
        "updateDate": seconds(alias.updated)})
}

/// The version and alias operations; `None` for any other.
pub(super) fn operate(
    service: &Service,
    operation: &str,
    input: &Value,
) -> Option<Result<Value, ApiError>> {
    answer(service, operation, input).transpose()
}

fn answer(service: &Service, operation: &str, input: &Value) -> Result<Option<Value>, ApiError> {
    let answered: Result<Value, ApiError> = {
        match operation {
            "PublishStateMachineVersion" => {
                let mut machine = machine_of(service, text(input, "stateMachineArn")?)?;
                if let Some(expected) = input["revisionId"].as_str()
                    && expected != machine.revision_id
                {
                    return Err(api_error(
                        "ConflictException",
                        format!(
                            "The revisionId '{expected}' is not the state machine's current one ('{}')",
                            machine.revision_id
                        ),
                    ));
                }
                let description = input["description"].as_str().unwrap_or_default();
                let version = publish(service, &mut machine, description)?;
                Ok(json!({"stateMachineVersionArn": version.arn,
                    "creationDate": seconds(version.created)}))
            }
            "ListStateMachineVersions" => list(service, input, false),
            "DeleteStateMachineVersion" => {
                let arn = text(input, "stateMachineVersionArn")?;
                let Qualified::Version { machine } = qualified(arn) else {
                    return Err(api_error(
                        "ValidationException",
                        format!("'{arn}' is not a state machine version ARN"),
                    ));
                };
                if let Some(alias) = qualifiers_of(service, machine, true)?
                    .into_iter()
                    .find(|a| a.routing.iter().any(|(v, _)| v == arn))
                {
                    return Err(api_error(
                        "ConflictException",
                        format!(
                            "Version to be deleted must not be referenced by an alias. Current list of aliases referencing this version: [{}]",
                            alias.name
                        ),
                    ));
                }
                service
                    .store
                    .delete_state_machine(arn)
                    .map_err(store_error)?;
                Ok(json!({}))
            }
            "CreateStateMachineAlias" => {
                let name = text(input, "name")?;
                stepstone::engine::check_name("alias name", name)
                    .map_err(|e| api_error("InvalidName", e.to_string()))?;
                if name.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(api_error(
                        "ValidationException",
                        "an alias name cannot be a number: that names a version",
                    ));
                }
                let first = input["routingConfiguration"][0]["stateMachineVersionArn"]
                    .as_str()
                    .unwrap_or_default();
                let Qualified::Version { machine } = qualified(first) else {
                    return Err(api_error(
                        "ValidationException",
                        "routingConfiguration must name versions of one state machine",
                    ));
                };
                let machine = machine_of(service, machine)?;
                let routes = routing(service, &machine.arn, input)?;
                let arn = format!("{}:{name}", machine.arn);
                let description = input["description"].as_str().unwrap_or_default();
                if let Some(existing) = service.store.state_machine(&arn).map_err(store_error)? {
                    // AWS: the same request again answers the same alias.
                    if existing.routing == routes && existing.description == description {
                        return Ok(Some(json!({"stateMachineAliasArn": arn,
                            "creationDate": seconds(existing.created)})));
                    }
                    return Err(api_error(
                        "ConflictException",
                        format!("Alias already exists: '{arn}'"),
                    ));
                }
                let alias = StateMachineRecord {
                    routing: routes,
                    description: description.to_owned(),
                    ..StateMachineRecord::new(
                        arn.clone(),
                        name.to_owned(),
                        ALIAS.into(),
                        now_nanos(),
                    )
                };
                service
                    .store
                    .put_state_machine(&alias)
                    .map_err(store_error)?;
                Ok(json!({"stateMachineAliasArn": arn, "creationDate": seconds(alias.created)}))
            }
            "DescribeStateMachineAlias" => Ok(describe_alias(&alias_of(
                service,
                text(input, "stateMachineAliasArn")?,
            )?)),
            "UpdateStateMachineAlias" => {
                let arn = text(input, "stateMachineAliasArn")?;
                let mut alias = alias_of(service, arn)?;
                if let Qualified::Alias { machine } = qualified(arn)
                    && input.get("routingConfiguration").is_some()
                {
                    alias.routing = routing(service, machine, input)?;
                }
                if let Some(description) = input["description"].as_str() {
                    alias.description = description.to_owned();
                }
                alias.updated = now_nanos();
                service
                    .store
                    .put_state_machine(&alias)
                    .map_err(store_error)?;
                Ok(json!({"updateDate": seconds(alias.updated)}))
            }
            "DeleteStateMachineAlias" => {
                let arn = text(input, "stateMachineAliasArn")?;
                alias_of(service, arn)?;
                service
                    .store
                    .delete_state_machine(arn)
                    .map_err(store_error)?;
                Ok(json!({}))
            }
            "ListStateMachineAliases" => list(service, input, true),
            _ => return Ok(None),
        }
    };
    answered.map(Some)
}

#[cfg(test)]
mod tests {
    use super::{Qualified, qualified};

    #[test]
    fn arns_name_a_machine_a_version_or_an_alias() {
        let m = "arn:aws:states:us-east-1:123456789012:stateMachine:deploy";
        assert_eq!(qualified(m), Qualified::Machine);
        assert_eq!(
            qualified(&format!("{m}:12")),
            Qualified::Version { machine: m }
        );
        assert_eq!(
            qualified(&format!("{m}:prod")),
            Qualified::Alias { machine: m }
        );
    }
}

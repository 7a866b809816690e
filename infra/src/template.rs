//! Reading a CloudFormation/SAM template: resources, parameters, function environments,
//! and the intrinsic functions in both their short (`!Ref X`) and long (`Ref: X`) forms.

use std::path::Path;

use serde_yaml_ng::{Mapping, Value};

#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("cannot read {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("{path} is not valid YAML: {source}")]
    Parse { path: String, source: serde_yaml_ng::Error },
    #[error("the template has no function {0}")]
    NoFunction(String),
}

#[derive(Clone, Debug)]
pub struct Template {
    root: Value,
}

impl Template {
    pub fn from_file(path: &Path) -> Result<Self, TemplateError> {
        let display = path.display().to_string();
        let text =
            std::fs::read_to_string(path).map_err(|source| TemplateError::Read { path: display.clone(), source })?;
        Self::parse(&text).map_err(|source| TemplateError::Parse { path: display, source })
    }

    pub fn parse(text: &str) -> Result<Self, serde_yaml_ng::Error> {
        Ok(Self { root: serde_yaml_ng::from_str(text)? })
    }

    fn resources(&self) -> impl Iterator<Item = (String, &Value)> {
        self.root
            .get("Resources")
            .and_then(Value::as_mapping)
            .into_iter()
            .flat_map(Mapping::iter)
            .filter_map(|(id, resource)| Some((id.as_str()?.to_owned(), resource)))
    }

    /// `(logical id, Properties)` of every resource of one type, in template order.
    pub fn resources_of_type(&self, kind: &str) -> Vec<(String, Value)> {
        self.resources()
            .filter(|(_, r)| r.get("Type").and_then(Value::as_str) == Some(kind))
            .map(|(id, r)| (id, r.get("Properties").cloned().unwrap_or(Value::Null)))
            .collect()
    }

    /// The whole resource, for checks of the template's wiring.
    pub fn resource(&self, logical_id: &str) -> Option<&Value> {
        self.root.get("Resources")?.get(logical_id)
    }

    pub fn parameter_default(&self, name: &str) -> Option<String> {
        scalar(self.root.get("Parameters")?.get(name)?.get("Default")?)
    }

    /// Globals' environment variables overlaid with the function's own, unresolved.
    pub fn function_env(&self, function: &str) -> Result<Vec<(String, Value)>, TemplateError> {
        let resource = self.resource(function).ok_or_else(|| TemplateError::NoFunction(function.to_owned()))?;
        let globals = self.root.get("Globals").and_then(|g| g.get("Function"));
        let own = resource.get("Properties");
        let mut env: Vec<(String, Value)> = Vec::new();
        for source in [globals, own].into_iter().flatten() {
            let variables = source.get("Environment").and_then(|e| e.get("Variables")).and_then(Value::as_mapping);
            for (name, value) in variables.into_iter().flatten() {
                let Some(name) = name.as_str() else { continue };
                env.retain(|(existing, _)| existing != name);
                env.push((name.to_owned(), value.clone()));
            }
        }
        Ok(env)
    }
}

/// A plain value as a string (numbers and booleans as CloudFormation passes them).
pub fn scalar(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// `(function, argument)` of an intrinsic: `!Ref X` or `Ref: X`, `!GetAtt A.B` or
/// `Fn::GetAtt: [A, B]`, and so on.
pub fn intrinsic(value: &Value) -> Option<(String, Value)> {
    match value {
        Value::Tagged(tagged) => {
            Some((tagged.tag.to_string().trim_start_matches('!').to_owned(), tagged.value.clone()))
        }
        Value::Mapping(map) if map.len() == 1 => {
            let (key, argument) = map.iter().next()?;
            let key = key.as_str()?;
            let function = key.strip_prefix("Fn::").unwrap_or(key);
            (key == "Ref" || key.starts_with("Fn::")).then(|| (function.to_owned(), argument.clone()))
        }
        _ => None,
    }
}

/// `A.B` or `[A, B]` as `(A, B)`.
pub fn get_att_parts(argument: &Value) -> Option<(String, String)> {
    match argument {
        Value::String(s) => {
            let (resource, attribute) = s.split_once('.')?;
            Some((resource.to_owned(), attribute.to_owned()))
        }
        Value::Sequence(parts) if parts.len() == 2 => {
            Some((parts[0].as_str()?.to_owned(), parts[1].as_str()?.to_owned()))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEMPLATE: &str = r#"
Parameters:
  Level: {Type: String, Default: debug}
Globals:
  Function:
    Environment:
      Variables: {A: !Ref Table, B: plain, LEVEL: !Ref Level}
Resources:
  Table: {Type: "AWS::DynamoDB::Table", Properties: {BillingMode: PAY_PER_REQUEST}}
  Fn:
    Type: AWS::Serverless::Function
    Properties:
      Environment:
        Variables: {B: overridden, C: {"Fn::GetAtt": [Table, Arn]}}
"#;

    #[test]
    fn function_env_overlays_globals_and_keeps_intrinsics() {
        let template = Template::parse(TEMPLATE).unwrap();
        let env = template.function_env("Fn").unwrap();
        let names: Vec<&str> = env.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["A", "LEVEL", "B", "C"]);
        assert_eq!(scalar(&env[2].1).as_deref(), Some("overridden"));
        assert_eq!(intrinsic(&env[0].1).map(|(f, a)| (f, scalar(&a))), Some(("Ref".into(), Some("Table".into()))));
        let (function, argument) = intrinsic(&env[3].1).unwrap();
        assert_eq!(function, "GetAtt");
        assert_eq!(get_att_parts(&argument), Some(("Table".into(), "Arn".into())));
        assert_eq!(template.parameter_default("Level").as_deref(), Some("debug"));
        assert!(matches!(template.function_env("Nope"), Err(TemplateError::NoFunction(_))));
    }

    #[test]
    fn resources_are_found_by_type() {
        let template = Template::parse(TEMPLATE).unwrap();
        let tables = template.resources_of_type("AWS::DynamoDB::Table");
        assert_eq!(tables.len(), 1);
        assert_eq!(tables[0].0, "Table");
    }
}

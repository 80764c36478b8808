//! Coercion of request variables against the operation's variable definitions.

use serde_json::{Map, Value};

use crate::error::RequestError;
use crate::schema::{SchemaIndex, TypeKind, TypeRef};

/// A variable definition of the operation.
#[derive(Debug, Clone)]
pub(crate) struct VariableDefinition {
    /// Name without `$`.
    pub(crate) name: String,
    /// Declared type.
    pub(crate) ty: TypeRef,
    /// Default value, as JSON.
    pub(crate) default: Option<Value>,
}

/// Checks and completes the variables; unknown variables are dropped.
pub(crate) fn coerce(
    schema: &SchemaIndex,
    definitions: &[VariableDefinition],
    mut input: Map<String, Value>,
) -> Result<Map<String, Value>, RequestError> {
    let mut out = Map::with_capacity(definitions.len());
    for definition in definitions {
        match input.remove(&definition.name) {
            Some(value) => {
                check(schema, &definition.ty, &value, &definition.name)?;
                out.insert(definition.name.clone(), value);
            }
            None => {
                if let Some(default) = &definition.default {
                    out.insert(definition.name.clone(), default.clone());
                } else if matches!(definition.ty, TypeRef::NonNull(_)) {
                    return Err(RequestError::BadUserInput(format!(
                        "Variable \"${}\" of required type \"{}\" was not provided.",
                        definition.name,
                        display(&definition.ty)
                    )));
                }
            }
        }
    }
    Ok(out)
}

/// Prints a type reference as GraphQL.
pub(crate) fn display(ty: &TypeRef) -> String {
    match ty {
        TypeRef::Named(name) => name.clone(),
        TypeRef::List(inner) => format!("[{}]", display(inner)),
        TypeRef::NonNull(inner) => format!("{}!", display(inner)),
    }
}

fn invalid(path: &str, ty: &TypeRef, detail: &str) -> RequestError {
    RequestError::BadUserInput(format!(
        "Variable \"${path}\" got an invalid value for type \"{}\": {detail}.",
        display(ty)
    ))
}

fn check(
    schema: &SchemaIndex,
    ty: &TypeRef,
    value: &Value,
    path: &str,
) -> Result<(), RequestError> {
    match ty {
        TypeRef::NonNull(inner) => {
            if value.is_null() {
                return Err(invalid(path, ty, "null for a non-null type"));
            }
            check(schema, inner, value, path)
        }
        _ if value.is_null() => Ok(()),
        TypeRef::List(inner) => match value {
            Value::Array(items) => {
                for (index, item) in items.iter().enumerate() {
                    check(schema, inner, item, &format!("{path}[{index}]"))?;
                }
                Ok(())
            }
            single => check(schema, inner, single, path),
        },
        TypeRef::Named(name) => {
            let Some(def) = schema.get(name) else {
                return Err(invalid(path, ty, "unknown type"));
            };
            let ok = match def.kind {
                TypeKind::Scalar => match name.as_str() {
                    "Int" => value.as_i64().is_some_and(|n| i32::try_from(n).is_ok()),
                    "Float" => value.is_number(),
                    "String" => value.is_string(),
                    "Boolean" => value.is_boolean(),
                    "ID" => value.is_string() || value.is_i64() || value.is_u64(),
                    _ => true,
                },
                TypeKind::Enum => value.as_str().is_some_and(|v| def.enum_values.contains(v)),
                TypeKind::InputObject => {
                    let Value::Object(fields) = value else {
                        return Err(invalid(path, ty, "expected an object"));
                    };
                    for key in fields.keys() {
                        if !def.input_fields.iter().any(|field| &field.name == key) {
                            return Err(invalid(path, ty, &format!("unknown field \"{key}\"")));
                        }
                    }
                    for field in &def.input_fields {
                        let field_path = format!("{path}.{}", field.name);
                        match fields.get(&field.name) {
                            Some(field_value) => {
                                check(schema, &field.ty, field_value, &field_path)?
                            }
                            None if matches!(field.ty, TypeRef::NonNull(_))
                                && !field.has_default =>
                            {
                                return Err(invalid(
                                    path,
                                    ty,
                                    &format!("missing required field \"{}\"", field.name),
                                ));
                            }
                            None => {}
                        }
                    }
                    true
                }
                TypeKind::Object | TypeKind::Interface | TypeKind::Union => false,
            };
            if ok {
                Ok(())
            } else {
                Err(invalid(path, ty, "wrong kind of value"))
            }
        }
    }
}

/// Converts a literal AST value (no variables) into JSON.
pub(crate) fn ast_to_json(value: &graphql_tools::parser::query::Value<'static, String>) -> Value {
    use graphql_tools::parser::query::Value as Ast;
    match value {
        Ast::Variable(_) | Ast::Null => Value::Null,
        Ast::Int(n) => n.as_i64().map_or(Value::Null, Value::from),
        Ast::Float(f) => serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number),
        Ast::String(s) => Value::String(s.clone()),
        Ast::Boolean(b) => Value::Bool(*b),
        Ast::Enum(e) => Value::String(e.clone()),
        Ast::List(items) => Value::Array(items.iter().map(ast_to_json).collect()),
        Ast::Object(fields) => Value::Object(
            fields
                .iter()
                .map(|(k, v)| (k.clone(), ast_to_json(v)))
                .collect(),
        ),
    }
}

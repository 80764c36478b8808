//! Introspection (`__schema`, `__type`) answered from the API schema by async-graphql's own
//! introspection engine, over a dynamic schema whose resolvers are never used for data.

use std::borrow::Cow;
use std::collections::HashMap;

use async_graphql::dynamic::{
    Enum, EnumItem, Field, FieldFuture, InputObject, InputValue, Interface, InterfaceField, Object,
    Scalar, Schema, Subscription, SubscriptionField, SubscriptionFieldFuture, TypeRef, Union,
};
use async_graphql::{Name, Value as GqlValue};
use graphql_tools::parser::schema::{
    Definition, Directive, Document, Type, TypeDefinition, Value as AstValue,
};
use serde_json::{Map, Value};

use crate::error::{EngineError, GraphQLError};

/// The introspection engine for one API schema.
pub(crate) struct Introspection {
    schema: Option<Schema>,
}

fn type_ref(ty: &Type<'static, String>) -> TypeRef {
    match ty {
        Type::NamedType(name) => TypeRef::Named(Cow::Owned(name.clone())),
        Type::ListType(inner) => TypeRef::List(Box::new(type_ref(inner))),
        Type::NonNullType(inner) => TypeRef::NonNull(Box::new(type_ref(inner))),
    }
}

fn deprecation(directives: &[Directive<'static, String>]) -> Option<Option<String>> {
    let directive = directives
        .iter()
        .find(|directive| directive.name == "deprecated")?;
    let reason =
        directive
            .arguments
            .iter()
            .find_map(|(name, value)| match (name.as_str(), value) {
                ("reason", AstValue::String(reason)) => Some(reason.clone()),
                _ => None,
            });
    Some(reason)
}

fn const_value(value: &AstValue<'static, String>) -> GqlValue {
    match value {
        AstValue::Variable(_) | AstValue::Null => GqlValue::Null,
        AstValue::Int(n) => n.as_i64().map_or(GqlValue::Null, GqlValue::from),
        AstValue::Float(f) => GqlValue::from(*f),
        AstValue::String(s) => GqlValue::String(s.clone()),
        AstValue::Boolean(b) => GqlValue::Boolean(*b),
        AstValue::Enum(e) => GqlValue::Enum(Name::new(e)),
        AstValue::List(items) => GqlValue::List(items.iter().map(const_value).collect()),
        AstValue::Object(fields) => GqlValue::Object(
            fields
                .iter()
                .map(|(k, v)| (Name::new(k), const_value(v)))
                .collect(),
        ),
    }
}

fn input_value(value: &graphql_tools::parser::schema::InputValue<'static, String>) -> InputValue {
    let mut out = InputValue::new(value.name.clone(), type_ref(&value.value_type));
    if let Some(description) = &value.description {
        out = out.description(description.clone());
    }
    if let Some(default) = &value.default_value {
        out = out.default_value(const_value(default));
    }
    if let Some(reason) = deprecation(&value.directives) {
        out = out.deprecation(reason.as_deref());
    }
    out
}

fn null_resolver()
-> impl for<'a> Fn(async_graphql::dynamic::ResolverContext<'a>) -> FieldFuture<'a> + Send + Sync {
    |_| FieldFuture::new(async { Ok(None::<async_graphql::dynamic::FieldValue>) })
}

/// Field types replaced in the mirror: (type name, field name) to the type to declare instead.
type Widened = HashMap<(String, String), Type<'static, String>>;

/// The field's type in the mirror: its own, unless it was widened.
fn field_type(
    widened: &Widened,
    type_name: &str,
    field: &graphql_tools::parser::schema::Field<'static, String>,
) -> TypeRef {
    match widened.get(&(type_name.to_owned(), field.name.clone())) {
        Some(ty) => type_ref(ty),
        None => type_ref(&field.field_type),
    }
}

/// Fields of implementing types whose type differs from the implemented interface field's
/// (valid GraphQL when covariant: `Book.similar: [Book]` for `Product.similar: [Product]`,
/// `Book.id: ID!` for `Product.id: ID`), declared with the interface field's type instead.
/// async-graphql's dynamic schema accepts only identical types there (its subtype check is
/// reversed for non-null and takes only identical named types; async-graphql issue #1692) and
/// refuses the whole schema otherwise. A field whose interfaces disagree is left as declared.
fn covariant_fields(document: &Document<'static, String>) -> Widened {
    let mut interface_fields: HashMap<
        &str,
        &[graphql_tools::parser::schema::Field<'static, String>],
    > = HashMap::new();
    for definition in &document.definitions {
        if let Definition::TypeDefinition(TypeDefinition::Interface(interface)) = definition {
            interface_fields.insert(&interface.name, &interface.fields);
        }
    }
    let mut widened = Widened::new();
    for definition in &document.definitions {
        let (name, implements, fields) = match definition {
            Definition::TypeDefinition(TypeDefinition::Object(object)) => {
                (&object.name, &object.implements_interfaces, &object.fields)
            }
            Definition::TypeDefinition(TypeDefinition::Interface(interface)) => (
                &interface.name,
                &interface.implements_interfaces,
                &interface.fields,
            ),
            _ => continue,
        };
        for field in fields {
            let mut declared = implements.iter().filter_map(|interface| {
                interface_fields
                    .get(interface.as_str())
                    .and_then(|fields| fields.iter().find(|f| f.name == field.name))
                    .map(|f| &f.field_type)
            });
            let Some(first) = declared.next() else {
                continue;
            };
            if *first != field.field_type && declared.all(|other| other == first) {
                widened.insert((name.clone(), field.name.clone()), first.clone());
            }
        }
    }
    widened
}

fn build(document: &Document<'static, String>, widened: &Widened) -> Result<Schema, String> {
    let mut query = "Query".to_owned();
    let mut mutation = None;
    let mut subscription = None;
    for definition in &document.definitions {
        if let Definition::SchemaDefinition(schema) = definition {
            if let Some(name) = &schema.query {
                query = name.clone();
            }
            mutation = schema.mutation.clone();
            subscription = schema.subscription.clone();
        }
    }
    let has_type = |name: &str| {
        document.definitions.iter().any(
            |definition| matches!(definition, Definition::TypeDefinition(TypeDefinition::Object(o)) if o.name == name),
        )
    };
    if mutation.is_none() && has_type("Mutation") {
        mutation = Some("Mutation".to_owned());
    }
    if subscription.is_none() && has_type("Subscription") {
        subscription = Some("Subscription".to_owned());
    }
    let mut builder = Schema::build(&query, mutation.as_deref(), subscription.as_deref());
    for definition in &document.definitions {
        let Definition::TypeDefinition(type_definition) = definition else {
            continue;
        };
        match type_definition {
            TypeDefinition::Scalar(scalar) => {
                if ["String", "Int", "Float", "Boolean", "ID"].contains(&scalar.name.as_str()) {
                    continue;
                }
                let mut out = Scalar::new(scalar.name.clone());
                if let Some(description) = &scalar.description {
                    out = out.description(description.clone());
                }
                builder = builder.register(out);
            }
            TypeDefinition::Object(object) if Some(&object.name) == subscription.as_ref() => {
                let mut out = Subscription::new(object.name.clone());
                if let Some(description) = &object.description {
                    out = out.description(description.clone());
                }
                for field in &object.fields {
                    let mut f = SubscriptionField::new(
                        field.name.clone(),
                        type_ref(&field.field_type),
                        |_| {
                            SubscriptionFieldFuture::new(async {
                                Ok(futures::stream::empty::<
                                    async_graphql::Result<async_graphql::dynamic::FieldValue>,
                                >())
                            })
                        },
                    );
                    if let Some(description) = &field.description {
                        f = f.description(description.clone());
                    }
                    if let Some(reason) = deprecation(&field.directives) {
                        f = f.deprecation(reason.as_deref());
                    }
                    for argument in &field.arguments {
                        f = f.argument(input_value(argument));
                    }
                    out = out.field(f);
                }
                builder = builder.register(out);
            }
            TypeDefinition::Object(object) => {
                let mut out = Object::new(object.name.clone());
                if let Some(description) = &object.description {
                    out = out.description(description.clone());
                }
                for interface in &object.implements_interfaces {
                    out = out.implement(interface.clone());
                }
                for field in &object.fields {
                    if field.name.starts_with("__") {
                        continue;
                    }
                    let mut f = Field::new(
                        field.name.clone(),
                        field_type(widened, &object.name, field),
                        null_resolver(),
                    );
                    if let Some(description) = &field.description {
                        f = f.description(description.clone());
                    }
                    if let Some(reason) = deprecation(&field.directives) {
                        f = f.deprecation(reason.as_deref());
                    }
                    for argument in &field.arguments {
                        f = f.argument(input_value(argument));
                    }
                    out = out.field(f);
                }
                builder = builder.register(out);
            }
            TypeDefinition::Interface(interface) => {
                let mut out = Interface::new(interface.name.clone());
                if let Some(description) = &interface.description {
                    out = out.description(description.clone());
                }
                for parent in &interface.implements_interfaces {
                    out = out.implement(parent.clone());
                }
                for field in &interface.fields {
                    let mut f = InterfaceField::new(
                        field.name.clone(),
                        field_type(widened, &interface.name, field),
                    );
                    if let Some(description) = &field.description {
                        f = f.description(description.clone());
                    }
                    if let Some(reason) = deprecation(&field.directives) {
                        f = f.deprecation(reason.as_deref());
                    }
                    for argument in &field.arguments {
                        f = f.argument(input_value(argument));
                    }
                    out = out.field(f);
                }
                builder = builder.register(out);
            }
            TypeDefinition::Union(union) => {
                let mut out = Union::new(union.name.clone());
                if let Some(description) = &union.description {
                    out = out.description(description.clone());
                }
                for member in &union.types {
                    out = out.possible_type(member.clone());
                }
                builder = builder.register(out);
            }
            TypeDefinition::Enum(enumeration) => {
                let mut out = Enum::new(enumeration.name.clone());
                if let Some(description) = &enumeration.description {
                    out = out.description(description.clone());
                }
                for value in &enumeration.values {
                    let mut item = EnumItem::new(value.name.clone());
                    if let Some(description) = &value.description {
                        item = item.description(description.clone());
                    }
                    if let Some(reason) = deprecation(&value.directives) {
                        item = item.deprecation(reason.as_deref());
                    }
                    out = out.item(item);
                }
                builder = builder.register(out);
            }
            TypeDefinition::InputObject(input) => {
                let mut out = InputObject::new(input.name.clone());
                if let Some(description) = &input.description {
                    out = out.description(description.clone());
                }
                for field in &input.fields {
                    out = out.field(input_value(field));
                }
                builder = builder.register(out);
            }
        }
    }
    builder.finish().map_err(|error| error.to_string())
}

impl Introspection {
    /// Builds the introspection engine from the API schema SDL; failure disables introspection.
    pub(crate) fn new(api_sdl: &str) -> Result<Self, EngineError> {
        let document: Document<'static, String> =
            graphql_tools::parser::parse_schema::<String>(api_sdl)
                .map_err(|error| EngineError::Introspection(error.to_string()))?
                .into_static();
        let schema = match build(&document, &Widened::new()) {
            Ok(schema) => Some(schema),
            Err(exact_error) => {
                let widened = covariant_fields(&document);
                match build(&document, &widened) {
                    Ok(schema) if !widened.is_empty() => {
                        let mut fields: Vec<String> = widened
                            .keys()
                            .map(|(type_name, field)| format!("{type_name}.{field}"))
                            .collect();
                        fields.sort();
                        tracing::warn!(
                            fields = %fields.join(", "),
                            "introspection reports these covariant fields with their interface's type"
                        );
                        Some(schema)
                    }
                    _ => {
                        tracing::warn!(error = %exact_error, "introspection disabled: the API schema could not be mirrored");
                        None
                    }
                }
            }
        };
        Ok(Self { schema })
    }

    /// Runs an introspection-only operation; returns its data and errors.
    pub(crate) async fn execute(
        &self,
        query: &str,
        operation_name: Option<&str>,
        variables: &Map<String, Value>,
    ) -> (Value, Vec<GraphQLError>) {
        let Some(schema) = &self.schema else {
            return (
                Value::Object(Map::new()),
                vec![GraphQLError::new(
                    "Introspection is not available.",
                    "INTROSPECTION_FAILED",
                )],
            );
        };
        let mut request = async_graphql::Request::new(query).variables(
            async_graphql::Variables::from_json(Value::Object(variables.clone())),
        );
        if let Some(name) = operation_name {
            request = request.operation_name(name);
        }
        let response = schema.execute(request).await;
        let errors = response
            .errors
            .into_iter()
            .map(|error| GraphQLError::new(error.message, "INTROSPECTION_FAILED"))
            .collect();
        let data = response.data.into_json().unwrap_or(Value::Null);
        (data, errors)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// Covariant in both ways GraphQL allows: a non-null `id` and a list of a concrete type.
    const COVARIANT: &str = r#"
        type Query { products: [Product] book: Book }
        interface Product { id: ID similar: [Product] }
        interface Similar { similar: [Product] }
        type Book implements Product & Similar { id: ID! similar: [Book!] pages: Int }
        type Magazine implements Product & Similar { id: ID similar: [Magazine] }
    "#;

    /// `__type(name)` with each field's type three wrappers deep and the possible types.
    async fn described(introspection: &Introspection, type_name: &str) -> Value {
        let query = format!(
            r#"{{ __type(name: "{type_name}") {{ fields {{ name type {{ kind name ofType {{ kind name ofType {{ kind name }} }} }} }} possibleTypes {{ name }} }} }}"#
        );
        let (data, errors) = introspection.execute(&query, None, &Map::new()).await;
        assert!(errors.is_empty(), "{errors:?}");
        data["__type"].clone()
    }

    fn field<'v>(described: &'v Value, name: &str) -> &'v Value {
        described["fields"]
            .as_array()
            .and_then(|fields| fields.iter().find(|field| field["name"] == name))
            .map_or(&Value::Null, |field| &field["type"])
    }

    fn parse(sdl: &str) -> Document<'static, String> {
        graphql_tools::parser::parse_schema::<String>(sdl)
            .expect("sdl")
            .into_static()
    }

    #[tokio::test]
    async fn covariant_fields_are_reported_with_the_interface_type_instead_of_disabling_introspection()
     {
        let introspection = Introspection::new(COVARIANT).expect("sdl");
        assert!(introspection.schema.is_some(), "introspection was disabled");
        let book = described(&introspection, "Book").await;
        assert_eq!(
            field(&book, "similar"),
            &json!({ "kind": "LIST", "name": null, "ofType": { "kind": "INTERFACE", "name": "Product", "ofType": null } })
        );
        assert_eq!(
            field(&book, "id"),
            &json!({ "kind": "SCALAR", "name": "ID", "ofType": null })
        );
        assert_eq!(field(&book, "pages")["name"], "Int");
        let product = described(&introspection, "Product").await;
        assert_eq!(
            product["possibleTypes"],
            json!([{ "name": "Book" }, { "name": "Magazine" }])
        );
        let mut widened: Vec<_> = covariant_fields(&parse(COVARIANT)).into_keys().collect();
        widened.sort();
        let expected = [("Book", "id"), ("Book", "similar"), ("Magazine", "similar")]
            .map(|(ty, field)| (ty.to_owned(), field.to_owned()));
        assert_eq!(widened, expected);
    }

    #[tokio::test]
    async fn a_schema_without_covariance_is_mirrored_as_declared() {
        let exact = r#"
            type Query { products: [Product] book: Book }
            interface Product { id: ID! similar: [Product] }
            type Book implements Product { id: ID! similar: [Product] pages: Int }
        "#;
        assert!(covariant_fields(&parse(exact)).is_empty());
        let introspection = Introspection::new(exact).expect("sdl");
        let book = described(&introspection, "Book").await;
        assert_eq!(
            field(&book, "id"),
            &json!({ "kind": "NON_NULL", "name": null, "ofType": { "kind": "SCALAR", "name": "ID", "ofType": null } })
        );
    }

    #[test]
    fn interfaces_that_disagree_leave_the_field_as_declared() {
        let sdl = r#"
            type Query { a: A }
            interface X { f: Int }
            interface Y { f: Int! }
            type A implements X & Y { f: Int! }
        "#;
        assert!(covariant_fields(&parse(sdl)).is_empty());
    }
}

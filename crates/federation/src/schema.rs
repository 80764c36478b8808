//! A lookup index of the API schema: types, fields, possible types and enum values, used by
//! limits, variable coercion and response projection.

use std::collections::{HashMap, HashSet};

use graphql_tools::parser::schema::{Definition, Document, Type, TypeDefinition};

/// A wrapped type reference (`[Foo!]!`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TypeRef {
    /// A named type.
    Named(String),
    /// A list of the inner type.
    List(Box<TypeRef>),
    /// The inner type, never null.
    NonNull(Box<TypeRef>),
}

impl TypeRef {
    /// Converts a parser type.
    pub(crate) fn from_ast(ty: &Type<'static, String>) -> Self {
        match ty {
            Type::NamedType(name) => TypeRef::Named(name.clone()),
            Type::ListType(inner) => TypeRef::List(Box::new(Self::from_ast(inner))),
            Type::NonNullType(inner) => TypeRef::NonNull(Box::new(Self::from_ast(inner))),
        }
    }

    /// The named type at the core.
    pub(crate) fn named(&self) -> &str {
        match self {
            TypeRef::Named(name) => name,
            TypeRef::List(inner) | TypeRef::NonNull(inner) => inner.named(),
        }
    }

    /// Whether any list wraps the named type.
    pub(crate) fn is_list(&self) -> bool {
        match self {
            TypeRef::Named(_) => false,
            TypeRef::List(_) => true,
            TypeRef::NonNull(inner) => inner.is_list(),
        }
    }
}

/// The kind of a named type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TypeKind {
    /// Scalar.
    Scalar,
    /// Object.
    Object,
    /// Interface.
    Interface,
    /// Union.
    Union,
    /// Enum.
    Enum,
    /// Input object.
    InputObject,
}

/// A field definition.
#[derive(Debug, Clone)]
pub(crate) struct FieldDef {
    /// Output type.
    pub(crate) ty: TypeRef,
}

/// An argument or input field.
#[derive(Debug, Clone)]
pub(crate) struct InputDef {
    /// Name.
    pub(crate) name: String,
    /// Type.
    pub(crate) ty: TypeRef,
    /// Whether a default value exists.
    pub(crate) has_default: bool,
}

/// A named type of the API schema.
#[derive(Debug, Clone)]
pub(crate) struct TypeDef {
    /// Kind.
    pub(crate) kind: TypeKind,
    /// Output fields (objects, interfaces).
    pub(crate) fields: HashMap<String, FieldDef>,
    /// Input fields (input objects).
    pub(crate) input_fields: Vec<InputDef>,
    /// Object types this type may be at run time.
    pub(crate) possible_types: HashSet<String>,
    /// Enum values.
    pub(crate) enum_values: HashSet<String>,
}

/// The API schema indexed for lookups.
#[derive(Debug, Clone)]
pub(crate) struct SchemaIndex {
    /// Named types.
    pub(crate) types: HashMap<String, TypeDef>,
    /// Query root type name.
    pub(crate) query_type: String,
    /// Mutation root type name.
    pub(crate) mutation_type: Option<String>,
    /// Subscription root type name.
    pub(crate) subscription_type: Option<String>,
}

fn input_defs(
    values: &[graphql_tools::parser::schema::InputValue<'static, String>],
) -> Vec<InputDef> {
    values
        .iter()
        .map(|value| InputDef {
            name: value.name.clone(),
            ty: TypeRef::from_ast(&value.value_type),
            has_default: value.default_value.is_some(),
        })
        .collect()
}

fn field_defs(
    fields: &[graphql_tools::parser::schema::Field<'static, String>],
) -> HashMap<String, FieldDef> {
    fields
        .iter()
        .map(|field| {
            (
                field.name.clone(),
                FieldDef {
                    ty: TypeRef::from_ast(&field.field_type),
                },
            )
        })
        .collect()
}

impl SchemaIndex {
    /// Indexes a schema document (the API schema).
    pub(crate) fn new(document: &Document<'static, String>) -> Self {
        let mut types: HashMap<String, TypeDef> = HashMap::new();
        let mut implementations: Vec<(String, Vec<String>)> = Vec::new();
        let mut query_type = None;
        let mut mutation_type = None;
        let mut subscription_type = None;
        for definition in &document.definitions {
            match definition {
                Definition::SchemaDefinition(schema) => {
                    query_type = schema.query.clone();
                    mutation_type = schema.mutation.clone();
                    subscription_type = schema.subscription.clone();
                }
                Definition::TypeDefinition(type_definition) => {
                    let (name, def) = match type_definition {
                        TypeDefinition::Scalar(scalar) => {
                            (scalar.name.clone(), TypeDef::empty(TypeKind::Scalar))
                        }
                        TypeDefinition::Object(object) => {
                            implementations
                                .push((object.name.clone(), object.implements_interfaces.clone()));
                            let mut def = TypeDef::empty(TypeKind::Object);
                            def.fields = field_defs(&object.fields);
                            def.possible_types.insert(object.name.clone());
                            (object.name.clone(), def)
                        }
                        TypeDefinition::Interface(interface) => {
                            let mut def = TypeDef::empty(TypeKind::Interface);
                            def.fields = field_defs(&interface.fields);
                            (interface.name.clone(), def)
                        }
                        TypeDefinition::Union(union) => {
                            let mut def = TypeDef::empty(TypeKind::Union);
                            def.possible_types = union.types.iter().cloned().collect();
                            (union.name.clone(), def)
                        }
                        TypeDefinition::Enum(enumeration) => {
                            let mut def = TypeDef::empty(TypeKind::Enum);
                            def.enum_values =
                                enumeration.values.iter().map(|v| v.name.clone()).collect();
                            (enumeration.name.clone(), def)
                        }
                        TypeDefinition::InputObject(input) => {
                            let mut def = TypeDef::empty(TypeKind::InputObject);
                            def.input_fields = input_defs(&input.fields);
                            (input.name.clone(), def)
                        }
                    };
                    types.insert(name, def);
                }
                Definition::TypeExtension(_) | Definition::DirectiveDefinition(_) => {}
            }
        }
        for (object, interfaces) in implementations {
            for interface in interfaces {
                if let Some(def) = types.get_mut(&interface) {
                    def.possible_types.insert(object.clone());
                }
            }
        }
        for builtin in ["String", "Int", "Float", "Boolean", "ID"] {
            types
                .entry(builtin.to_owned())
                .or_insert_with(|| TypeDef::empty(TypeKind::Scalar));
        }
        let query_type = query_type.unwrap_or_else(|| "Query".to_owned());
        let mutation_type = mutation_type.or_else(|| {
            types
                .contains_key("Mutation")
                .then(|| "Mutation".to_owned())
        });
        let subscription_type = subscription_type.or_else(|| {
            types
                .contains_key("Subscription")
                .then(|| "Subscription".to_owned())
        });
        Self {
            types,
            query_type,
            mutation_type,
            subscription_type,
        }
    }

    /// A named type.
    pub(crate) fn get(&self, name: &str) -> Option<&TypeDef> {
        self.types.get(name)
    }

    /// A field of a type (`__typename` is not listed).
    pub(crate) fn field(&self, type_name: &str, field_name: &str) -> Option<&FieldDef> {
        self.types.get(type_name)?.fields.get(field_name)
    }

    /// Whether an object of `runtime` type satisfies the type condition `condition`.
    pub(crate) fn satisfies(&self, runtime: &str, condition: &str) -> bool {
        runtime == condition
            || self
                .types
                .get(condition)
                .is_some_and(|def| def.possible_types.contains(runtime))
    }
}

impl TypeDef {
    fn empty(kind: TypeKind) -> Self {
        Self {
            kind,
            fields: HashMap::new(),
            input_fields: Vec::new(),
            possible_types: HashSet::new(),
            enum_values: HashSet::new(),
        }
    }
}

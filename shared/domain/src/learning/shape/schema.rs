//! A shape rendered as JSON Schema 2020-12, the dialect OpenAPI 3.1 uses.

use serde_json::{Map, Value, json};

use super::Shape;

impl Shape {
    /// The JSON Schema of every value seen: `{}` (anything) when nothing was seen or the values
    /// were too deep to describe. Type-specific keywords apply only to values of that type, so
    /// they sit side by side when several types were seen.
    pub fn to_json_schema(&self) -> Value {
        let mut schema = Map::new();
        match self.type_names().as_slice() {
            [] => return Value::Object(schema),
            [one] => {
                schema.insert("type".into(), json!(one));
            }
            many => {
                schema.insert("type".into(), json!(many));
            }
        }
        if let Some(format) = self.agreed_format() {
            schema.insert("format".into(), json!(format));
        }
        if let Some(items) = self.items.as_deref().filter(|items| items.samples > 0) {
            schema.insert("items".into(), items.to_json_schema());
        }
        if self.object > 0 {
            self.insert_object_keywords(&mut schema);
        }
        Value::Object(schema)
    }

    /// Most specific first, `null` last (`["string", "null"]` reads as "a nullable string").
    fn type_names(&self) -> Vec<&'static str> {
        // Every integer is also a number, so integers and fractions together are numbers.
        let (integer, number) = if self.number > 0 {
            (0, self.number)
        } else {
            (self.integer, 0)
        };
        [
            ("object", self.object),
            ("array", self.array),
            ("string", self.string),
            ("integer", integer),
            ("number", number),
            ("boolean", self.boolean),
            ("null", self.null),
        ]
        .into_iter()
        .filter(|(_, count)| *count > 0)
        .map(|(name, _)| name)
        .collect()
    }

    fn agreed_format(&self) -> Option<&'static str> {
        self.formats
            .iter()
            .find(|(_, count)| **count == self.string && self.string > 0)
            .map(|(format, _)| format.as_str())
    }

    fn insert_object_keywords(&self, schema: &mut Map<String, Value>) {
        if !self.properties.is_empty() {
            let properties: Map<String, Value> = self
                .properties
                .iter()
                .map(|(name, shape)| (name.clone(), shape.to_json_schema()))
                .collect();
            schema.insert("properties".into(), Value::Object(properties));
        }
        let required: Vec<&String> = self
            .properties
            .iter()
            .filter(|(_, shape)| shape.samples >= self.object)
            .map(|(name, _)| name)
            .collect();
        if !required.is_empty() {
            schema.insert("required".into(), json!(required));
        }
        // Absent means "allowed" already; saying it only when keys were dropped tells a reader
        // the listed properties are not all there is.
        if self.additional_properties {
            schema.insert("additionalProperties".into(), Value::Bool(true));
        }
    }
}

//! The inferred shape of the JSON values seen at one place (a request body, a response body),
//! kept as counts so that shapes from different replicas merge in any order.
//!
//! Only structure is recorded, never a value: bodies carry secrets and personal data, and a
//! schema needs neither. Property names are kept, since they are the schema.
//!
//! Hostile traffic must not grow a shape without bound, so:
//! - a value nested [`MAX_DEPTH`] containers deep is counted but not described (`{}`);
//! - a shape keeps at most [`MAX_NODES`] sub-schemas (properties and array items), so no one
//!   object keeps more than that many properties either;
//! - a property name longer than [`MAX_PROPERTY_NAME_LEN`] is not kept.
//!
//! What a bound drops shows as `"additionalProperties": true` on the object that lost it.

mod budget;
pub(super) mod format;
mod schema;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use format::StringFormat;

/// Containers nested deeper than this are counted as samples but not described: their schema
/// is `{}`. The root value is at depth 0.
pub const MAX_DEPTH: usize = 16;

/// The most sub-schemas (object properties and array item schemas, at any depth) one shape
/// keeps. The first ones breadth-first, in property-name order, are kept: shallow structure is
/// worth more than deep detail.
///
/// A limit per object alone would not bound memory (256 properties at each of 16 levels is
/// 256^16), and a per-object limit combined with a whole-tree one would make merging depend
/// on the order of merges. One limit on the whole tree, applied in one fixed order, keeps
/// `merge` associative: whatever it drops from a part would be dropped from the whole. It also
/// caps any one object at this many properties.
pub const MAX_NODES: usize = 256;

/// The share of their keys two objects must have in common to [resemble](Shape::resembles).
pub const RESEMBLANCE: f64 = 0.8;

/// Longer property names are dropped (and flagged as additional properties): they are
/// unlikely to be schema, and every kept name costs memory in every replica and in the store.
pub const MAX_PROPERTY_NAME_LEN: usize = 128;

/// How many values of each JSON type were seen, and what their parts looked like.
///
/// Every field is a count or a union, so [`Shape::merge`] is commutative and associative.
/// Zero counts and empty maps are left out of the serialized form to keep stored aggregates
/// small.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Shape {
    /// Values seen here, of any type (including ones too deep to describe).
    #[serde(default, skip_serializing_if = "is_zero")]
    samples: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    null: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    boolean: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    integer: u64,
    /// Numbers with a fraction or exponent.
    #[serde(default, skip_serializing_if = "is_zero")]
    number: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    string: u64,
    /// How many of the strings matched each format.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    formats: BTreeMap<StringFormat, u64>,
    #[serde(default, skip_serializing_if = "is_zero")]
    array: u64,
    /// Every element of every array, merged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    items: Option<Box<Shape>>,
    #[serde(default, skip_serializing_if = "is_zero")]
    object: u64,
    /// Each property's shape; its `samples` is how many objects had the key.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    properties: BTreeMap<String, Shape>,
    /// Some property was not kept (a bound dropped it).
    #[serde(default, skip_serializing_if = "is_false")]
    additional_properties: bool,
}

impl Shape {
    /// The shape of one sample.
    pub fn of(value: &Value) -> Shape {
        let mut shape = Self::observe(value, 0);
        budget::prune(&mut shape);
        shape
    }

    /// Adds what `other` saw. Commutative and associative, so replicas and the store can merge
    /// in any order and grouping.
    pub fn merge(&mut self, other: &Shape) {
        self.merge_unbounded(other);
        budget::prune(self);
    }

    /// How many values this shape has seen.
    pub fn samples(&self) -> u64 {
        self.samples
    }

    /// Whether two shapes describe the same kind of value: the same JSON types, objects with
    /// mostly the same keys (at least [`RESEMBLANCE`] of their union) whose common properties
    /// resemble in turn, arrays whose items resemble. Values of one resource seen at different
    /// paths (`/users/1`, `/users/2`) resemble; different resources (`/users`, `/orders`)
    /// rarely do, even inside the same envelope. Looks [`MAX_DEPTH`] levels deep at most.
    pub fn resembles(&self, other: &Shape) -> bool {
        self.resembles_at(other, 0)
    }

    fn resembles_at(&self, other: &Shape, depth: usize) -> bool {
        if depth >= MAX_DEPTH {
            return true;
        }
        let types = |s: &Shape| {
            [
                s.null,
                s.boolean,
                s.integer + s.number,
                s.string,
                s.array,
                s.object,
            ]
            .map(|n| n > 0)
        };
        if types(self) != types(other) {
            return false;
        }
        let items = match (&self.items, &other.items) {
            (Some(a), Some(b)) => a.resembles_at(b, depth + 1),
            _ => true,
        };
        let union = self
            .properties
            .keys()
            .chain(
                other
                    .properties
                    .keys()
                    .filter(|k| !self.properties.contains_key(*k)),
            )
            .count();
        let common: Vec<&String> = self
            .properties
            .keys()
            .filter(|k| other.properties.contains_key(*k))
            .collect();
        let keys = union == 0 || common.len() as f64 >= RESEMBLANCE * union as f64;
        items
            && keys
            && common
                .iter()
                .all(|k| self.properties[*k].resembles_at(&other.properties[*k], depth + 1))
    }

    fn observe(value: &Value, depth: usize) -> Shape {
        let mut shape = Shape {
            samples: 1,
            ..Shape::default()
        };
        if depth >= MAX_DEPTH {
            return shape;
        }
        match value {
            Value::Null => shape.null = 1,
            Value::Bool(_) => shape.boolean = 1,
            Value::Number(n) if n.is_f64() => shape.number = 1,
            Value::Number(_) => shape.integer = 1,
            Value::String(s) => {
                shape.string = 1;
                if let Some(format) = StringFormat::detect(s) {
                    shape.formats.insert(format, 1);
                }
            }
            Value::Array(elements) => {
                shape.array = 1;
                let mut items: Option<Shape> = None;
                for element in elements {
                    let element = Self::observe(element, depth + 1);
                    match &mut items {
                        // Pruned as it grows, so a long array of varied elements cannot build
                        // a large intermediate shape; the root's prune would drop the same.
                        Some(items) => items.merge(&element),
                        None => items = Some(element),
                    }
                }
                shape.items = items.map(Box::new);
            }
            Value::Object(map) => {
                shape.object = 1;
                for (name, value) in map {
                    if name.len() > MAX_PROPERTY_NAME_LEN {
                        shape.additional_properties = true;
                        continue;
                    }
                    // Keys beyond the first MAX_NODES could never survive the prune.
                    if shape.properties.len() == MAX_NODES {
                        shape.additional_properties = true;
                        if shape.properties.keys().next_back() < Some(name) {
                            continue;
                        }
                        shape.properties.pop_last();
                    }
                    shape
                        .properties
                        .insert(name.clone(), Self::observe(value, depth + 1));
                }
            }
        }
        shape
    }

    /// Counts add, maps unite; nothing is dropped except what no prune could keep.
    fn merge_unbounded(&mut self, other: &Shape) {
        self.samples = self.samples.saturating_add(other.samples);
        self.null = self.null.saturating_add(other.null);
        self.boolean = self.boolean.saturating_add(other.boolean);
        self.integer = self.integer.saturating_add(other.integer);
        self.number = self.number.saturating_add(other.number);
        self.string = self.string.saturating_add(other.string);
        for (format, count) in &other.formats {
            let mine = self.formats.entry(*format).or_default();
            *mine = mine.saturating_add(*count);
        }
        self.array = self.array.saturating_add(other.array);
        match (&mut self.items, &other.items) {
            (Some(mine), Some(theirs)) => mine.merge_unbounded(theirs),
            (None, Some(theirs)) => self.items = Some(theirs.clone()),
            (_, None) => {}
        }
        self.object = self.object.saturating_add(other.object);
        for (name, theirs) in &other.properties {
            match self.properties.get_mut(name) {
                Some(mine) => mine.merge_unbounded(theirs),
                None => {
                    self.properties.insert(name.clone(), theirs.clone());
                }
            }
        }
        if self.properties.len() > MAX_NODES {
            // Keys beyond the first MAX_NODES could never survive the prune.
            self.additional_properties = true;
            while self.properties.len() > MAX_NODES {
                self.properties.pop_last();
            }
        }
        self.additional_properties |= other.additional_properties;
    }
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

fn is_false(b: &bool) -> bool {
    !*b
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use serde_json::json;

    fn shape_of_all(values: &[Value]) -> Shape {
        let mut shape = Shape::default();
        for value in values {
            shape.merge(&Shape::of(value));
        }
        shape
    }

    fn schema_of_all(values: &[Value]) -> Value {
        shape_of_all(values).to_json_schema()
    }

    /// A small deterministic generator, so merge-law tests cover varied shapes without a
    /// property-testing dependency.
    struct Lcg(u64);

    impl Lcg {
        fn next(&mut self, below: u64) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (self.0 >> 33) % below
        }

        fn value(&mut self, depth: usize) -> Value {
            let kind = if depth > 4 {
                self.next(6)
            } else {
                self.next(8)
            };
            match kind {
                0 => Value::Null,
                1 => json!(self.next(2) == 0),
                2 => json!(self.next(1000)),
                3 => json!(self.next(1000) as f64 / 7.0),
                4 => json!("2024-05-01T10:00:00Z"),
                5 => json!("plain"),
                6 => Value::Array((0..self.next(4)).map(|_| self.value(depth + 1)).collect()),
                _ => {
                    let keys = self.next(6);
                    let mut map = serde_json::Map::new();
                    for _ in 0..keys {
                        let key = format!("k{}", self.next(12));
                        map.insert(key, self.value(depth + 1));
                    }
                    Value::Object(map)
                }
            }
        }
    }

    fn wide_object(keys: std::ops::Range<usize>, nested: usize) -> Value {
        let mut map = serde_json::Map::new();
        for i in keys {
            let inner: serde_json::Map<String, Value> = (0..nested)
                .map(|j| (format!("n{j:03}"), json!(j)))
                .collect();
            map.insert(format!("p{i:03}"), Value::Object(inner));
        }
        Value::Object(map)
    }

    fn assert_merge_laws(samples: &[Shape]) {
        crate::learning::assert_merge_laws(samples, Shape::merge);
    }

    #[test]
    fn merge_is_commutative_and_associative_on_varied_samples() {
        let mut rng = Lcg(7);
        let samples: Vec<Shape> = (0..12).map(|_| Shape::of(&rng.value(0))).collect();
        assert_merge_laws(&samples);
        let empty = Shape::default();
        let mut merged = samples[3].clone();
        merged.merge(&empty);
        assert_eq!(merged, samples[3], "the empty shape is the identity");
    }

    #[test]
    fn merge_laws_hold_where_the_node_budget_cuts() {
        // Each sample alone fits; together they overflow MAX_NODES at different depths.
        let samples = [
            Shape::of(&wide_object(0..40, 3)),
            Shape::of(&wide_object(20..60, 6)),
            Shape::of(&wide_object(100..300, 0)),
            Shape::of(&json!({"p000": {"deep": {"deeper": [1, 2]}}, "a": [{"x": 1}]})),
            Shape::of(&wide_object(250..260, 30)),
        ];
        assert_merge_laws(&samples);
    }

    #[test]
    fn a_property_is_required_only_when_every_object_had_it() {
        let schema = schema_of_all(&[
            json!({"id": 1, "name": "a", "tags": []}),
            json!({"id": 2, "name": "b"}),
        ]);
        assert_eq!(
            schema,
            json!({
                "type": "object",
                "properties": {
                    "id": {"type": "integer"},
                    "name": {"type": "string"},
                    "tags": {"type": "array"}
                },
                "required": ["id", "name"]
            })
        );
    }

    #[test]
    fn integers_and_numbers_together_are_numbers() {
        assert_eq!(
            schema_of_all(&[json!(1), json!(2)]),
            json!({"type": "integer"})
        );
        assert_eq!(
            schema_of_all(&[json!(1), json!(2.5)]),
            json!({"type": "number"})
        );
    }

    #[test]
    fn several_types_render_as_a_type_list() {
        assert_eq!(
            schema_of_all(&[json!("a"), Value::Null]),
            json!({"type": ["string", "null"]})
        );
        assert_eq!(
            schema_of_all(&[json!({"a": 1}), json!([true]), json!(false)]),
            json!({
                "type": ["object", "array", "boolean"],
                "properties": {"a": {"type": "integer"}},
                "required": ["a"],
                "items": {"type": "boolean"}
            })
        );
        assert_eq!(Shape::default().to_json_schema(), json!({}));
    }

    #[test]
    fn array_items_merge_every_element() {
        assert_eq!(
            Shape::of(&json!([{"a": 1}, {"a": 2.5, "b": null}])).to_json_schema(),
            json!({
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"a": {"type": "number"}, "b": {"type": "null"}},
                    "required": ["a"]
                }
            })
        );
    }

    #[test]
    fn a_format_is_claimed_only_when_every_string_agrees() {
        let uuid = json!("6f1c7e1e-2a4b-4c1d-9a8e-0b5c2d7e9f10");
        assert_eq!(
            schema_of_all(&[
                json!("2024-05-01T10:00:00Z"),
                json!("2024-05-01T10:00:00.5+02:00")
            ]),
            json!({"type": "string", "format": "date-time"})
        );
        assert_eq!(
            schema_of_all(std::slice::from_ref(&uuid)),
            json!({"type": "string", "format": "uuid"})
        );
        assert_eq!(
            schema_of_all(&[json!("ops@example.com")]),
            json!({"type": "string", "format": "email"})
        );
        assert_eq!(
            schema_of_all(&[uuid, json!("ops@example.com")]),
            json!({"type": "string"})
        );
        assert_eq!(
            schema_of_all(&[json!("2024-05-01T10:00:00Z"), json!("yesterday")]),
            json!({"type": "string"})
        );
        // Nulls do not break a nullable string's format.
        assert_eq!(
            schema_of_all(&[json!("ops@example.com"), Value::Null]),
            json!({"type": ["string", "null"], "format": "email"})
        );
    }

    #[test]
    fn values_are_never_recorded() {
        let stored = serde_json::to_string(&Shape::of(&json!({
            "password": "hunter2-secret",
            "email": "alice@example.com"
        })))
        .unwrap();
        assert!(!stored.contains("hunter2"), "{stored}");
        assert!(!stored.contains("alice"), "{stored}");
    }

    #[test]
    fn values_deeper_than_max_depth_are_unconstrained() {
        let mut value = json!("leaf");
        for _ in 0..MAX_DEPTH + 3 {
            value = json!({"n": value});
        }
        let mut schema = Shape::of(&value).to_json_schema();
        for _ in 0..MAX_DEPTH {
            assert_eq!(schema["type"], "object");
            schema = schema["properties"]["n"].clone();
        }
        assert_eq!(schema, json!({}));
    }

    #[test]
    fn wide_objects_keep_max_nodes_properties_and_say_there_are_more() {
        let shape = Shape::of(&wide_object(0..MAX_NODES + 50, 0));
        let schema = shape.to_json_schema();
        let properties = schema["properties"].as_object().unwrap();
        assert_eq!(properties.len(), MAX_NODES);
        assert!(properties.contains_key("p000"));
        assert!(!properties.contains_key(&format!("p{:03}", MAX_NODES)));
        assert_eq!(schema["additionalProperties"], json!(true));

        let narrow = Shape::of(&json!({"a": 1})).to_json_schema();
        assert!(narrow.get("additionalProperties").is_none());
    }

    #[test]
    fn the_node_budget_drops_deep_detail_before_shallow_structure() {
        // 20 properties with 20 nested properties each: 420 sub-schemas.
        let schema = Shape::of(&wide_object(0..20, 20)).to_json_schema();
        let properties = schema["properties"].as_object().unwrap();
        assert_eq!(properties.len(), 20, "every top-level property is kept");
        assert!(schema.get("additionalProperties").is_none());
        let nested: usize = properties
            .values()
            .map(|p| p["properties"].as_object().map_or(0, |m| m.len()))
            .sum();
        assert_eq!(20 + nested, MAX_NODES);
        // The first parents keep all their children; the last lose them and say so.
        assert!(properties["p000"].get("additionalProperties").is_none());
        assert_eq!(properties["p019"]["additionalProperties"], json!(true));
    }

    #[test]
    fn long_property_names_are_dropped() {
        let long = "x".repeat(MAX_PROPERTY_NAME_LEN + 1);
        let schema = Shape::of(&json!({ long: 1, "ok": 2 })).to_json_schema();
        assert_eq!(
            schema,
            json!({
                "type": "object",
                "properties": {"ok": {"type": "integer"}},
                "required": ["ok"],
                "additionalProperties": true
            })
        );
    }

    #[test]
    fn the_stored_form_is_compact_and_round_trips() {
        let shape = shape_of_all(&[
            json!({"id": 1, "at": "2024-05-01T10:00:00Z"}),
            json!({"id": 2}),
        ]);
        let stored = serde_json::to_value(&shape).unwrap();
        assert_eq!(
            stored,
            json!({
                "samples": 2,
                "object": 2,
                "properties": {
                    "at": {"samples": 1, "string": 1, "formats": {"date-time": 1}},
                    "id": {"samples": 2, "integer": 2}
                }
            })
        );
        let back: Shape = serde_json::from_value(stored).unwrap();
        assert_eq!(back, shape);
        assert_eq!(back.samples(), 2);
    }
}

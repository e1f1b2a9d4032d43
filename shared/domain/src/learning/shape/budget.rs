//! Keeps a shape within [`MAX_NODES`] sub-schemas.
//!
//! The kept sub-schemas are the first [`MAX_NODES`] in one fixed order: by depth, then by path
//! (array items before properties, properties by name). The order depends on nothing but the
//! sub-schema's own path, and a parent always comes before its children, so a sub-schema
//! dropped from part of the traffic is also dropped from the whole, and pruning after every
//! merge gives the same result as pruning once after all of them (merge stays associative).

use super::{MAX_NODES, Shape};

/// Drops every sub-schema after the first [`MAX_NODES`]. An object that loses properties is
/// flagged (`additionalProperties: true`); an array that loses its item schema just has none.
pub(super) fn prune(root: &mut Shape) {
    let mut per_depth = Vec::new();
    count(root, 0, &mut per_depth);
    let mut kept = 0;
    for (depth, &nodes) in per_depth.iter().enumerate() {
        if kept + nodes > MAX_NODES {
            let mut room = MAX_NODES - kept;
            cut(root, 0, depth, &mut room);
            return;
        }
        kept += nodes;
    }
}

/// `per_depth[d]` becomes the number of sub-schemas at depth `d` (the root's children are at
/// depth 1; index 0 stays 0).
fn count(shape: &Shape, depth: usize, per_depth: &mut Vec<usize>) {
    for child in children(shape) {
        if per_depth.len() <= depth + 1 {
            per_depth.resize(depth + 2, 0);
        }
        per_depth[depth + 1] += 1;
        count(child, depth + 1, per_depth);
    }
}

fn children(shape: &Shape) -> impl Iterator<Item = &Shape> {
    shape
        .items
        .as_deref()
        .into_iter()
        .chain(shape.properties.values())
}

/// Keeps the first `room` sub-schemas at `last_depth` (visited in path order) and nothing
/// below that depth.
fn cut(shape: &mut Shape, depth: usize, last_depth: usize, room: &mut usize) {
    if depth + 1 < last_depth {
        if let Some(items) = shape.items.as_deref_mut() {
            cut(items, depth + 1, last_depth, room);
        }
        for child in shape.properties.values_mut() {
            cut(child, depth + 1, last_depth, room);
        }
        return;
    }
    match shape.items.as_deref_mut() {
        Some(items) if *room > 0 => {
            *room -= 1;
            drop_children(items);
        }
        Some(_) => shape.items = None,
        None => {}
    }
    let mut dropped = false;
    shape.properties.retain(|_, child| {
        if *room == 0 {
            dropped = true;
            return false;
        }
        *room -= 1;
        drop_children(child);
        true
    });
    shape.additional_properties |= dropped;
}

fn drop_children(shape: &mut Shape) {
    shape.items = None;
    if !shape.properties.is_empty() {
        shape.properties.clear();
        shape.additional_properties = true;
    }
}

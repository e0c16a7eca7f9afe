//! Deserialisers for integers that clients send either as JSON numbers or as decimal strings
//! (the Databricks docs show `"traffic_percentage": "50"`).

use serde::{Deserialize, Deserializer, de::Error};

#[derive(Deserialize)]
#[serde(untagged)]
enum IntOrString {
    Int(i64),
    Str(String),
}

fn parse<E: Error>(v: IntOrString) -> Result<i64, E> {
    match v {
        IntOrString::Int(i) => Ok(i),
        IntOrString::Str(s) => s.trim().parse().map_err(|_| E::custom(format!("expected an integer, got \"{s}\""))),
    }
}

/// An `i64` given as a number or a numeric string.
pub fn int<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    parse(IntOrString::deserialize(d)?)
}

/// An optional `i64` given as a number, a numeric string or null.
pub fn opt_int<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    match Option::<IntOrString>::deserialize(d)? {
        None => Ok(None),
        Some(v) => parse(v).map(Some),
    }
}

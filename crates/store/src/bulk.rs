//! Multi-row `INSERT` statements for the batch writers (usage records, inference payloads).
//!
//! A batch is written as statements of many rows each. Their SQL text depends only on the table,
//! the column count and the row count, so it is built once per shape and kept: formatting a
//! thousand placeholders again for every statement was a visible share of the gateway's CPU.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex, PoisonError};

use crate::dialect::Dialect;

/// `{head}VALUES (?, ...), (?, ...), ... ON CONFLICT DO NOTHING` for `rows` rows of `columns`
/// values (`$1`, `$2`, ... on an engine with [`Dialect::NUMBERED_PARAMETERS`]); `head` is
/// `INSERT INTO table (columns) `. The shapes kept are bounded by the callers' chunk sizes (a few
/// dozen per table and engine).
pub(crate) fn insert_statement<DB: Dialect>(head: &'static str, columns: usize, rows: usize) -> &'static str {
    type Shape = (&'static str, usize, usize, bool);
    static SHAPES: LazyLock<Mutex<HashMap<Shape, &'static str>>> = LazyLock::new(Default::default);
    let numbered = DB::NUMBERED_PARAMETERS;
    let mut shapes = SHAPES.lock().unwrap_or_else(PoisonError::into_inner);
    shapes
        .entry((head, columns, rows, numbered))
        .or_insert_with(|| Box::leak(build(head, columns, rows, numbered).into_boxed_str()))
}

fn build(head: &str, columns: usize, rows: usize, numbered: bool) -> String {
    use std::fmt::Write;
    let mut sql = String::with_capacity(head.len() + rows * columns * 6 + 32);
    sql.push_str(head);
    sql.push_str("VALUES ");
    for row in 0..rows {
        sql.push_str(if row == 0 { "(" } else { ", (" });
        for col in 0..columns {
            if col > 0 {
                sql.push_str(", ");
            }
            match numbered {
                true => {
                    let _ = write!(sql, "${}", row * columns + col + 1);
                }
                false => sql.push('?'),
            }
        }
        sql.push(')');
    }
    sql.push_str(" ON CONFLICT DO NOTHING");
    sql
}

/// Adds each value to `args` (a `sqlx` arguments buffer) in order; an encoding failure returns
/// from the enclosing function as a database error.
macro_rules! bind_all {
    ($args:expr; $($value:expr),+ $(,)?) => {
        $( sqlx::Arguments::add(&mut $args, $value).map_err(sqlx::Error::Encode)?; )+
    };
}
pub(crate) use bind_all;

#[cfg(test)]
mod tests {
    use super::*;

    use sqlx::{Postgres, Sqlite};

    #[test]
    fn one_placeholder_per_value_row_after_row_and_one_text_per_shape() {
        let head = "INSERT INTO t (a, b) ";
        assert_eq!(
            insert_statement::<Postgres>(head, 2, 3),
            "INSERT INTO t (a, b) VALUES ($1, $2), ($3, $4), ($5, $6) ON CONFLICT DO NOTHING"
        );
        assert_eq!(
            insert_statement::<Sqlite>(head, 2, 3),
            "INSERT INTO t (a, b) VALUES (?, ?), (?, ?), (?, ?) ON CONFLICT DO NOTHING"
        );
        assert_eq!(insert_statement::<Sqlite>(head, 2, 1), "INSERT INTO t (a, b) VALUES (?, ?) ON CONFLICT DO NOTHING");
        assert!(std::ptr::eq(insert_statement::<Sqlite>(head, 2, 3), insert_statement::<Sqlite>(head, 2, 3)));
    }
}

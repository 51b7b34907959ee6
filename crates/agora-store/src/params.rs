//! Bind parameters of generated statements, numbered as each engine wants them.

use std::fmt::Write as _;

use crate::{Backend, Tx};

/// Numbers the bind parameters of one generated statement. PostgreSQL wants `$n`. On SQLite,
/// `$n` makes binding quadratic in the number of parameters (each is looked up by name in a
/// list), so generated multi-row statements use anonymous `?`, bound in order of appearance;
/// a statement numbered this way must use `Params` for every parameter.
pub(crate) struct Params {
    sqlite: bool,
    next: usize,
}

impl Params {
    /// Parameters for a statement run on `backend`.
    pub(crate) fn new(backend: Backend) -> Self {
        Self {
            sqlite: backend == Backend::Sqlite,
            next: 1,
        }
    }

    /// Parameters for a statement run in `tx`.
    pub(crate) fn for_tx(tx: &mut Tx) -> Self {
        Self::new(Backend::of(tx))
    }

    /// The next parameter.
    pub(crate) fn next(&mut self) -> String {
        let mut sql = String::new();
        self.push_next(&mut sql);
        sql
    }

    /// Appends the next parameter to `sql`: the recorder's statements hold thousands, written
    /// on the single writer's thread, so none gets a string of its own.
    fn push_next(&mut self, sql: &mut String) {
        if self.sqlite {
            sql.push('?');
        } else {
            write!(sql, "${}", self.next).expect("writing to a String cannot fail");
            self.next += 1;
        }
    }

    /// `n` parameters, comma-separated.
    pub(crate) fn list(&mut self, n: usize) -> String {
        let mut sql = String::with_capacity(n * 3);
        for i in 0..n {
            if i > 0 {
                sql.push_str(", ");
            }
            self.push_next(&mut sql);
        }
        sql
    }

    /// `n` rows of `(…)` with `width` parameters each, for a multi-row `VALUES`.
    pub(crate) fn rows(&mut self, n: usize, width: usize) -> String {
        let mut sql = String::with_capacity(n * (width * 3 + 4));
        for row in 0..n {
            sql.push_str(if row == 0 { "(" } else { ", (" });
            sql.push_str(&self.list(width));
            sql.push(')');
        }
        sql
    }

    /// `n` rows of `(…)` with one parameter per type, each cast to its type: the casts give
    /// PostgreSQL the parameter types it cannot infer inside a `VALUES` subquery.
    pub(crate) fn typed_rows(&mut self, n: usize, types: &[&str]) -> String {
        let mut sql = String::with_capacity(n * types.len() * 24);
        for row in 0..n {
            sql.push_str(if row == 0 { "(" } else { ", (" });
            for (i, t) in types.iter().enumerate() {
                sql.push_str(if i == 0 { "CAST(" } else { ", CAST(" });
                self.push_next(&mut sql);
                write!(sql, " AS {t})").expect("writing to a String cannot fail");
            }
            sql.push(')');
        }
        sql
    }
}

/// `$start, $start+1, …` placeholders for an `IN (…)` list of `n` values.
pub(crate) fn placeholders(start: usize, n: usize) -> String {
    (start..start + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_numbered_for_postgres_and_anonymous_for_sqlite() {
        let mut pg = Params::new(Backend::Postgres);
        assert_eq!(pg.next(), "$1");
        assert_eq!(pg.list(2), "$2, $3");
        assert_eq!(
            pg.typed_rows(2, &["TEXT", "BIGINT"]),
            "(CAST($4 AS TEXT), CAST($5 AS BIGINT)), (CAST($6 AS TEXT), CAST($7 AS BIGINT))"
        );
        assert_eq!(pg.rows(2, 2), "($8, $9), ($10, $11)");
        let mut sqlite = Params::new(Backend::Sqlite);
        assert_eq!(sqlite.list(3), "?, ?, ?");
        assert_eq!(sqlite.typed_rows(1, &["TEXT"]), "(CAST(? AS TEXT))");
        assert_eq!(sqlite.rows(2, 1), "(?), (?)");
    }
}

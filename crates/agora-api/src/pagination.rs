//! `?limit=&cursor=` in, `{"data":[…],"next_cursor":…}` out.

use serde::{Deserialize, Serialize};

use crate::error::ApiError;

/// List parameters common to every list endpoint.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// 1 to 250, default 50.
    pub limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

impl PageQuery {
    /// The limit, checked.
    pub fn limit(&self) -> Result<i64, ApiError> {
        match self.limit {
            None => Ok(50),
            Some(n @ 1..=250) => Ok(n),
            Some(_) => Err(ApiError::invalid(
                "invalid_limit",
                "limit must be between 1 and 250",
            )),
        }
    }
}

/// One page of a list.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Page<T> {
    /// The items.
    pub data: Vec<T>,
    /// Pass as `cursor` for the next page; `null` on the last one.
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// A page of `items` fetched with `limit`; the cursor is the last item's key when the page
    /// is full.
    pub fn new(items: Vec<T>, limit: i64, key: impl Fn(&T) -> String) -> Self {
        let next_cursor = (items.len() as i64 == limit)
            .then(|| items.last().map(&key))
            .flatten();
        Self {
            data: items,
            next_cursor,
        }
    }
}

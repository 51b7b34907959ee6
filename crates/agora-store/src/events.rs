//! Recorded events as integrators read them back: the history (`GET /v1/events`), one event
//! with its body byte for byte as it was signed, and the ordered reads the live stream follows.
//!
//! Who sees which event is an [`Audience`]; the same rule filters the history in SQL and the
//! stream in memory, so the two never disagree.

use agora_core::ids::{id_floor, EVENT};
use agora_core::subscription::EventPattern;
use agora_forum::catalog::is_builtin_resource;
use sqlx::Row;

use crate::deliveries::Delivery;
use crate::webhooks::Owner;
use crate::{Backend, Params, Store, StoreError};

/// One event as recorded.
#[derive(Clone, Debug)]
pub struct StoredEvent {
    /// `evt_…`.
    pub id: String,
    /// Its type name.
    pub event_type: String,
    /// The envelope `{id, type, timestamp, data}` exactly as every delivery of it was signed.
    pub body: String,
    /// The API key owning the webhook an operational (`webhook.*`) event is about; `None` for
    /// every other event, and for operational events about the operator's webhooks.
    pub owner_key_id: Option<String>,
    /// When it was recorded (unix ms).
    pub created_at: i64,
}

/// The resource operational events are about; only their owner and admins see them.
const OPERATIONAL: &str = "webhook";

/// The resources of the built-in events, which custom types may not use.
fn builtin_resources() -> impl Iterator<Item = &'static str> {
    let mut seen: Vec<&'static str> = Vec::new();
    for t in agora_forum::catalog::BUILTIN {
        let resource = t.name.split_once('.').map_or(t.name, |(r, _)| r);
        if !seen.contains(&resource) {
            seen.push(resource);
        }
    }
    seen.into_iter()
}

/// Who may see an event: the API derives it from a caller's abilities, once per request or
/// stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Audience {
    /// Every event (an admin key).
    Everything,
    /// Some events.
    Some {
        /// Built-in resources whose events are visible (`thread`, `post`…), never `webhook`.
        resources: Vec<String>,
        /// Whether custom events (types registered with `POST /v1/event-types`) are visible.
        custom: bool,
        /// The key whose operational events are visible, if any.
        operational_of: Option<String>,
    },
}

impl Audience {
    /// Whether an event of `event_type`, owned by `owner`, is visible.
    pub fn sees(&self, event_type: &str, owner: Option<&str>) -> bool {
        let Self::Some {
            resources,
            custom,
            operational_of,
        } = self
        else {
            return true;
        };
        let resource = event_type.split_once('.').map_or(event_type, |(r, _)| r);
        if resource == OPERATIONAL {
            operational_of.is_some() && operational_of.as_deref() == owner
        } else if is_builtin_resource(resource) {
            resources.iter().any(|r| r == resource)
        } else {
            *custom
        }
    }

    /// The same rule as [`Audience::sees`], as an SQL condition on `events`, its parameters
    /// appended to `binds`.
    fn condition(&self, params: &mut Params, binds: &mut Vec<String>) -> String {
        let Self::Some {
            resources,
            custom,
            operational_of,
        } = self
        else {
            return "1 = 1".into();
        };
        let mut any = Vec::new();
        let of_resource = |resource: &str, params: &mut Params, binds: &mut Vec<String>| {
            binds.push(like_prefix(resource));
            format!("type LIKE {} ESCAPE '\\'", params.next())
        };
        for resource in resources {
            any.push(of_resource(resource, params, binds));
        }
        if *custom {
            let builtin: Vec<String> = builtin_resources()
                .map(|r| of_resource(r, params, binds))
                .collect();
            any.push(format!("NOT ({})", builtin.join(" OR ")));
        }
        if let Some(owner) = operational_of {
            let operational = of_resource(OPERATIONAL, params, binds);
            binds.push(owner.clone());
            any.push(format!(
                "({operational} AND owner_key_id = {})",
                params.next()
            ));
        }
        if any.is_empty() {
            return "1 = 0".into();
        }
        format!("({})", any.join(" OR "))
    }
}

/// A `LIKE` pattern matching the types of `resource`, `_` escaped.
fn like_prefix(resource: &str) -> String {
    format!("{}.%", resource.replace('_', "\\_"))
}

/// What the history may be filtered by.
#[derive(Clone, Debug, Default)]
pub struct EventFilter {
    /// An exact type name.
    pub event_type: Option<String>,
    /// A webhook-style pattern (`thread.*`).
    pub pattern: Option<EventPattern>,
    /// Recorded at or after (unix ms).
    pub since: Option<i64>,
    /// Recorded before (unix ms).
    pub until: Option<i64>,
}

const EVENT_COLUMNS: &str = "id, type, body, owner_key_id, created_at";

fn event_from_row(row: &sqlx::any::AnyRow) -> Result<StoredEvent, StoreError> {
    Ok(StoredEvent {
        id: row.try_get("id")?,
        event_type: row.try_get("type")?,
        body: row.try_get("body")?,
        owner_key_id: row.try_get("owner_key_id")?,
        created_at: row.try_get("created_at")?,
    })
}

/// Where an event stands in the order the stream follows: the same on every node, and no
/// event ever becomes visible behind one a reader has read (see the 0008 migrations).
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Position {
    seq: i64,
    id: String,
}

impl Store {
    /// The events `audience` sees, newest first, before `cursor` (an event id).
    pub async fn list_events(
        &self,
        audience: &Audience,
        filter: &EventFilter,
        before: Option<&str>,
        limit: i64,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let mut params = Params::new(self.backend);
        let mut binds = Vec::new();
        let mut sql = format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE id < {}",
            params.next()
        );
        binds.push(before.unwrap_or("evt_~").to_owned());
        if let Some(since) = filter.since {
            sql.push_str(&format!(" AND id >= {}", params.next()));
            binds.push(id_floor(EVENT, since));
        }
        if let Some(until) = filter.until {
            sql.push_str(&format!(" AND id < {}", params.next()));
            binds.push(id_floor(EVENT, until));
        }
        if let Some(t) = &filter.event_type {
            sql.push_str(&format!(" AND type = {}", params.next()));
            binds.push(t.clone());
        }
        match &filter.pattern {
            Some(EventPattern::Exact(t)) => {
                sql.push_str(&format!(" AND type = {}", params.next()));
                binds.push(t.as_str().to_owned());
            }
            Some(EventPattern::Resource(r)) => {
                sql.push_str(&format!(" AND type LIKE {} ESCAPE '\\'", params.next()));
                binds.push(like_prefix(r));
            }
            Some(EventPattern::All) | None => {}
        }
        let visible = audience.condition(&mut params, &mut binds);
        sql.push_str(&format!(
            " AND {visible} ORDER BY id DESC LIMIT {}",
            limit.max(0)
        ));
        let mut q = sqlx::query(&sql);
        for b in binds {
            q = q.bind(b);
        }
        q.fetch_all(&self.read)
            .await?
            .iter()
            .map(event_from_row)
            .collect()
    }

    /// One event, whoever may see it (the caller checks with an [`Audience`]).
    pub async fn event(&self, id: &str) -> Result<StoredEvent, StoreError> {
        let sql = format!("SELECT {EVENT_COLUMNS} FROM events WHERE id = $1");
        let row = sqlx::query(&sql)
            .bind(id)
            .fetch_optional(&self.read)
            .await?
            .ok_or(StoreError::NotFound)?;
        event_from_row(&row)
    }

    /// The deliveries of an event to the webhooks `owner` may see, oldest first.
    pub async fn event_deliveries(
        &self,
        event_id: &str,
        owner: Owner<'_>,
    ) -> Result<Vec<Delivery>, StoreError> {
        match owner {
            Owner::Anyone => self.deliveries_of_event(event_id, None).await,
            Owner::Key(key) => self.deliveries_of_event(event_id, Some(key.as_str())).await,
            Owner::Nobody => Ok(Vec::new()),
        }
    }

    /// Where the event `id` stands in the stream's order, if it is recorded and final.
    pub async fn stream_position(&self, id: &str) -> Result<Option<Position>, StoreError> {
        let sql = format!(
            "SELECT seq, id FROM events WHERE id = $1{}",
            self.final_events(" AND")
        );
        let row = sqlx::query(&sql)
            .bind(id)
            .fetch_optional(&self.read)
            .await?;
        row.map(|row| position_from_row(&row)).transpose()
    }

    /// The position of the last final event: every event at or before it is recorded for
    /// good, and every event recorded later stands after it.
    pub async fn stream_end(&self) -> Result<Position, StoreError> {
        let sql = format!(
            "SELECT seq, id FROM events{} ORDER BY seq DESC, id DESC LIMIT 1",
            self.final_events(" WHERE")
        );
        let row = sqlx::query(&sql).fetch_optional(&self.read).await?;
        Ok(row
            .map(|row| position_from_row(&row))
            .transpose()?
            .unwrap_or_default())
    }

    /// The final events after `after`, in the stream's order, at most `limit`.
    pub async fn stream_after(
        &self,
        after: &Position,
        limit: i64,
    ) -> Result<Vec<(Position, StoredEvent)>, StoreError> {
        let sql = format!(
            "SELECT seq, {EVENT_COLUMNS} FROM events WHERE (seq > $1 OR (seq = $1 AND id > $2)){} \
             ORDER BY seq, id LIMIT {}",
            self.final_events(" AND"),
            limit.max(0)
        );
        sqlx::query(&sql)
            .bind(after.seq)
            .bind(after.id.as_str())
            .fetch_all(&self.read)
            .await?
            .iter()
            .map(|row| Ok((position_from_row(row)?, event_from_row(row)?)))
            .collect()
    }

    /// The condition, after `joiner`, that leaves out events a transaction still running could
    /// be ordered before (PostgreSQL); SQLite's single writer commits in `seq` order.
    fn final_events(&self, joiner: &str) -> String {
        match self.backend {
            Backend::Sqlite => String::new(),
            Backend::Postgres => {
                format!("{joiner} seq < pg_snapshot_xmin(pg_current_snapshot())::text::bigint")
            }
        }
    }
}

fn position_from_row(row: &sqlx::any::AnyRow) -> Result<Position, StoreError> {
    Ok(Position {
        seq: row.try_get("seq")?,
        id: row.try_get("id")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reader_of(resources: &[&str], custom: bool, operational_of: Option<&str>) -> Audience {
        Audience::Some {
            resources: resources.iter().map(|r| r.to_string()).collect(),
            custom,
            operational_of: operational_of.map(str::to_owned),
        }
    }

    #[test]
    fn an_audience_sees_its_resources_custom_events_and_its_own_operational_ones() {
        let threads = reader_of(&["thread"], false, None);
        assert!(threads.sees("thread.created", None));
        assert!(!threads.sees("post.created", None));
        assert!(!threads.sees("course.enrolled", None));
        assert!(!threads.sees("webhook.disabled", None));
        let custom = reader_of(&[], true, Some("key_a"));
        assert!(custom.sees("course.enrolled", None));
        assert!(!custom.sees("thread.created", None));
        assert!(custom.sees("webhook.test", Some("key_a")));
        assert!(!custom.sees("webhook.test", Some("key_b")));
        assert!(!custom.sees("webhook.test", None));
        assert!(Audience::Everything.sees("webhook.test", None));
    }

    #[test]
    fn builtin_resources_are_listed_once() {
        let all: Vec<&str> = builtin_resources().collect();
        assert!(all.contains(&"thread") && all.contains(&"webhook"));
        let mut unique = all.clone();
        unique.dedup();
        assert_eq!(all, unique);
    }
}

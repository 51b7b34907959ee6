//! Custom event types, registered through `POST /v1/event-types` (`course.enrolled`).

use sqlx::Row;

use crate::{Store, StoreError};
use agora_core::time::now_ms;

/// A registered custom event type.
#[derive(Clone, Debug)]
pub struct CustomEventType {
    /// `resource.action`.
    pub name: String,
    /// What it means, for integrators browsing the catalog.
    pub description: String,
    /// A JSON Schema of its `data`, when the registrant gave one.
    pub schema: Option<serde_json::Value>,
}

impl Store {
    /// Registers a custom type; a name taken answers [`StoreError::Conflict`].
    pub async fn register_event_type(&self, t: &CustomEventType) -> Result<(), StoreError> {
        self.execute_durably(sqlx::query(
            "INSERT INTO event_types (name, description, schema, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(&t.name)
        .bind(&t.description)
        .bind(t.schema.as_ref().map(|s| s.to_string()))
        .bind(now_ms()))
        .await?;
        Ok(())
    }

    /// Whether a custom type of this name is registered, answered from memory when it can be.
    pub async fn is_registered_type(&self, name: &str) -> Result<bool, StoreError> {
        if self
            .known_types
            .read()
            .expect("type cache lock")
            .contains(name)
        {
            return Ok(true);
        }
        let names: Vec<String> = self
            .custom_event_types()
            .await?
            .into_iter()
            .map(|t| t.name)
            .collect();
        let mut known = self.known_types.write().expect("type cache lock");
        known.extend(names);
        Ok(known.contains(name))
    }

    /// Every custom type, by name.
    pub async fn custom_event_types(&self) -> Result<Vec<CustomEventType>, StoreError> {
        sqlx::query("SELECT name, description, schema FROM event_types ORDER BY name")
            .fetch_all(&self.read)
            .await?
            .iter()
            .map(|row| {
                let schema: Option<String> = row.try_get("schema")?;
                Ok(CustomEventType {
                    name: row.try_get("name")?,
                    description: row.try_get("description")?,
                    schema: schema.and_then(|s| serde_json::from_str(&s).ok()),
                })
            })
            .collect()
    }
}

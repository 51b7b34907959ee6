//! Extractors that answer their failures in the project's error shape.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use crate::error::ApiError;
use crate::AppState;
use agora_store::keys::ApiKey;

/// `axum::Json`, but a body that is too large, not JSON or of the wrong shape is answered as
/// an [`ApiError`].
pub struct Json<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

fn json_rejection(rejection: JsonRejection) -> ApiError {
    match rejection {
        JsonRejection::MissingJsonContentType(_) => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "request body must be JSON with content-type: application/json",
        ),
        JsonRejection::JsonSyntaxError(e) => ApiError::invalid(
            "invalid_json",
            format!("request body is not valid JSON: {}", e.body_text()),
        ),
        JsonRejection::JsonDataError(e) => ApiError::invalid("invalid_body", e.body_text()),
        JsonRejection::BytesRejection(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "request body is larger than 1 MiB",
            )
        }
        other => ApiError::invalid("invalid_body", other.body_text()),
    }
}

/// `axum::extract::Query` with errors in the project's shape.
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| Self(q.0))
            .map_err(|e: QueryRejection| ApiError::invalid("invalid_query", e.body_text()))
    }
}

/// The API key a request authenticated with.
#[derive(Clone, Debug)]
pub struct Caller {
    /// The key.
    pub key: ApiKey,
}

impl Caller {
    /// Whether the key holds `admin`.
    pub fn is_admin(&self) -> bool {
        self.key.abilities.iter().any(|a| a == "admin")
    }

    /// Whether the key holds an ability: `admin` holds all, `x:write` holds `x:read`.
    pub fn can(&self, ability: &str) -> bool {
        self.is_admin()
            || self.key.abilities.iter().any(|a| {
                a == ability
                    || ability
                        .strip_suffix(":read")
                        .is_some_and(|resource| *a == format!("{resource}:write"))
            })
    }

    /// Answers 403 unless the key holds `ability`.
    pub fn require(&self, ability: &str) -> Result<(), ApiError> {
        if self.can(ability) {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "this API key lacks the `{ability}` ability"
            )))
        }
    }

    /// Whose webhooks the caller may see.
    pub fn owner(&self) -> agora_store::webhooks::Owner<'_> {
        if self.is_admin() {
            agora_store::webhooks::Owner::Anyone
        } else {
            agora_store::webhooks::Owner::Key(&self.key.id)
        }
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok());
        let value = header("authorization")
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .or_else(|| header("x-api-key"))
            .map(str::trim);
        let unauthorized = |message: &str| {
            ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message.to_owned())
        };
        let Some(value) = value.filter(|v| !v.is_empty()) else {
            return Err(unauthorized(
                "missing API key: send `Authorization: Bearer {key}` or `x-api-key: {key}`",
            ));
        };
        match state.store.authenticate(value).await? {
            Some(key) => {
                state.rate_limiter.check(&key.id)?;
                Ok(Self { key })
            }
            None => Err(unauthorized("invalid or revoked API key")),
        }
    }
}

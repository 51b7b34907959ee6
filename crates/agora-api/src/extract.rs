//! Extractors that answer their failures in the project's error shape.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use crate::error::ApiError;
use crate::AppState;
use agora_forum::abilities::{Ability, Resource};
use agora_forum::roles::Role;
use agora_store::forum::sessions::{Session, TOKEN_PREFIX};
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

/// A JSON body that may be left out entirely (empty or whitespace): then `T::default()`.
pub fn optional_body<T: DeserializeOwned + Default>(body: &[u8]) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body).map_err(|e| ApiError::invalid("invalid_body", e.to_string()))
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

/// The address a request came from (its TCP peer: behind a reverse proxy, the proxy's), when
/// the server that accepted it recorded one.
pub struct PeerAddr(pub Option<std::net::IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for PeerAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|info| info.0.ip());
        Ok(Self(peer))
    }
}

/// Who sent a request: an API key (an integration, with explicit abilities) or a user
/// signed in with a session token from `POST /v1/auth/login`.
#[derive(Clone, Debug)]
pub enum Principal {
    /// An API key; acts for the integration, on anyone's content its abilities cover.
    Key(ApiKey),
    /// A user session; acts only as that user, unless their role says otherwise.
    User(Session),
}

/// The authenticated sender of a request.
#[derive(Clone, Debug)]
pub struct Caller {
    /// The key or session.
    pub principal: Principal,
}

impl Caller {
    /// The API key, when the caller is one.
    pub fn key(&self) -> Option<&ApiKey> {
        match &self.principal {
            Principal::Key(key) => Some(key),
            Principal::User(_) => None,
        }
    }

    /// The signed-in user's id, when the caller is a session.
    pub fn user_id(&self) -> Option<&str> {
        match &self.principal {
            Principal::Key(_) => None,
            Principal::User(s) => Some(&s.user_id),
        }
    }

    /// Who did something, as recorded in `edited_by`, `reported_by` and the like: the user's
    /// id, or the key's.
    pub fn actor_id(&self) -> &str {
        match &self.principal {
            Principal::Key(key) => &key.id,
            Principal::User(s) => &s.user_id,
        }
    }

    /// Who the audit trail records for a change this caller makes from `peer`.
    pub fn audit_actor(&self, peer: &PeerAddr) -> agora_store::audit::Actor {
        agora_store::audit::Actor {
            id: self.actor_id().to_owned(),
            address: peer.0.map(|ip| ip.to_string()),
        }
    }

    /// Whether the caller is an API key holding `admin`.
    pub fn is_admin(&self) -> bool {
        self.key().is_some_and(|k| k.abilities.is_admin())
    }

    /// Whether the caller holds an ability. Keys: `admin` holds all, `x:write` holds
    /// `x:read`. Sessions: as their role allows ([`Role::can`]).
    pub fn can(&self, ability: Ability) -> bool {
        match &self.principal {
            Principal::User(s) => s.role.can(ability),
            Principal::Key(key) => key.abilities.allow(ability),
        }
    }

    /// Answers 403 unless the caller holds `ability`.
    pub fn require(&self, ability: Ability) -> Result<(), ApiError> {
        if self.can(ability) {
            Ok(())
        } else if self.user_id().is_some() {
            Err(ApiError::forbidden(format!(
                "your account may not do this (it needs `{ability}`)"
            )))
        } else {
            Err(ApiError::forbidden(format!(
                "this API key lacks the `{ability}` ability"
            )))
        }
    }

    /// Whether the caller may change content owned by `owner_id`: a key holding the
    /// resource's write ability may (it acts for the integration), a session only on its own
    /// content unless its user moderates.
    pub fn may_act_on(&self, owner_id: &str) -> bool {
        match &self.principal {
            Principal::Key(_) => true,
            Principal::User(s) => s.user_id == owner_id || s.role >= Role::Moderator,
        }
    }

    /// Whether the caller moderates: a session of a moderator or admin, or a key holding
    /// `moderation:write`.
    pub fn moderates(&self) -> bool {
        self.can(Ability::Write(Resource::Moderation))
    }

    /// Which recorded events the caller may see, in the history and the stream: an event of a
    /// built-in resource needs that resource's read ability (`thread.*` needs
    /// `threads:read`), a custom event `events:read`, and an operational one (`webhook.*`)
    /// `webhooks:read` and the ownership of its webhook; an admin key sees every event. The
    /// history and the stream are an integration's, like webhooks: a user session sees none
    /// (the routes answer it 403 before asking).
    pub fn audience(&self) -> agora_store::events::Audience {
        use agora_forum::catalog::{read_ability, BUILTIN};
        use agora_store::events::Audience;
        if self.is_admin() {
            return Audience::Everything;
        }
        if self.key().is_none() {
            return Audience::Some {
                resources: Vec::new(),
                custom: false,
                operational_of: None,
            };
        }
        let mut resources: Vec<String> = Vec::new();
        for t in BUILTIN {
            let resource = t.name.split_once('.').map_or(t.name, |(r, _)| r);
            if resource != "webhook"
                && !resources.iter().any(|r| r == resource)
                && self.can(read_ability(resource))
            {
                resources.push(resource.to_owned());
            }
        }
        Audience::Some {
            resources,
            custom: self.can(Ability::Read(Resource::Events)),
            operational_of: self
                .key()
                .filter(|_| self.can(Ability::Read(Resource::Webhooks)))
                .map(|k| k.id.to_string()),
        }
    }

    /// Answers 403 to a user session: the event history and the stream are read with an API
    /// key, as webhooks are managed with one.
    pub fn require_key(&self) -> Result<(), ApiError> {
        if self.key().is_some() {
            Ok(())
        } else {
            Err(ApiError::forbidden(
                "events are read with an API key; a user session cannot read them",
            ))
        }
    }

    /// Whose webhooks the caller may see (only keys reach the webhook routes).
    pub fn owner(&self) -> agora_store::webhooks::Owner<'_> {
        use agora_store::webhooks::Owner;
        match self.key() {
            Some(key) if key.abilities.is_admin() => Owner::Anyone,
            Some(key) => Owner::Key(&key.id),
            None => Owner::Nobody,
        }
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        // Already authenticated (and rate-limited) by the idempotency guard.
        if let Some(caller) = parts.extensions.get::<Self>() {
            return Ok(caller.clone());
        }
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
        if value.starts_with(TOKEN_PREFIX) {
            let now = agora_core::time::now_ms();
            if let Some(session) = state.store.authenticate_session(value, now).await? {
                state.rate_limiter.check_user(&session.user_id)?;
                return Ok(Self {
                    principal: Principal::User(session),
                });
            }
        }
        match state.store.authenticate(value).await? {
            Some(key) => {
                state.rate_limiter.check(&key.id)?;
                Ok(Self {
                    principal: Principal::Key(key),
                })
            }
            None if value.starts_with(TOKEN_PREFIX) => {
                Err(unauthorized("invalid or expired session token"))
            }
            None => Err(unauthorized("invalid or revoked API key")),
        }
    }
}

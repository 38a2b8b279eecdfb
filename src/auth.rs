//! Internal clients and their API keys.
//!
//! Keys are configured as SHA-256 hashes (`[[clients]]` with `name`, `key_sha256`,
//! `scopes`, `weight`), so the config file holds no usable secret. A request presents its
//! key as `Authorization: Bearer <key>` or `X-API-Key: <key>`; the key is hashed and
//! compared in constant time with every configured hash, once: a key that matched is then
//! recognised without hashing ([`recognised`]). The caller's name and weight go
//! to the budget (weighted-fair scheduling across clients). There is no "auth off": a
//! proxy with no clients refuses to start, and demo mode makes and prints a key.

mod recognised;

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::ApiError;

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
pub enum Scope {
    /// `GET /conversations/{id}`.
    #[serde(rename = "conversations:read")]
    ConversationsRead,
    /// `/reports/...`.
    #[serde(rename = "reports:read")]
    ReportsRead,
    /// `/admin/...`; implies every other scope.
    #[serde(rename = "admin")]
    Admin,
}

impl Scope {
    /// The scope's name as configured.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ConversationsRead => "conversations:read",
            Self::ReportsRead => "reports:read",
            Self::Admin => "admin",
        }
    }
}

fn default_weight() -> u32 {
    1
}

/// One configured internal client (`[[clients]]`).
#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ClientSettings {
    /// The client's name: shown in logs and metrics, and its fair-share identity.
    pub name: String,
    /// Hex SHA-256 of the client's key (`genesys-proxy keygen` prints one).
    pub key_sha256: String,
    /// What the key may do: `conversations:read`, `reports:read`, `admin` (all).
    pub scopes: Vec<Scope>,
    /// Fair-share weight in the upstream budget (default 1).
    #[serde(default = "default_weight")]
    pub weight: u32,
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub name: Arc<str>,
    pub scopes: Vec<Scope>,
    pub weight: u32,
}

impl Caller {
    /// Whether the caller holds `scope` (admin holds all).
    #[must_use]
    pub fn may(&self, scope: Scope) -> bool {
        self.scopes.contains(&scope) || self.scopes.contains(&Scope::Admin)
    }
}

#[derive(Debug)]
struct KnownKey {
    hash: [u8; 32],
    caller: Arc<Caller>,
}

/// The configured keys.
#[derive(Debug)]
pub struct ApiKeys {
    keys: Vec<KnownKey>,
    /// The keys that matched a hash already, by the index of their client in `keys`.
    recognised: recognised::Recognised,
}

/// Hex SHA-256 of a key, as configured in `key_sha256`.
#[must_use]
pub fn hash_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// A new random key (`gp_` + 43 URL-safe characters, 256 bits from the OS).
///
/// # Panics
/// When the operating system has no random source.
#[must_use]
pub fn generate_key() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the OS random source works");
    format!(
        "gp_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

impl ApiKeys {
    /// Validates the configured clients.
    ///
    /// # Errors
    /// A message naming the bad client entry.
    pub fn new(clients: &[ClientSettings]) -> Result<Self, String> {
        if clients.is_empty() {
            return Err("no internal clients are configured: add at least one [[clients]] entry with name, key_sha256 and scopes (genesys-proxy keygen makes one); the proxy has no unauthenticated mode".into());
        }
        let mut keys = Vec::with_capacity(clients.len());
        for (i, client) in clients.iter().enumerate() {
            let at = format!("clients[{i}] ({:?})", client.name);
            if client.name.trim().is_empty() {
                return Err(format!("clients[{i}].name must not be empty"));
            }
            if clients[..i].iter().any(|c| c.name == client.name) {
                return Err(format!("{at}: the name is used twice"));
            }
            let bytes = hex::decode(client.key_sha256.trim())
                .ok()
                .and_then(|b| <[u8; 32]>::try_from(b).ok())
                .ok_or_else(|| {
                    format!("{at}.key_sha256 must be 64 hex characters (the SHA-256 of the key)")
                })?;
            if client.scopes.is_empty() {
                return Err(format!(
                    "{at}.scopes must name at least one of conversations:read, reports:read, admin"
                ));
            }
            if client.weight == 0 {
                return Err(format!("{at}.weight must be at least 1"));
            }
            keys.push(KnownKey {
                hash: bytes,
                caller: Arc::new(Caller {
                    name: Arc::from(client.name.as_str()),
                    scopes: client.scopes.clone(),
                    weight: client.weight,
                }),
            });
        }
        Ok(Self {
            recognised: recognised::Recognised::new(keys.len()),
            keys,
        })
    }

    /// The caller whose key this is: a key recognised from an earlier request, or else
    /// one whose SHA-256 matches a configured hash (every hash is compared, in constant
    /// time), which is then remembered.
    #[must_use]
    pub fn authenticate(&self, key: &str) -> Option<&Arc<Caller>> {
        if let Some(index) = self.recognised.find(key.as_bytes()) {
            return Some(&self.keys[index].caller);
        }
        let presented: [u8; 32] = Sha256::digest(key.as_bytes()).into();
        let mut found = None;
        for (index, known) in self.keys.iter().enumerate() {
            if bool::from(known.hash.ct_eq(&presented)) {
                found = Some(index);
            }
        }
        let index = found?;
        self.recognised.remember(index, key.as_bytes());
        Some(&self.keys[index].caller)
    }

    /// Checks the key presented by a request's first `X-API-Key` and `Authorization`
    /// values ([`key_of`]), if any.
    #[must_use]
    pub fn check(
        &self,
        x_api_key: Option<&HeaderValue>,
        authorization: Option<&HeaderValue>,
    ) -> KeyCheck<'_> {
        // A recognised key is found from the raw bytes, without reading them as text
        // first: the bytes of a recognised key are text, so `key_of` would read the same.
        if let Some(index) =
            raw_key_of(x_api_key, authorization).and_then(|raw| self.recognised.find(raw))
        {
            return KeyCheck::Known(&self.keys[index].caller);
        }
        match key_of(x_api_key, authorization) {
            None => KeyCheck::NoKey,
            Some(key) => self
                .authenticate(key)
                .map_or(KeyCheck::UnknownKey, KeyCheck::Known),
        }
    }
}

/// The header of a key presented without a scheme.
pub const X_API_KEY: HeaderName = HeaderName::from_static("x-api-key");

/// The key a request presents, as `X-API-Key: <key>` or `Authorization: Bearer <key>`.
#[must_use]
pub fn presented_key(headers: &HeaderMap) -> Option<&str> {
    key_of(headers.get(X_API_KEY), headers.get(header::AUTHORIZATION))
}

/// The key presented by a request's first `X-API-Key` and `Authorization` values: the
/// first when it is text, else the second's when it is `Bearer <key>`.
#[must_use]
pub fn key_of<'a>(
    x_api_key: Option<&'a HeaderValue>,
    authorization: Option<&'a HeaderValue>,
) -> Option<&'a str> {
    if let Some(value) = x_api_key.and_then(|v| v.to_str().ok()) {
        return Some(value.trim());
    }
    let value = authorization?.to_str().ok()?;
    let (scheme, key) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| key.trim())
}

/// The bytes [`key_of`] would read as the key when they are text: `X-API-Key`'s when
/// present, else what follows `Bearer ` in `Authorization`, without the spaces and tabs
/// around it (the only whitespace a text header value can hold). Not checked as text.
fn raw_key_of<'a>(
    x_api_key: Option<&'a HeaderValue>,
    authorization: Option<&'a HeaderValue>,
) -> Option<&'a [u8]> {
    fn trim(mut bytes: &[u8]) -> &[u8] {
        while let [b' ' | b'\t', rest @ ..] = bytes {
            bytes = rest;
        }
        while let [rest @ .., b' ' | b'\t'] = bytes {
            bytes = rest;
        }
        bytes
    }
    if let Some(value) = x_api_key {
        return Some(trim(value.as_bytes()));
    }
    let value = authorization?.as_bytes();
    let space = value.iter().position(|&b| b == b' ')?;
    let (scheme, key) = value.split_at(space);
    scheme
        .eq_ignore_ascii_case(b"bearer")
        .then(|| trim(&key[1..]))
}

/// What a request's key says about its caller, as the router's routes read it: the front
/// door works it out once per request ([`ApiKeys::check`]) and passes it on as a request
/// extension, where each route's scope check ([`require`]) and the access log read it.
#[derive(Debug, Clone)]
pub enum Authentication {
    /// No key was presented.
    NoKey,
    /// A key was presented that no client has.
    UnknownKey,
    /// The key of this caller.
    Known(Arc<Caller>),
}

impl Authentication {
    /// The caller, when the key is known.
    #[must_use]
    pub fn caller(&self) -> Option<&Arc<Caller>> {
        match self {
            Self::Known(caller) => Some(caller),
            Self::NoKey | Self::UnknownKey => None,
        }
    }
}

/// What a request's key says, borrowing the configured caller ([`ApiKeys::check`]): the
/// front door's own reading. It becomes an [`Authentication`] only for a request the
/// router answers; an answer the door gives at once takes no count of the caller.
#[derive(Debug, Clone, Copy)]
pub enum KeyCheck<'k> {
    /// No key was presented.
    NoKey,
    /// A key was presented that no client has.
    UnknownKey,
    /// The key of this caller.
    Known(&'k Arc<Caller>),
}

impl<'k> KeyCheck<'k> {
    /// The caller, when the key is known.
    #[must_use]
    pub fn caller(self) -> Option<&'k Arc<Caller>> {
        match self {
            Self::Known(caller) => Some(caller),
            Self::NoKey | Self::UnknownKey => None,
        }
    }
}

impl From<KeyCheck<'_>> for Authentication {
    fn from(check: KeyCheck<'_>) -> Self {
        match check {
            KeyCheck::NoKey => Self::NoKey,
            KeyCheck::UnknownKey => Self::UnknownKey,
            KeyCheck::Known(caller) => Self::Known(caller.clone()),
        }
    }
}

/// Middleware of a route group needing `scope`: 401 without a known key, 403 without the
/// scope; otherwise puts the [`Caller`] into the request's extensions. It reads the
/// [`Authentication`] the front door found (none there counts as no key).
pub async fn require(State(scope): State<Scope>, mut request: Request, next: Next) -> Response {
    let caller = match request.extensions().get::<Authentication>() {
        None | Some(Authentication::NoKey) => {
            return unauthorized(
                "send an API key as `Authorization: Bearer <key>` or `X-API-Key: <key>`",
            );
        }
        Some(Authentication::UnknownKey) => return unauthorized("the API key is not known"),
        Some(Authentication::Known(caller)) => caller.clone(),
    };
    if !caller.may(scope) {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "The API key lacks a scope",
            format!(
                "the key of client {:?} lacks the scope {}",
                caller.name,
                scope.as_str()
            ),
        )
        .into_response();
    }
    tracing::Span::current().record("client", &*caller.name);
    request.extensions_mut().insert(caller);
    next.run(request).await
}

fn unauthorized(detail: &str) -> Response {
    let mut response = ApiError::new(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "An API key is required",
        detail,
    )
    .into_response();
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> (ApiKeys, String) {
        let key = generate_key();
        let keys = ApiKeys::new(&[ClientSettings {
            name: "dashboards".into(),
            key_sha256: hash_key(&key),
            scopes: vec![Scope::ConversationsRead],
            weight: 2,
        }])
        .expect("valid");
        (keys, key)
    }

    #[test]
    fn a_configured_key_authenticates_its_client() {
        let (keys, key) = keys();
        let caller = keys.authenticate(&key).expect("known");
        assert_eq!(&*caller.name, "dashboards");
        assert_eq!(caller.weight, 2);
        assert!(caller.may(Scope::ConversationsRead));
        assert!(!caller.may(Scope::ReportsRead));
        assert!(keys.authenticate("gp_other").is_none());
        // Again, now recognised without hashing: the same caller, and still no other.
        assert_eq!(keys.authenticate(&key), Some(caller));
        assert!(keys.authenticate("gp_other").is_none());
        assert!(!format!("{keys:?}").contains(&key));
    }

    #[test]
    fn generated_keys_are_long_and_distinct() {
        let a = generate_key();
        assert!(a.len() >= 40);
        assert_ne!(a, generate_key());
    }

    #[test]
    fn bad_client_settings_are_refused_with_their_place() {
        assert!(
            ApiKeys::new(&[])
                .expect_err("empty")
                .contains("[[clients]]")
        );
        let bad = ClientSettings {
            name: "x".into(),
            key_sha256: "abc".into(),
            scopes: vec![Scope::Admin],
            weight: 1,
        };
        assert!(
            ApiKeys::new(&[bad])
                .expect_err("short hash")
                .contains("clients[0]")
        );
    }
}

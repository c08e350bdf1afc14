//! Admin rights over a counter: its own admin key (generated at creation, shown once, stored only
//! as a SHA-256 hash in the meta) or the service-wide admin token (`EDGECOUNT_ADMIN_TOKEN`, passed
//! in by the caller). Secrets are compared in constant time (`subtle`), in Rust, never in Lua.
//!
//! The flow, for a mutating route:
//! 1. [`begin_auth`] with the bearer token and the global token. No bearer → [`Authority::Public`];
//!    the global token → [`Authority::GlobalAdmin`]; either way no Redis read is needed.
//! 2. Otherwise it hands back two reads — the counter's stored admin-key hash and its namespace's
//!    token hash — for one pipeline; [`finish_auth`] compares in constant time and gives
//!    [`Authority::CounterAdmin`], [`Authority::NamespaceAdmin`], or `Public` when neither matches
//!    (public rules such as update bounds and `enable_reset` still apply).
//! 3. The mutation script receives the authority; for `CounterAdmin` it re-checks that the stored
//!    hash is still the verified one, so a delete and re-create in between cannot borrow rights.
//!    A namespace token is checked once, here (its hash lives in another Cluster slot).

use base64::Engine;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::keys::{CounterKeys, NamespaceKeys};
use super::CounterError;
use crate::core::command::{Command, Reply};
use crate::core::names::Name;

/// A freshly generated admin key: 32 random bytes, URL-safe base64 without padding (43 chars).
/// Shown to its owner once; only [`AdminKey::hash`] is stored.
#[derive(Clone, PartialEq, Eq)]
pub struct AdminKey(String);

impl AdminKey {
    pub fn generate() -> Result<Self, CounterError> {
        let mut bytes = [0u8; 32];
        getrandom::getrandom(&mut bytes).map_err(|e| CounterError::Random(e.to_string()))?;
        Ok(AdminKey(
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes),
        ))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// What the meta stores: SHA-256 hex of the key.
    pub fn hash(&self) -> String {
        hash_admin_key(&self.0)
    }
}

/// Never print the secret by accident (logs, panics).
impl std::fmt::Debug for AdminKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminKey(…)")
    }
}

/// SHA-256 hex of a presented admin key.
pub fn hash_admin_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// Whether `presented` is the key whose hash is `stored_hash_hex`, in constant time.
pub fn admin_key_matches(presented: &str, stored_hash_hex: &str) -> bool {
    let Ok(stored) = hex::decode(stored_hash_hex) else {
        return false;
    };
    let presented = Sha256::digest(presented.as_bytes());
    presented.as_slice().ct_eq(&stored).into()
}

/// Whether `presented` is the service-wide admin token. Both sides are hashed first so the
/// comparison takes the same time whatever the lengths.
pub fn is_global_admin(presented: &str, global_token: Option<&str>) -> bool {
    match global_token {
        Some(token) if !token.is_empty() => Sha256::digest(presented.as_bytes())
            .ct_eq(&Sha256::digest(token.as_bytes()))
            .into(),
        _ => false,
    }
}

/// The token of an `Authorization: Bearer <token>` header value.
pub fn bearer_token(authorization: &str) -> Option<&str> {
    let (scheme, token) = authorization.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// What a caller may do to a counter, as settled before the mutation script runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Authority {
    /// No admin rights: `enable_reset` and the update bounds decide.
    Public,
    /// The service-wide admin token.
    GlobalAdmin,
    /// The counter's own admin key, verified against this stored hash.
    CounterAdmin { admin_hash: String },
    /// The token of the counter's namespace.
    NamespaceAdmin,
}

impl Authority {
    /// The `auth` argument of the mutation scripts (see `is_admin` in `counter_lib.lua`).
    pub fn script_arg(&self) -> String {
        match self {
            Authority::Public => String::new(),
            Authority::GlobalAdmin | Authority::NamespaceAdmin => "*".to_owned(),
            Authority::CounterAdmin { admin_hash } => admin_hash.clone(),
        }
    }

    pub fn is_admin(&self) -> bool {
        !matches!(self, Authority::Public)
    }
}

/// The first step of settling an [`Authority`] (see the module documentation).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuthStep {
    Done(Authority),
    /// Run these two reads (one pipeline) and pass their replies to [`finish_auth`].
    ReadStoredHashes([Command; 2]),
}

pub fn begin_auth(name: &Name, bearer: Option<&str>, global_token: Option<&str>) -> AuthStep {
    match bearer {
        None => AuthStep::Done(Authority::Public),
        Some(token) if is_global_admin(token, global_token) => {
            AuthStep::Done(Authority::GlobalAdmin)
        }
        Some(_) => AuthStep::ReadStoredHashes([
            Command::new("HGET")
                .arg(CounterKeys::new(name).meta())
                .arg("admin"),
            Command::new("GET").arg(NamespaceKeys::new(&name.ns).auth()),
        ]),
    }
}

/// Compare the bearer with the stored hashes (the replies of [`AuthStep::ReadStoredHashes`]:
/// the counter's admin-key hash, then its namespace's token hash; either may be nil).
pub fn finish_auth(bearer: &str, stored: [&Reply; 2]) -> Result<Authority, CounterError> {
    let [counter_hash, namespace_hash] = stored;
    if !counter_hash.is_nil() {
        let hash = counter_hash.as_str()?;
        if admin_key_matches(bearer, hash) {
            return Ok(Authority::CounterAdmin {
                admin_hash: hash.to_owned(),
            });
        }
    }
    if !namespace_hash.is_nil() && admin_key_matches(bearer, namespace_hash.as_str()?) {
        return Ok(Authority::NamespaceAdmin);
    }
    Ok(Authority::Public)
}

/// Who may read and administer a whole namespace (its listing, export and live stream): the
/// service admin token without a Redis read, else the namespace token, checked against its
/// stored hash (the reply of [`crate::core::counter::namespace::token_read`]).
pub fn opens_namespace(bearer: &str, stored_hash: &Reply) -> Result<bool, CounterError> {
    Ok(!stored_hash.is_nil() && admin_key_matches(bearer, stored_hash.as_str()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_are_url_safe_random_and_hash_checked() {
        let a = AdminKey::generate().unwrap();
        let b = AdminKey::generate().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.as_str().len(), 43);
        assert!(a
            .as_str()
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
        assert_eq!(a.hash().len(), 64);
        assert!(admin_key_matches(a.as_str(), &a.hash()));
        assert!(!admin_key_matches(b.as_str(), &a.hash()));
        assert!(!admin_key_matches(a.as_str(), "not hex"));
        assert!(!format!("{a:?}").contains(a.as_str()));
    }

    #[test]
    fn global_token() {
        assert!(is_global_admin("s3cret", Some("s3cret")));
        assert!(!is_global_admin("s3cret", Some("s3cret2")));
        assert!(!is_global_admin("", Some("")));
        assert!(!is_global_admin("s3cret", None));
    }

    #[test]
    fn bearer_header() {
        assert_eq!(bearer_token("Bearer abc"), Some("abc"));
        assert_eq!(bearer_token("bearer   abc "), Some("abc"));
        assert_eq!(bearer_token("Basic abc"), None);
        assert_eq!(bearer_token("Bearer "), None);
    }

    #[test]
    fn auth_flow() {
        let name = Name::parse("blog", "home").unwrap();
        assert_eq!(
            begin_auth(&name, None, Some("t")),
            AuthStep::Done(Authority::Public)
        );
        assert_eq!(
            begin_auth(&name, Some("t"), Some("t")),
            AuthStep::Done(Authority::GlobalAdmin)
        );
        let AuthStep::ReadStoredHashes([meta, namespace]) = begin_auth(&name, Some("k"), Some("t"))
        else {
            panic!("expected reads of the stored hashes");
        };
        assert_eq!(meta.parts(), ["HGET", "ec:{blog:home}:m", "admin"]);
        assert_eq!(namespace.parts(), ["GET", "ec:{blog}:auth"]);
        let key = AdminKey::generate().unwrap();
        let token = AdminKey::generate().unwrap();
        let stored = Reply::Bytes(key.hash().into_bytes());
        let stored_token = Reply::Bytes(token.hash().into_bytes());
        assert_eq!(
            finish_auth(key.as_str(), [&stored, &stored_token]).unwrap(),
            Authority::CounterAdmin {
                admin_hash: key.hash()
            }
        );
        assert_eq!(
            finish_auth(token.as_str(), [&stored, &stored_token]).unwrap(),
            Authority::NamespaceAdmin
        );
        assert_eq!(
            finish_auth(token.as_str(), [&Reply::Nil, &stored_token]).unwrap(),
            Authority::NamespaceAdmin
        );
        assert_eq!(
            finish_auth("wrong", [&stored, &stored_token]).unwrap(),
            Authority::Public
        );
        assert_eq!(
            finish_auth("k", [&Reply::Nil, &Reply::Nil]).unwrap(),
            Authority::Public
        );
        assert!(opens_namespace(token.as_str(), &stored_token).unwrap());
        assert!(!opens_namespace(key.as_str(), &stored_token).unwrap());
        assert!(!opens_namespace(token.as_str(), &Reply::Nil).unwrap());
        assert_eq!(Authority::GlobalAdmin.script_arg(), "*");
        assert_eq!(Authority::NamespaceAdmin.script_arg(), "*");
        assert_eq!(Authority::Public.script_arg(), "");
    }
}

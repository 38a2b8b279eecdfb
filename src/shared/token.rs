//! The shared token slot in Redis: the sealed token (its key expires with the token), the
//! lock the refreshing replica holds, and the compare-and-delete that lets a 401 seen by
//! one replica drop the token for all. The single-flight refresh across replicas built on
//! these is the token manager's (`upstream::token::shared`).

use std::time::Duration;

use redis::Script;
use secrecy::SecretString;

use super::SharedTier;
use super::seal::Opened;
use super::store::StoreError;

/// Deletes `KEYS[1]` only if it still holds `ARGV[1]`.
const DELETE_IF_SAME: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
";

/// The token as found in Redis.
#[derive(Debug)]
pub struct Found {
    pub opened: Opened,
    /// Time left before it expires (the key's TTL).
    pub remaining: Duration,
    /// The sealed value, to drop exactly this token after a 401.
    pub sealed: Vec<u8>,
}

impl SharedTier {
    /// The sealed token and its time left, if Redis holds one that opens.
    ///
    /// # Errors
    /// Redis unavailable or failing.
    pub async fn read_token(&self) -> Result<Option<Found>, StoreError> {
        let key = self.keys.token.clone();
        let (sealed, ttl_ms): (Option<Vec<u8>>, i64) = self
            .store
            .run(|mut connection| async move {
                redis::pipe()
                    .get(&key)
                    .pttl(&key)
                    .query_async(&mut connection)
                    .await
            })
            .await?;
        let Some(sealed) = sealed else {
            return Ok(None);
        };
        let Ok(ttl_ms) = u64::try_from(ttl_ms) else {
            return Ok(None);
        };
        let Some(opened) = self.sealer.open(&self.keys.token, &sealed) else {
            tracing::warn!(
                "the shared token in Redis does not open with this replica's client secret; ignoring it"
            );
            return Ok(None);
        };
        Ok(Some(Found {
            opened,
            remaining: Duration::from_millis(ttl_ms),
            sealed,
        }))
    }

    /// Takes the refresh lock for `redis.token_lock_ms`; `false` when another replica
    /// holds it.
    ///
    /// # Errors
    /// Redis unavailable or failing.
    pub async fn lock_token(&self) -> Result<bool, StoreError> {
        let key = self.keys.token_lock.clone();
        let replica = self.replica.clone();
        let ttl = self.settings.token_lock_ms;
        let taken: Option<String> = self
            .store
            .run(|mut connection| async move {
                redis::cmd("SET")
                    .arg(&key)
                    .arg(&replica)
                    .arg("NX")
                    .arg("PX")
                    .arg(ttl)
                    .query_async(&mut connection)
                    .await
            })
            .await?;
        Ok(taken.is_some())
    }

    /// Releases the refresh lock if this replica still holds it (best effort: it expires).
    pub async fn unlock_token(&self) {
        let key = self.keys.token_lock.clone();
        let replica = self.replica.clone();
        let _ = self.delete_if_same(key, replica.into_bytes()).await;
    }

    /// Stores `token`, valid for `expires_in` (issued for `issued_for`), sealed; returns
    /// the sealed value.
    ///
    /// # Errors
    /// Redis unavailable or failing, or no nonce.
    pub async fn write_token(
        &self,
        token: &SecretString,
        expires_in: Duration,
        issued_for: Duration,
    ) -> Result<Vec<u8>, StoreError> {
        let sealed = self
            .sealer
            .seal(&self.keys.token, token, issued_for.as_secs())
            .map_err(StoreError::Failed)?;
        let key = self.keys.token.clone();
        let value = sealed.clone();
        let ttl = u64::try_from(expires_in.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        let () = self
            .store
            .run(|mut connection| async move {
                redis::cmd("SET")
                    .arg(&key)
                    .arg(value)
                    .arg("PX")
                    .arg(ttl)
                    .query_async(&mut connection)
                    .await
            })
            .await?;
        Ok(sealed)
    }

    /// Drops the token `sealed` (Genesys answered 401 to it) unless it was replaced.
    ///
    /// # Errors
    /// Redis unavailable or failing.
    pub async fn drop_token(&self, sealed: Vec<u8>) -> Result<(), StoreError> {
        self.delete_if_same(self.keys.token.clone(), sealed).await
    }

    async fn delete_if_same(&self, key: String, value: Vec<u8>) -> Result<(), StoreError> {
        let _: u32 = self
            .store
            .run(|mut connection| async move {
                Script::new(DELETE_IF_SAME)
                    .key(key)
                    .arg(value)
                    .invoke_async(&mut connection)
                    .await
            })
            .await?;
        Ok(())
    }
}

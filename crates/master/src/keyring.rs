//! Key administration for `brine-key`: list, accept, reject and delete minion keys.
//!
//! Keys live in the store (`keys` table) in four states, as with `salt-key`: pending, accepted,
//! rejected, denied. Accepting a key lets the minion's next handshake in. Rejecting or
//! deleting an accepted key also ends the minion's session, forgets it in the registry (no new
//! job expects it) and rotates the group key, so it cannot read the next publication.

use std::sync::Arc;

use brine_crypto::Fingerprint;
use brine_proto::control::{ControlError, ControlEvent, KeyCommand, KeyInfo, KeyState};
use brine_proto::MinionId;
use tracing::{info, warn};

use crate::Shared;

/// Carries out a `brine-key` command; the answer is `keys` or `error`.
pub async fn command(shared: &Arc<Shared>, command: KeyCommand) -> ControlEvent {
    match run(shared, command).await {
        Ok(keys) => ControlEvent::Keys {
            master_fingerprint: shared.keys.fingerprint().to_string(),
            keys,
        },
        Err((code, message)) => ControlEvent::Error { code, message },
    }
}

type Failure = (ControlError, String);

fn storage(err: impl std::fmt::Display) -> Failure {
    (ControlError::Storage, err.to_string())
}

async fn all_keys(shared: &Arc<Shared>) -> Result<Vec<KeyInfo>, Failure> {
    shared.store.call(|s| s.keys()).await.map_err(storage)
}

async fn run(shared: &Arc<Shared>, command: KeyCommand) -> Result<Vec<KeyInfo>, Failure> {
    match command {
        KeyCommand::List {} => all_keys(shared).await,
        KeyCommand::Accept { ids, fingerprint } => accept(shared, ids, fingerprint).await,
        KeyCommand::Reject { id } => {
            let was = key_of(shared, &id).await?;
            let changed = shared
                .store
                .call({
                    let id = id.clone();
                    move |s| {
                        s.set_key_state(
                            &id,
                            &[KeyState::Pending, KeyState::Accepted],
                            KeyState::Rejected,
                        )
                    }
                })
                .await
                .map_err(storage)?
                .ok_or_else(|| not_found(&id, "pending or accepted"))?;
            info!(minion = %id, "key rejected");
            if was.is_some_and(|k| k.state == KeyState::Accepted) {
                revoke(shared, &id).await?;
            }
            Ok(vec![changed])
        }
        KeyCommand::Delete { id } => {
            let removed = shared
                .store
                .call({
                    let id = id.clone();
                    move |s| s.delete_keys(&id)
                })
                .await
                .map_err(storage)?;
            if removed.is_empty() {
                return Err((ControlError::NotFound, format!("{id} has no key")));
            }
            info!(minion = %id, "keys deleted");
            if removed.iter().any(|k| k.state == KeyState::Accepted) {
                revoke(shared, &id).await?;
            }
            Ok(removed)
        }
    }
}

fn not_found(id: &MinionId, which: &str) -> Failure {
    (ControlError::NotFound, format!("{id} has no {which} key"))
}

/// The id's key (not a denied one), if any.
async fn key_of(shared: &Arc<Shared>, id: &MinionId) -> Result<Option<KeyInfo>, Failure> {
    Ok(all_keys(shared)
        .await?
        .into_iter()
        .find(|k| &k.id == id && k.state != KeyState::Denied))
}

async fn accept(
    shared: &Arc<Shared>,
    ids: Vec<MinionId>,
    fingerprint: Option<String>,
) -> Result<Vec<KeyInfo>, Failure> {
    let wanted = match fingerprint {
        Some(text) => Some(
            text.parse::<Fingerprint>()
                .map_err(|e| (ControlError::BadRequest, format!("fingerprint: {e}")))?,
        ),
        None => None,
    };
    let keys = all_keys(shared).await?;
    let candidates: Vec<&KeyInfo> = if ids.is_empty() {
        keys.iter()
            .filter(|k| k.state == KeyState::Pending)
            .collect()
    } else {
        let mut found = Vec::new();
        for id in &ids {
            let key = keys
                .iter()
                .find(|k| &k.id == id && matches!(k.state, KeyState::Pending | KeyState::Rejected))
                .ok_or_else(|| not_found(id, "pending or rejected"))?;
            found.push(key);
        }
        found
    };
    if let Some(wanted) = &wanted {
        for key in &candidates {
            let actual: Option<Fingerprint> = key.fingerprint.parse().ok();
            if actual.as_ref() != Some(wanted) {
                warn!(minion = %key.id, "refused to accept a key: fingerprint mismatch");
                return Err((
                    ControlError::BadRequest,
                    format!(
                        "the key of {} has fingerprint {}, not {wanted}: not accepted",
                        key.id, key.fingerprint
                    ),
                ));
            }
        }
    }
    let mut accepted = Vec::new();
    for key in candidates {
        let id = key.id.clone();
        let changed = shared
            .store
            .call(move |s| {
                s.set_key_state(
                    &id,
                    &[KeyState::Pending, KeyState::Rejected],
                    KeyState::Accepted,
                )
            })
            .await
            .map_err(storage)?;
        if let Some(changed) = changed {
            info!(minion = %changed.id, fingerprint = %changed.fingerprint, "key accepted");
            accepted.push(changed);
        }
    }
    Ok(accepted)
}

/// A key that was accepted is no longer: end its session, forget it, rotate the group key.
async fn revoke(shared: &Arc<Shared>, id: &MinionId) -> Result<(), Failure> {
    shared.disconnect(id);
    let forget = id.clone();
    shared
        .store
        .call(move |s| s.forget_minion(&forget))
        .await
        .map_err(storage)?;
    shared.rotate_group_key().await.map_err(storage)
}

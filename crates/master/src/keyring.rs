//! Key administration for `brine-key`: list, accept, reject and delete minion keys.
//!
//! Keys live in the store (`keys` table) in four states, as with `salt-key`: pending, accepted,
//! rejected, denied; and a fifth, preaccepted: a fingerprint an operator accepted before its
//! key was seen. Accepting a key lets the minion's next handshake in. Rejecting or deleting
//! an accepted key, or accepting another key of its id by fingerprint, also ends the minion's
//! session, forgets it in the registry (no new job expects it) and rotates the group key, so
//! it cannot read the next publication. A reject or delete of many keys is one transaction and
//! one rotation.

use std::sync::Arc;

use brine_crypto::Fingerprint;
use brine_proto::control::{
    no_key_with_fingerprint, ControlError, ControlEvent, KeyCommand, KeyInfo, KeySelection,
    KeyState, ACCEPTABLE, REJECTABLE,
};
use brine_proto::{now_ms, MinionId};
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

fn bad_request(message: impl Into<String>) -> Failure {
    (ControlError::BadRequest, message.into())
}

async fn all_keys(shared: &Arc<Shared>) -> Result<Vec<KeyInfo>, Failure> {
    shared.store.call(|s| s.keys()).await.map_err(storage)
}

async fn run(shared: &Arc<Shared>, command: KeyCommand) -> Result<Vec<KeyInfo>, Failure> {
    match command {
        KeyCommand::List {} => all_keys(shared).await,
        KeyCommand::Accept {
            ids,
            fingerprint,
            preaccept,
        } => match (ids.as_slice(), fingerprint) {
            ([id], Some(fingerprint)) => choose(shared, id.clone(), &fingerprint, preaccept).await,
            (_, _) if preaccept => Err(bad_request("preaccept is for one id and its fingerprint")),
            (_, fingerprint) => accept(shared, ids, fingerprint).await,
        },
        KeyCommand::Reject(selection) => {
            let keys = selection.compile(&REJECTABLE).map_err(bad_request)?;
            let rejected = shared
                .store
                .call(move |s| s.reject_keys(&keys))
                .await
                .map_err(storage)?;
            nothing_selected(&selection, &rejected, &REJECTABLE)?;
            info!(count = rejected.len(), keys = %selection.describe(), "keys rejected");
            revoke(shared, &rejected).await?;
            Ok(rejected
                .into_iter()
                .map(|k| KeyInfo {
                    state: KeyState::Rejected,
                    ..k
                })
                .collect())
        }
        KeyCommand::Delete(selection) => {
            let keys = selection.compile(&KeyState::ALL).map_err(bad_request)?;
            let removed = shared
                .store
                .call(move |s| s.delete_keys(&keys))
                .await
                .map_err(storage)?;
            nothing_selected(&selection, &removed, &KeyState::ALL)?;
            info!(count = removed.len(), keys = %selection.describe(), "keys deleted");
            revoke(shared, &removed).await?;
            Ok(removed)
        }
    }
}

/// A reject or delete that matched no key is refused, as `brine-key` reports it.
fn nothing_selected(
    selection: &KeySelection,
    changed: &[KeyInfo],
    applicable: &[KeyState],
) -> Result<(), Failure> {
    if changed.is_empty() {
        return Err((
            ControlError::NotFound,
            selection.nothing_matched(applicable),
        ));
    }
    Ok(())
}

/// The id's key that is not denied, if any.
async fn key_of(shared: &Arc<Shared>, id: &MinionId) -> Result<Option<KeyInfo>, Failure> {
    Ok(all_keys(shared)
        .await?
        .into_iter()
        .find(|k| &k.id == id && k.state != KeyState::Denied))
}

fn not_found(id: &MinionId, which: &str) -> Failure {
    (ControlError::NotFound, format!("{id} has no {which} key"))
}

fn parse_fingerprint(text: &str) -> Result<Fingerprint, Failure> {
    text.parse::<Fingerprint>()
        .map_err(|e| bad_request(format!("fingerprint: {e}")))
}

/// `accept ID --fingerprint FP [--preaccept]`: the operator, who holds the fingerprint,
/// chooses the id's key among all it has (or preaccepts it); a key that was there first cannot
/// stand in the way.
async fn choose(
    shared: &Arc<Shared>,
    id: MinionId,
    fingerprint: &str,
    preaccept: bool,
) -> Result<Vec<KeyInfo>, Failure> {
    let wanted = parse_fingerprint(fingerprint)?;
    let chosen = shared
        .store
        .call({
            let (id, fingerprint) = (id.clone(), wanted.to_string());
            move |s| s.choose_key(&id, &fingerprint, preaccept, now_ms())
        })
        .await
        .map_err(storage)?;
    let Some(chosen) = chosen else {
        // No key has it: most likely a typo, so nothing is denied without --preaccept.
        let current = key_of(shared, &id).await?;
        let message = no_key_with_fingerprint(&id, current.as_ref(), &wanted.to_string());
        warn!(minion = %id, "refused to accept a key: fingerprint mismatch");
        return Err((ControlError::NotFound, message));
    };
    for other in &chosen.displaced {
        warn!(minion = %id, fingerprint = %other.fingerprint, was = other.state.name(), "another key of this id was chosen: this one is denied now");
    }
    match chosen.key.state {
        KeyState::Preaccepted => {
            info!(minion = %id, fingerprint = %chosen.key.fingerprint, "key preaccepted: the key with this fingerprint is accepted when it comes")
        }
        _ => {
            info!(minion = %id, fingerprint = %chosen.key.fingerprint, "key accepted")
        }
    }
    revoke(shared, &chosen.displaced).await?;
    Ok(vec![chosen.key])
}

async fn accept(
    shared: &Arc<Shared>,
    ids: Vec<MinionId>,
    fingerprint: Option<String>,
) -> Result<Vec<KeyInfo>, Failure> {
    let wanted = fingerprint.as_deref().map(parse_fingerprint).transpose()?;
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
                .find(|k| &k.id == id && ACCEPTABLE.contains(&k.state))
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
                return Err(bad_request(format!(
                    "the key of {} has fingerprint {}, not {wanted}: not accepted",
                    key.id, key.fingerprint
                )));
            }
        }
    }
    let mut accepted = Vec::new();
    for key in candidates {
        let id = key.id.clone();
        let changed = shared
            .store
            .call(move |s| s.set_key_state(&id, &ACCEPTABLE, KeyState::Accepted))
            .await
            .map_err(storage)?;
        if let Some(changed) = changed {
            info!(minion = %changed.id, fingerprint = %changed.fingerprint, "key accepted");
            accepted.push(changed);
        }
    }
    Ok(accepted)
}

/// Of `keys` (as they were before a change), the accepted ones are no longer: their sessions
/// end and the group key rotates once. The store has forgotten their minions already.
async fn revoke(shared: &Arc<Shared>, keys: &[KeyInfo]) -> Result<(), Failure> {
    let revoked: Vec<&KeyInfo> = keys
        .iter()
        .filter(|k| k.state == KeyState::Accepted)
        .collect();
    if revoked.is_empty() {
        return Ok(());
    }
    for key in revoked {
        shared.disconnect(&key.id);
    }
    shared.rotate_group_key().await.map_err(storage)
}

//! The grains a minion reports, and the ones an operator sets: [`GrainStore`].
//!
//! A minion's grains are, from lowest to highest precedence: what it finds out about its host
//! ([`crate::collect_grains`]), the `[grains]` of its configuration, and what `grains.setval`
//! and `grains.delval` stored in `state_dir/grains.json` (kept across restarts, as Salt keeps
//! `/etc/salt/grains`). Every change is written to the file first (a new file renamed over the
//! old one, so a crash leaves the old or the new, never half of one), then published to
//! subscribers: the minion sends the master its new grains so that grain targets stay exact.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use brine_proto::limits::MAX_GRAINS_BYTES;
use brine_proto::{Map, MinionId, Value};
use tokio::sync::watch;

use crate::collect_grains;

/// The file under `state_dir` that holds the grains set with `grains.setval`.
pub const GRAINS_FILE: &str = "grains.json";

/// Why the stored grains cannot be read or written.
#[derive(Debug, thiserror::Error)]
pub enum GrainStoreError {
    #[error("reading {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} is not a JSON map of grains: {reason}")]
    Corrupt { path: String, reason: String },
    #[error("writing {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
    #[error(
        "the grains would take {bytes} bytes, more than the {MAX_GRAINS_BYTES} a minion may report"
    )]
    TooLarge { bytes: usize },
}

/// Refuses grains the master would not keep (and a hello could not carry).
fn check_size(grains: &Map) -> Result<(), GrainStoreError> {
    let bytes = brine_proto::encode(grains).len();
    if bytes > MAX_GRAINS_BYTES {
        return Err(GrainStoreError::TooLarge { bytes });
    }
    Ok(())
}

/// One minion's grains: found, configured and stored.
#[derive(Debug)]
pub struct GrainStore {
    id: MinionId,
    configured: Map,
    path: PathBuf,
    layers: Mutex<Layers>,
    current: watch::Sender<Arc<Map>>,
}

#[derive(Debug)]
struct Layers {
    found: Map,
    stored: Map,
}

impl Layers {
    fn merged(&self, configured: &Map) -> Map {
        let mut all = self.found.clone();
        all.extend(configured.clone());
        all.extend(self.stored.clone());
        all
    }
}

impl GrainStore {
    /// Finds out the host's grains and reads `state_dir/grains.json` (absent: none stored).
    pub fn open(id: &MinionId, configured: Map, state_dir: &Path) -> Result<Self, GrainStoreError> {
        let path = state_dir.join(GRAINS_FILE);
        let stored = read_stored(&path)?;
        let layers = Layers {
            found: collect_grains(id),
            stored,
        };
        let merged = layers.merged(&configured);
        check_size(&merged)?;
        let (current, _) = watch::channel(Arc::new(merged));
        Ok(Self {
            id: id.clone(),
            configured,
            path,
            layers: Mutex::new(layers),
            current,
        })
    }

    /// The grains as they are now.
    pub fn current(&self) -> Arc<Map> {
        Arc::clone(&self.current.borrow())
    }

    /// Hears of every change after this call.
    pub fn subscribe(&self) -> watch::Receiver<Arc<Map>> {
        self.current.subscribe()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Layers> {
        self.layers.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Stores `key` = `value` (a null value hides a found or configured grain).
    pub(crate) fn set(&self, key: &str, value: Value) -> Result<(), GrainStoreError> {
        self.change(None, |stored| {
            stored.insert(key.to_owned(), value);
            true
        })
        .map(drop)
    }

    /// Forgets a stored grain; a found or configured one of that name shows again. False when
    /// none was stored.
    pub(crate) fn forget(&self, key: &str) -> Result<bool, GrainStoreError> {
        self.change(None, |stored| stored.remove(key).is_some())
    }

    /// Finds out the host's grains again (`saltutil.refresh_grains`) and rereads the file.
    pub(crate) fn refresh(&self) -> Result<(), GrainStoreError> {
        self.change(Some(collect_grains(&self.id)), |_| false)
            .map(drop)
    }

    /// One change: the file read again (`brine-call` may have written it), `edit` applied (true
    /// when it changed the stored grains, which are then written), the size checked before
    /// anything is kept, the result published.
    fn change(
        &self,
        found: Option<Map>,
        edit: impl FnOnce(&mut Map) -> bool,
    ) -> Result<bool, GrainStoreError> {
        let mut layers = self.lock();
        let mut stored = read_stored(&self.path)?;
        let edited = edit(&mut stored);
        let next = Layers {
            found: found.unwrap_or_else(|| layers.found.clone()),
            stored,
        };
        check_size(&next.merged(&self.configured))?;
        if edited {
            self.write(&next.stored)?;
        }
        *layers = next;
        self.publish(&layers);
        Ok(edited)
    }

    fn publish(&self, layers: &Layers) {
        let merged = layers.merged(&self.configured);
        self.current.send_if_modified(|current| {
            if **current == merged {
                false
            } else {
                *current = Arc::new(merged);
                true
            }
        });
    }

    fn write(&self, stored: &Map) -> Result<(), GrainStoreError> {
        let error = |source| GrainStoreError::Write {
            path: self.path.display().to_string(),
            source,
        };
        let mut text = serde_json::to_string_pretty(stored).expect("a map always serializes");
        text.push('\n');
        // A name of this process's own: brine-call and the daemon may write at the same time.
        let partial = self
            .path
            .with_extension(format!("json.{}.new", std::process::id()));
        let dir = self.path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir)
            .and_then(|()| std::fs::write(&partial, text))
            .and_then(|()| std::fs::File::open(&partial)?.sync_all())
            .and_then(|()| std::fs::rename(&partial, &self.path))
            .map_err(error)
    }
}

fn read_stored(path: &Path) -> Result<Map, GrainStoreError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Map::new()),
        Err(source) => {
            return Err(GrainStoreError::Read {
                path: path.display().to_string(),
                source,
            })
        }
    };
    serde_json::from_str::<Map>(&text).map_err(|e| GrainStoreError::Corrupt {
        path: path.display().to_string(),
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn configured() -> Map {
        match json!({"role": "web", "os": "Configured"}) {
            Value::Object(m) => m,
            _ => unreachable!(),
        }
    }

    #[test]
    fn stored_grains_win_survive_reopening_and_are_published() {
        let dir = tempfile::tempdir().unwrap();
        let id = MinionId::new("web1").unwrap();
        let store = GrainStore::open(&id, configured(), dir.path()).unwrap();
        assert_eq!(
            store.current()["os"],
            json!("Configured"),
            "config over found"
        );
        assert_eq!(store.current()["id"], json!("web1"));
        let mut changes = store.subscribe();
        store.set("role", json!("db")).unwrap();
        assert!(changes.has_changed().unwrap());
        assert_eq!(changes.borrow_and_update()["role"], json!("db"));
        store.set("os", Value::Null).unwrap();
        drop(store);

        let store = GrainStore::open(&id, configured(), dir.path()).unwrap();
        assert_eq!(
            store.current()["role"],
            json!("db"),
            "kept across a restart"
        );
        assert_eq!(store.current()["os"], Value::Null);
        assert!(store.forget("os").unwrap());
        assert!(!store.forget("os").unwrap());
        assert_eq!(store.current()["os"], json!("Configured"));
        let changes = store.subscribe();
        store.refresh().unwrap();
        assert!(
            !changes.has_changed().unwrap(),
            "nothing changed, nothing published"
        );
    }

    #[test]
    fn grains_past_the_limit_are_refused_and_nothing_changes() {
        let dir = tempfile::tempdir().unwrap();
        let id = MinionId::new("web1").unwrap();
        let mut huge = Map::new();
        huge.insert("blob".into(), json!("x".repeat(MAX_GRAINS_BYTES)));
        let err = GrainStore::open(&id, huge, dir.path()).unwrap_err();
        assert!(matches!(err, GrainStoreError::TooLarge { .. }), "{err}");
        let store = GrainStore::open(&id, Map::new(), dir.path()).unwrap();
        let err = store
            .set("blob", json!("x".repeat(MAX_GRAINS_BYTES)))
            .unwrap_err();
        assert!(err.to_string().contains("more than the 49152"), "{err}");
        assert!(!store.current().contains_key("blob"));
        assert!(!dir.path().join(GRAINS_FILE).exists(), "nothing written");
        // The file grown by hand: a refresh refuses it and keeps what was reported.
        let blob = "x".repeat(MAX_GRAINS_BYTES);
        std::fs::write(
            dir.path().join(GRAINS_FILE),
            format!("{{\"blob\": \"{blob}\"}}"),
        )
        .unwrap();
        assert!(matches!(
            store.refresh(),
            Err(GrainStoreError::TooLarge { .. })
        ));
        assert!(!store.current().contains_key("blob"));
    }

    #[test]
    fn a_corrupt_file_is_an_error_that_names_it() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(GRAINS_FILE), "[1, 2").unwrap();
        let id = MinionId::new("web1").unwrap();
        let err = GrainStore::open(&id, Map::new(), dir.path()).unwrap_err();
        assert!(
            err.to_string().contains("grains.json is not a JSON map"),
            "{err}"
        );
    }
}

//! The JSON records containers/storage keeps: `<driver>-layers/layers.json`
//! and `<driver>-images/images.json`, each an array of objects. Records are
//! kept as JSON objects so that fields kopeo does not know (written by a
//! newer containers/storage) survive a rewrite; typed accessors read the
//! fields kopeo uses. Files are replaced atomically (temp name, fsync,
//! rename), after the guarding lock's token was replaced.

use super::StorageError;
use super::lock::Lock;
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};

/// One record (a layer or an image).
#[derive(Debug, Clone, PartialEq)]
pub struct Record(pub Map<String, Value>);

impl Record {
    /// A string field, if present.
    pub fn str(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(Value::as_str)
    }

    /// The record's `id`.
    pub fn id(&self) -> &str {
        self.str("id").unwrap_or("")
    }

    /// A string-array field (`names`, `big-data-names`); empty when absent.
    pub fn strings(&self, key: &str) -> Vec<String> {
        self.0
            .get(key)
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
            .unwrap_or_default()
    }

    /// An integer field, if present.
    pub fn int(&self, key: &str) -> Option<i64> {
        self.0.get(key).and_then(Value::as_i64)
    }

    /// Set a field; `Value::Null` removes it (Go's `omitempty` for the
    /// fields kopeo writes).
    pub fn set(&mut self, key: &str, value: Value) {
        let empty = match &value {
            Value::Null => true,
            Value::String(s) => s.is_empty(),
            Value::Array(a) => a.is_empty(),
            Value::Object(o) => o.is_empty(),
            _ => false,
        };
        if empty {
            self.0.remove(key);
        } else {
            self.0.insert(key.to_string(), value);
        }
    }

    /// Whether `flags.<flag>` is set to true.
    pub fn flag(&self, flag: &str) -> bool {
        self.0
            .get("flags")
            .and_then(|f| f.get(flag))
            .and_then(Value::as_bool)
            .unwrap_or(false)
    }

    /// Set or clear `flags.<flag>` (the object is removed when it empties).
    pub fn set_flag(&mut self, flag: &str, on: bool) {
        let mut flags = self
            .0
            .get("flags")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        if on {
            flags.insert(flag.to_string(), Value::Bool(true));
        } else {
            flags.remove(flag);
        }
        self.set("flags", Value::Object(flags));
    }
}

/// A JSON array file of records, read whole.
#[derive(Debug, Clone)]
pub struct Records {
    pub path: PathBuf,
    pub items: Vec<Record>,
}

impl Records {
    /// Read `path`; a missing file is an empty store, as for containers/storage.
    pub fn load(path: &Path) -> Result<Records, StorageError> {
        let items = match std::fs::read(path) {
            Ok(bytes) if bytes.iter().all(u8::is_ascii_whitespace) => vec![],
            Ok(bytes) => {
                let v: Vec<Map<String, Value>> = serde_json::from_slice(&bytes).map_err(|e| StorageError::Json {
                    path: path.to_path_buf(),
                    why: e.to_string(),
                })?;
                v.into_iter().map(Record).collect()
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => vec![],
            Err(e) => return Err(StorageError::io("reading", path)(e)),
        };
        Ok(Records {
            path: path.to_path_buf(),
            items,
        })
    }

    /// The record with this exact ID.
    pub fn get(&self, id: &str) -> Option<&Record> {
        self.items.iter().find(|r| r.id() == id)
    }

    /// The record with this exact ID, to change.
    pub fn get_mut(&mut self, id: &str) -> Option<&mut Record> {
        self.items.iter_mut().find(|r| r.id() == id)
    }

    /// Write the records back: the lock's token first (so that another
    /// process reloads), then the file, atomically.
    pub fn save(&self, lock: &Lock) -> Result<(), StorageError> {
        lock.record_write()?;
        let items: Vec<&Map<String, Value>> = self.items.iter().map(|r| &r.0).collect();
        let bytes = serde_json::to_vec(&items).map_err(|e| StorageError::Json {
            path: self.path.clone(),
            why: e.to_string(),
        })?;
        write_atomic(&self.path, &bytes, 0o600)
    }
}

/// Replace `path` with `bytes`: a temporary file in the same directory,
/// fsynced, renamed over it, then the directory fsynced (containers/storage's
/// `AtomicWriteFile`).
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<(), StorageError> {
    use std::io::Write as _;
    use std::os::unix::fs::PermissionsExt as _;
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(StorageError::io("creating", dir))?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .tempfile_in(dir)
        .map_err(StorageError::io("creating a temporary file in", dir))?;
    tmp.write_all(bytes).map_err(StorageError::io("writing", tmp.path()))?;
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(mode))
        .map_err(StorageError::io("setting permissions of", path))?;
    tmp.as_file().sync_all().map_err(StorageError::io("syncing", path))?;
    tmp.persist(path)
        .map_err(|e| StorageError::io("renaming into place", path)(e.error))?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_fields_survive_a_rewrite_and_empty_fields_are_omitted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("layers.json");
        std::fs::write(&path, br#"[{"id":"a","future-field":{"x":[1,2]},"names":["n"]}]"#).unwrap();
        let lock = Lock::acquire(&dir.path().join("layers.lock"), super::super::lock::Mode::Write).unwrap();
        let mut r = Records::load(&path).unwrap();
        let rec = r.get_mut("a").unwrap();
        rec.set("names", Value::Array(vec![]));
        rec.set_flag("incomplete", true);
        assert!(rec.flag("incomplete"));
        rec.set_flag("incomplete", false);
        r.save(&lock).unwrap();
        let back: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(back, serde_json::json!([{"id": "a", "future-field": {"x": [1, 2]}}]));
    }
}

//! In-memory stores with the same semantics as the AWS ones, for unit tests of domain
//! logic. Integration tests use the real implementations against moto.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use super::{
    Binding, BlobStore, Created, KeyBindings, Outcome, PresignedPut, Queue, StoreError, StoredObject, TaskStore,
    UploadUrls, V2TaskStore,
};
use super::{Hold, QuotaOverride, QuotaStore};
use crate::clock::Timestamp;
use crate::ids::ClientId;
use crate::ids::Principal;
use crate::task::{Progress, Stage, Task, TaskId, TaskState, TokenUsage};
use crate::v2::V2Record;

#[derive(Debug, Default)]
pub struct MemoryTaskStore {
    tasks: Mutex<HashMap<TaskId, Task>>,
    groups: Mutex<HashMap<TaskId, std::collections::BTreeSet<u32>>>,
    /// v2 records, their arrived pages counted from the set beside them.
    v2: Mutex<HashMap<TaskId, (V2Record, std::collections::BTreeSet<usize>)>>,
    read: Mutex<HashMap<TaskId, BTreeMap<u32, usize>>>,
}

impl MemoryTaskStore {
    pub fn len(&self) -> usize {
        self.tasks.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn with<R>(&self, f: impl FnOnce(&mut HashMap<TaskId, Task>) -> R) -> R {
        f(&mut self.tasks.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

impl TaskStore for MemoryTaskStore {
    async fn create(&self, task: &Task) -> Result<Created, StoreError> {
        self.with(|tasks| match tasks.get(&task.id) {
            Some(existing) if !existing.is_expired(task.created_at) => Ok(Created::AlreadyExists),
            _ => {
                tasks.insert(task.id.clone(), task.clone());
                Ok(Created::New)
            }
        })
    }

    async fn get(&self, id: &TaskId, now: Timestamp) -> Result<Option<Task>, StoreError> {
        Ok(self.with(|tasks| tasks.get(id).filter(|t| !t.is_expired(now)).cloned()))
    }

    async fn touch(&self, id: &TaskId, now: Timestamp) -> Result<Option<Task>, StoreError> {
        Ok(self.with(|tasks| match tasks.get_mut(id) {
            Some(task) if !task.is_expired(now) => {
                task.last_access = now;
                Some(task.clone())
            }
            _ => None,
        }))
    }

    async fn finish(&self, id: &TaskId, outcome: Outcome) -> Result<bool, StoreError> {
        Ok(self.with(|tasks| match tasks.get_mut(id) {
            Some(task) if matches!(task.state, TaskState::Processing { .. }) => {
                task.state = match outcome {
                    Outcome::Completed { result, extractor } => TaskState::Completed { result, extractor },
                    Outcome::Failed(code) => TaskState::Failed { code },
                };
                true
            }
            _ => false,
        }))
    }

    async fn advance(&self, id: &TaskId, from: Stage, to: Stage) -> Result<bool, StoreError> {
        Ok(self.with(|tasks| match tasks.get_mut(id).map(|task| &mut task.state) {
            Some(TaskState::Processing { progress, .. }) if progress.stage() == from => {
                *progress = match (to, &*progress) {
                    (Stage::Receiving, _) => Progress::Receiving,
                    (Stage::Uploaded, _) => Progress::Uploaded,
                    (Stage::Read, _) => Progress::Read,
                    (Stage::Extracting, Progress::Extracting { claimed_at }) => {
                        Progress::Extracting { claimed_at: *claimed_at }
                    }
                    // Only a claim moves a task into extraction, with its time.
                    (Stage::Extracting, _) => return false,
                };
                true
            }
            _ => false,
        }))
    }

    async fn group_read(&self, id: &TaskId, group: u32) -> Result<Option<usize>, StoreError> {
        let uploaded = self.with(|tasks| tasks.get(id).and_then(|t| t.state.stage()) == Some(Stage::Uploaded));
        if !uploaded {
            return Ok(None);
        }
        let mut groups = self.groups.lock().unwrap_or_else(|e| e.into_inner());
        let read = groups.entry(id.clone()).or_default();
        read.insert(group);
        Ok(Some(read.len()))
    }

    async fn claim(&self, id: &TaskId, now: Timestamp, stale_before: Timestamp) -> Result<bool, StoreError> {
        Ok(self.with(|tasks| match tasks.get_mut(id).map(|task| &mut task.state) {
            Some(TaskState::Processing { progress, .. })
                if match &*progress {
                    Progress::Read => true,
                    Progress::Extracting { claimed_at } => *claimed_at < stale_before,
                    Progress::Receiving | Progress::Uploaded => false,
                } =>
            {
                *progress = Progress::Extracting { claimed_at: now };
                true
            }
            _ => false,
        }))
    }

    async fn add_usage(&self, id: &TaskId, usage: TokenUsage) -> Result<(), StoreError> {
        if let Some((record, _)) = self.v2.lock().unwrap_or_else(|e| e.into_inner()).get_mut(id) {
            record.usage.add(usage);
        }
        Ok(())
    }

    async fn delete(&self, id: &TaskId) -> Result<(), StoreError> {
        self.with(|tasks| tasks.remove(id));
        self.v2.lock().unwrap_or_else(|e| e.into_inner()).remove(id);
        Ok(())
    }

    async fn count_in_flight(&self, client_id: &ClientId, since: Timestamp) -> Result<usize, StoreError> {
        Ok(self.with(|tasks| {
            tasks
                .values()
                .filter(|t| {
                    &t.id.client_id == client_id
                        && matches!(t.state, TaskState::Processing { .. })
                        && t.created_at > since
                })
                .count()
        }))
    }

    async fn delete_client(&self, client_id: &ClientId) -> Result<usize, StoreError> {
        Ok(self.with(|tasks| {
            let before = tasks.len();
            tasks.retain(|id, _| &id.client_id != client_id);
            before - tasks.len()
        }))
    }
}

impl V2TaskStore for MemoryTaskStore {
    async fn create_v2(&self, task: &Task, record: &V2Record) -> Result<Created, StoreError> {
        let created = self.create(task).await?;
        if created == Created::New {
            self.v2
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(task.id.clone(), (record.clone(), Default::default()));
        }
        Ok(created)
    }

    async fn get_v2(&self, id: &TaskId, now: Timestamp) -> Result<Option<(Task, V2Record)>, StoreError> {
        let Some(task) = self.get(id, now).await? else {
            return Ok(None);
        };
        let v2 = self.v2.lock().unwrap_or_else(|e| e.into_inner());
        let (record, arrived) = v2.get(id).ok_or_else(|| StoreError::Malformed("v2 task without its record".into()))?;
        let read = self.read.lock().unwrap_or_else(|e| e.into_inner()).get(id).map_or(0, |parts| parts.values().sum());
        Ok(Some((task, V2Record { arrived: arrived.len(), read, ..record.clone() })))
    }

    async fn pages_read(&self, id: &TaskId, part: u32, pages: usize) -> Result<(), StoreError> {
        self.read.lock().unwrap_or_else(|e| e.into_inner()).entry(id.clone()).or_default().insert(part, pages);
        Ok(())
    }

    async fn page_arrived(&self, id: &TaskId, page: usize) -> Result<Option<usize>, StoreError> {
        let stage = self.with(|tasks| tasks.get(id).and_then(|t| t.state.stage()));
        if !matches!(stage, Some(Stage::Receiving | Stage::Uploaded)) {
            return Ok(None);
        }
        let mut v2 = self.v2.lock().unwrap_or_else(|e| e.into_inner());
        Ok(v2.get_mut(id).map(|(_, arrived)| {
            arrived.insert(page);
            arrived.len()
        }))
    }
}

#[derive(Debug, Default)]
pub struct MemoryBlobStore {
    /// Each object with the order it was written in, as its "last modified".
    objects: Mutex<BTreeMap<String, (Vec<u8>, i64)>>,
}

impl MemoryBlobStore {
    pub fn keys(&self) -> Vec<String> {
        self.objects.lock().unwrap_or_else(|e| e.into_inner()).keys().cloned().collect()
    }
}

impl BlobStore for MemoryBlobStore {
    async fn put(&self, key: &str, body: Vec<u8>, _content_type: &str) -> Result<(), StoreError> {
        let mut objects = self.objects.lock().unwrap_or_else(|e| e.into_inner());
        let written = objects.values().map(|(_, at)| *at).max().unwrap_or(0) + 1;
        objects.insert(key.to_owned(), (body, written));
        Ok(())
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.objects.lock().unwrap_or_else(|e| e.into_inner()).get(key).map(|(body, _)| body.clone()))
    }

    async fn list(&self, prefix: &str) -> Result<Vec<StoredObject>, StoreError> {
        let objects = self.objects.lock().unwrap_or_else(|e| e.into_inner());
        Ok(objects
            .iter()
            .filter(|(key, _)| key.starts_with(prefix))
            .map(|(key, (body, at))| StoredObject {
                key: key.clone(),
                etag: crate::crypto::sha256_hex(body),
                last_modified: *at,
                size: body.len() as u64,
            })
            .collect())
    }

    async fn delete(&self, keys: &[String]) -> Result<(), StoreError> {
        let mut objects = self.objects.lock().unwrap_or_else(|e| e.into_inner());
        for key in keys {
            objects.remove(key);
        }
        Ok(())
    }

    async fn delete_prefix(&self, prefix: &str) -> Result<usize, StoreError> {
        let mut objects = self.objects.lock().unwrap_or_else(|e| e.into_inner());
        let before = objects.len();
        objects.retain(|key, _| !key.starts_with(prefix));
        Ok(before - objects.len())
    }
}

#[derive(Debug, Default)]
pub struct MemoryKeyBindings {
    /// Key digest -> (content, expires_at).
    bindings: Mutex<HashMap<String, (String, Timestamp)>>,
}

impl KeyBindings for MemoryKeyBindings {
    async fn bind(
        &self, key: &str, content: &str, now: Timestamp, expires_at: Timestamp,
    ) -> Result<Binding, StoreError> {
        let mut bindings = self.bindings.lock().unwrap_or_else(|e| e.into_inner());
        match bindings.get(key) {
            Some((bound, until)) if *until > now && bound != content => Ok(Binding::OtherContent),
            _ => {
                bindings.insert(key.to_owned(), (content.to_owned(), expires_at));
                Ok(Binding::Allowed)
            }
        }
    }
}

impl UploadUrls for MemoryBlobStore {
    async fn presign_put(
        &self, key: &str, size: u64, sha256_base64: &str, expires_secs: u64,
    ) -> Result<PresignedPut, StoreError> {
        Ok(PresignedPut {
            url: format!("memory:///{key}?expires={expires_secs}"),
            method: "PUT".into(),
            headers: vec![
                ("content-length".into(), size.to_string()),
                ("x-amz-checksum-sha256".into(), sha256_base64.into()),
            ],
        })
    }
}

/// A queue that keeps what is sent, with each message's delay.
#[derive(Debug, Default)]
pub struct MemoryQueue {
    sent: Mutex<Vec<(String, u32)>>,
}

impl MemoryQueue {
    pub fn sent(&self) -> Vec<(String, u32)> {
        self.sent.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl Queue for MemoryQueue {
    async fn send(&self, body: &str) -> Result<(), StoreError> {
        self.send_delayed(body, 0).await
    }

    async fn retry_after(&self, _receipt: &str, _secs: u32) -> Result<(), StoreError> {
        Ok(())
    }

    async fn send_delayed(&self, body: &str, delay_secs: u32) -> Result<(), StoreError> {
        self.sent.lock().unwrap_or_else(|e| e.into_inner()).push((body.to_owned(), delay_secs));
        Ok(())
    }
}

/// The quota table in memory: held tasks, page counts by (principal, day), own limits.
#[derive(Debug, Default)]
pub struct MemoryQuotaStore {
    held: Mutex<HashMap<Principal, std::collections::BTreeSet<String>>>,
    pages: Mutex<HashMap<(Principal, String), u32>>,
    own: Mutex<HashMap<Principal, QuotaOverride>>,
}

impl MemoryQuotaStore {
    /// What an operator's `limits` item does.
    pub fn set_own_limits(&self, who: &Principal, limits: QuotaOverride) {
        self.own.lock().unwrap_or_else(|e| e.into_inner()).insert(who.clone(), limits);
    }

    /// The pages counted for `who` on `day`.
    pub fn pages(&self, who: &Principal, day: &str) -> u32 {
        let pages = self.pages.lock().unwrap_or_else(|e| e.into_inner());
        pages.get(&(who.clone(), day.to_owned())).copied().unwrap_or(0)
    }
}

impl QuotaStore for MemoryQuotaStore {
    async fn own_limits(&self, who: &Principal) -> Result<Option<QuotaOverride>, StoreError> {
        Ok(self.own.lock().unwrap_or_else(|e| e.into_inner()).get(who).copied())
    }

    async fn hold(&self, who: &Principal, task: &str, limit: u32) -> Result<Hold, StoreError> {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        let set = held.entry(who.clone()).or_default();
        Ok(if set.contains(task) {
            Hold::AlreadyHeld
        } else if set.len() < limit as usize {
            set.insert(task.to_owned());
            Hold::Added
        } else {
            Hold::Full
        })
    }

    async fn held(&self, who: &Principal) -> Result<Vec<String>, StoreError> {
        let held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        Ok(held.get(who).map(|set| set.iter().cloned().collect()).unwrap_or_default())
    }

    async fn release(&self, who: &Principal, tasks: &[String]) -> Result<(), StoreError> {
        if let Some(set) = self.held.lock().unwrap_or_else(|e| e.into_inner()).get_mut(who) {
            for task in tasks {
                set.remove(task);
            }
        }
        Ok(())
    }

    async fn count_pages(
        &self, who: &Principal, day: &str, pages: u32, limit: u32, _expires_at: Timestamp,
    ) -> Result<bool, StoreError> {
        let mut counts = self.pages.lock().unwrap_or_else(|e| e.into_inner());
        let count = counts.entry((who.clone(), day.to_owned())).or_default();
        if count.saturating_add(pages) > limit {
            return Ok(false);
        }
        *count += pages;
        Ok(true)
    }

    async fn uncount_pages(&self, who: &Principal, day: &str, pages: u32) -> Result<(), StoreError> {
        if let Some(count) =
            self.pages.lock().unwrap_or_else(|e| e.into_inner()).get_mut(&(who.clone(), day.to_owned()))
        {
            *count = count.saturating_sub(pages);
        }
        Ok(())
    }
}

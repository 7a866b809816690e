//! `POST /clear`: forget one task or all of a client's, items and objects alike.

use docusnap_core::protocol::{self, ClearRequest, ClearScope};
use docusnap_core::store::{BlobStore, StoreError, TaskStore};
use docusnap_core::task::{client_prefix, TaskId};
use serde_json::Value;
use tracing::{error, info};

use docusnap_core::Env;

use crate::Upload;

impl<E: Env> Upload<E> {
    /// Answers a parsed `POST /clear` request: 200 ok, or 500 `CACHE_CLEAR_FAILED`.
    pub async fn clear(&self, request: ClearRequest) -> (u16, Value) {
        match self.forget(&request).await {
            Ok(()) => (200, protocol::clear_ok()),
            Err(e) => {
                error!(client = %request.client_id, error = %e, "clear failed");
                protocol::clear_failed()
            }
        }
    }

    // Items go first: once an item is gone the client no longer sees the task, and any
    // object left by a failure after that expires with the bucket's lifecycle rule.
    async fn forget(&self, request: &ClearRequest) -> Result<(), StoreError> {
        match &request.scope {
            ClearScope::Task { task_type, sha256 } => {
                let id = TaskId::new(request.client_id.clone(), *task_type, sha256.clone());
                self.tasks.delete(&id).await?;
                let objects = self.blobs.delete_prefix(&id.object_prefix()).await?;
                info!(task = %id, objects, "task cleared");
            }
            ClearScope::AllTasks => {
                let tasks = self.tasks.delete_client(&request.client_id).await?;
                let objects = self.blobs.delete_prefix(&client_prefix(&request.client_id)).await?;
                info!(client = %request.client_id, tasks, objects, "client cleared");
            }
            ClearScope::NoSuchTask => {}
        }
        Ok(())
    }
}

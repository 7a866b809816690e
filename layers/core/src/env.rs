//! The outside world a function works in, named once: its task table, bucket, key
//! bindings, queues and clock. A function's state is generic over one [`Env`], so a
//! handler reads `OcrFunction<E: Env>` rather than a parameter per store.
//!
//! [`Aws`] is what every function runs on. With the `testing` feature, [`Moto`] is the
//! same stores under a clock the tests move (the integration tests run it against moto),
//! and [`Memory`] the in-memory fakes for unit tests of domain logic.

use crate::clock::Clock;
use crate::store::{BlobStore, KeyBindings, Queue, QuotaStore, UploadUrls, V2TaskStore};

pub trait Env: Send + Sync + 'static {
    /// The task table (v1's, batch's and v2's tasks).
    type Tasks: V2TaskStore;
    /// The uploads bucket, which also presigns v2's page uploads.
    type Blobs: BlobStore + UploadUrls;
    /// Each wrapped key's first content (the upload function's alone).
    type Keys: KeyBindings;
    /// Every queue a function sends to (extract, OCR, callback).
    type Queue: Queue;
    type Clock: Clock;
    /// Per-principal quotas (the upload function's alone).
    type Quotas: QuotaStore;
}

/// The deployed functions: DynamoDB, S3, SQS and the system clock.
pub enum Aws {}

impl Env for Aws {
    type Tasks = crate::store::DynamoTaskStore;
    type Blobs = crate::store::S3BlobStore;
    type Keys = crate::store::DynamoKeyBindings;
    type Queue = crate::store::SqsQueue;
    type Clock = crate::clock::SystemClock;
    type Quotas = crate::store::DynamoQuotaStore;
}

/// The AWS stores (against moto, in the integration tests) under a clock the test moves.
#[cfg(any(test, feature = "testing"))]
pub enum Moto {}

#[cfg(any(test, feature = "testing"))]
impl Env for Moto {
    type Tasks = crate::store::DynamoTaskStore;
    type Blobs = crate::store::S3BlobStore;
    type Keys = crate::store::DynamoKeyBindings;
    type Queue = crate::store::SqsQueue;
    type Clock = std::sync::Arc<crate::clock::ManualClock>;
    type Quotas = crate::store::DynamoQuotaStore;
}

/// In-memory stores under a clock the test moves.
#[cfg(any(test, feature = "testing"))]
pub enum Memory {}

#[cfg(any(test, feature = "testing"))]
impl Env for Memory {
    type Tasks = crate::store::memory::MemoryTaskStore;
    type Blobs = crate::store::memory::MemoryBlobStore;
    type Keys = crate::store::memory::MemoryKeyBindings;
    type Queue = crate::store::memory::MemoryQueue;
    type Clock = std::sync::Arc<crate::clock::ManualClock>;
    type Quotas = crate::store::memory::MemoryQuotaStore;
}

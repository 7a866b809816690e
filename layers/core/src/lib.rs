//! DocuSnap's core library: what the upload, OCR and extract functions share.
//!
//! - [`protocol`]: the v1 wire protocol's requests, answers and error codes.
//! - [`crypto`]: the client envelope (RSA-OAEP key wrap, AES-256-CBC, SHA-256).
//! - [`task`]: a task's identity, state and the rules of its lifetime.
//! - [`store`]: small traits for the task table, the blob bucket and the queues, with one
//!   AWS implementation each and in-memory fakes for unit tests.
//! - [`config`], [`keys`], [`telemetry`]: how a function starts.

pub mod aws;
pub mod batch;
pub mod clock;
pub mod config;
pub mod crypto;
pub mod keys;
pub mod limits;
pub mod metrics;
pub mod protocol;
pub mod sqs_event;
pub mod results;
pub mod store;
pub mod task;
pub mod telemetry;

pub use clock::{Clock, SystemClock, Timestamp};
pub use protocol::{ErrorCode, TaskType};
pub use task::{Stage, Task, TaskId, TaskMessage, TaskStatus};

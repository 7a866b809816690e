//! DocuSnap's core library: what the upload, OCR and extract functions share.
//!
//! - [`ids`], [`codes`]: who asks ([`ClientId`]), for what ([`TaskType`]), and every code
//!   the service answers with ([`ErrorCode`]).
//! - [`protocol`]: the v1 wire protocol's requests and answers.
//! - [`crypto`]: the client envelope (RSA-OAEP key wrap, AES-256-CBC, SHA-256).
//! - [`task`]: a task's identity, its typed state and the rules of its lifetime.
//! - [`pipeline`]: the steps the stages share (open an envelope, create a task, end one).
//! - [`ocr_output`]: what OCR hands to extraction.
//! - [`env`]: the stores and clock a function works with, as one type parameter.
//! - [`store`]: small traits for the task table, the blob bucket and the queues, with one
//!   AWS implementation each (and, with the `testing` feature, in-memory fakes).
//! - [`v2`]: API v2's task ids, tokens, sealed pages, manifest and signed callbacks.
//! - [`batch`]: images dropped under `batch/` as tasks of their own.
//! - [`intake`]: batch files made tasks, page groups fanned out and joined.
//! - [`ocr_queue`]: the OCR queue's messages, as one type.
//! - [`startup`], [`config`], [`keys`], [`telemetry`], [`metrics`]: how a function starts
//!   and what it reports.

pub mod aws;
pub mod batch;
pub mod clock;
pub mod codes;
pub mod config;
pub mod crypto;
pub mod env;
pub mod ids;
pub mod intake;
pub mod keys;
pub mod limits;
pub mod metrics;
pub mod ocr_output;
pub mod ocr_queue;
pub mod pipeline;
pub mod protocol;
pub mod quota;
pub mod results;
pub mod s3_event;
pub mod secret;
pub mod sqs_event;
pub mod startup;
pub mod store;
pub mod task;
pub mod telemetry;
pub mod v2;

pub use clock::{Clock, SystemClock, Timestamp};
pub use codes::{ErrorCode, Failure};
pub use env::Env;
pub use ids::{ClientId, TaskType};
pub use task::{ExtractorKind, Stage, Task, TaskId, TaskMessage, TaskState, TaskStatus};

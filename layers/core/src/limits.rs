//! Named limits, each with the reason for its value.

/// Largest request body the upload function accepts. Lambda refuses synchronous payloads
/// over 6 MB before our code runs, so a larger body can only arrive locally; refusing it
/// here keeps local and deployed behaviour the same.
pub const MAX_BODY_BYTES: usize = 6 * 1024 * 1024;

/// Most pages (images) in one doc or form task. OCR takes about a second a page on a
/// 2-vCPU function; 20 pages stay well inside the 10-minute processing timeout.
pub const MAX_PAGES: usize = 20;

/// Largest image, in decoded bytes. The v1 protocol promises photos of up to 20 MiB.
pub const MAX_IMAGE_BYTES: usize = 20 * 1024 * 1024;

/// Longest `client_id` or `SHA256` string. Both become part of DynamoDB keys (at most
/// 2048 and 1024 bytes) and of S3 object keys (at most 1024 bytes, after escaping).
pub const MAX_ID_CHARS: usize = 128;

/// A task still processing this long after its creation is reported as
/// `PROCESSING_TIMEOUT` (v1 behaviour).
pub const PROCESSING_TIMEOUT_SECS: i64 = 10 * 60;

/// A task in any state is forgotten this long after it was last read (v1 behaviour).
pub const TASK_RETENTION_SECS: i64 = 1440 * 60;

/// How long a wrapped key stays bound to the content it first came with. While it is, a
/// padding-oracle attacker gets no answer but `KEY_ALREADY_USED` for any variation; after,
/// one variation may bind the key anew and every other is refused again. A week is many
/// times any honest retry.
pub const KEY_BINDING_SECS: i64 = 7 * 24 * 60 * 60;

/// Most tasks one client may have processing at once. A phone sends a few documents at a
/// time; ten tasks of up to 20 pages are 200 pages, minutes of OCR. Past it an upload is
/// refused with `TOO_MANY_TASKS` until some finish, so one client id cannot queue work
/// without bound. (A soft limit: uploads racing each other may pass it by a few.)
pub const MAX_TASKS_IN_FLIGHT: usize = 10;

//! Every code the service answers with, in one registry with their wire strings.

use serde::Serialize;

macro_rules! error_codes {
    ($( $(#[$doc:meta])* $variant:ident = $wire:literal, )*) => {
        /// Every code the service answers with, v1's and the few this version adds.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum ErrorCode {
            $( $(#[$doc])* $variant, )*
        }

        impl ErrorCode {
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant,)*];

            /// The string clients see.
            pub fn as_str(self) -> &'static str {
                match self { $(ErrorCode::$variant => $wire,)* }
            }

            pub fn parse(s: &str) -> Option<Self> {
                match s { $($wire => Some(ErrorCode::$variant),)* _ => None }
            }
        }
    };
}

error_codes! {
    // v1 request codes, in the order the service checks them.
    MissingRequiredField = "MISSING_REQUIRED_FIELD",
    InvalidType = "INVALID_TYPE",
    MissingContent = "MISSING_CONTENT",
    TaskNotFound = "TASK_NOT_FOUND",
    Sha256Mismatch = "SHA256_MISMATCH",
    RsaDecryptionFailed = "RSA_DECRYPTION_FAILED",
    AesDecryptionFailed = "AES_DECRYPTION_FAILED",
    InvalidJson = "INVALID_JSON",
    DatabaseError = "DATABASE_ERROR",
    // v1 codes a task can end with.
    OcrFailure = "OCR_FAILURE",
    DocPromptConstructionFailed = "DOC_PROMPT_CONSTRUCTION_FAILED",
    FormPromptConstructionFailed = "FORM_PROMPT_CONSTRUCTION_FAILED",
    FillPromptConstructionFailed = "FILL_PROMPT_CONSTRUCTION_FAILED",
    LlmFailure = "LLM_FAILURE",
    ProcessingError = "PROCESSING_ERROR",
    ProcessingTimeout = "PROCESSING_TIMEOUT",
    // v1 code of /clear.
    CacheClearFailed = "CACHE_CLEAR_FAILED",
    /// New: a required field has the wrong JSON type, or an id is empty or too long.
    InvalidField = "INVALID_FIELD",
    /// New: the request body is larger than [`crate::limits::MAX_BODY_BYTES`].
    PayloadTooLarge = "PAYLOAD_TOO_LARGE",
    /// New: the decrypted JSON is not shaped as the task type requires.
    InvalidContent = "INVALID_CONTENT",
    /// New: more pages than [`crate::limits::MAX_PAGES`].
    TooManyPages = "TOO_MANY_PAGES",
    /// New: a page image larger than [`crate::limits::MAX_IMAGE_BYTES`].
    ImageTooLarge = "IMAGE_TOO_LARGE",
    /// New: the `aes_key` came before with other content. Clients make a fresh key per
    /// request; refusing a reused one before decrypting closes AES-CBC's padding oracle.
    KeyAlreadyUsed = "KEY_ALREADY_USED",
    /// New: the client has [`crate::limits::MAX_TASKS_IN_FLIGHT`] tasks processing already.
    TooManyTasks = "TOO_MANY_TASKS",
    /// New: the caller's quota (tasks in flight, or pages today) would be passed
    /// (the quota module). v2 answers it 429; v1 as every v1 refusal, 400.
    QuotaExceeded = "QUOTA_EXCEEDED",
    // v2 only (functions/upload/openapi.json lists them with their HTTP statuses).
    /// v2: no task token, or not this task's.
    Unauthorized = "UNAUTHORIZED",
    /// v2: not every page arrived before the task's upload deadline, or one arrived after.
    UploadExpired = "UPLOAD_EXPIRED",
    /// v2: an uploaded page is not the size or SHA-256 declared for it. (S3 itself refuses
    /// such an upload, the URL being bound to both; checked again for stores that do not.)
    PageMismatch = "PAGE_MISMATCH",
    /// v2: a page does not open under the task's key with its task id and index as
    /// associated data: swapped from another task or position, or sealed under another key.
    PageAuthenticationFailed = "PAGE_AUTHENTICATION_FAILED",
    /// v2: a callback URL that is not HTTPS, or names a private, loopback or link-local
    /// address.
    CallbackUrlRefused = "CALLBACK_URL_REFUSED",
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for ErrorCode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_round_trip_through_their_wire_strings() {
        for code in ErrorCode::ALL {
            assert_eq!(ErrorCode::parse(code.as_str()), Some(*code));
        }
        assert_eq!(ErrorCode::parse("NO_SUCH_CODE"), None);
    }
}

/// Why a request is refused or a task ends: the code the client sees and a sentence for
/// the developer (v2 answers it; v1 and the logs keep the code alone). The one failure
/// type every stage returns, so a code is chosen where the fault is found and mapped to
/// an answer once.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {reason}")]
pub struct Failure {
    pub code: ErrorCode,
    pub reason: String,
}

impl Failure {
    pub fn new(code: ErrorCode, reason: impl Into<String>) -> Self {
        Self { code, reason: reason.into() }
    }
}

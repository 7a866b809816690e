//! Batch ingestion: image and PDF files dropped under `batch/` in the uploads bucket start the
//! same pipeline as an upload, with no client crypto. One image directly under `batch/`
//! (or under any folder that holds just it) is a document; a folder's images are the pages
//! of one document, in key order. The result lands as JSON next to the input
//! (`batch/receipt.jpg` -> `batch/receipt.result.json`; `batch/trip/` ->
//! `batch/trip/result.json`) and in the task table under the client id `batch:<document>`.
//!
//! The OCR function turns a batch document into an ordinary task (it seals the pages
//! under a fresh key wrapped for the server, as a client would); batch tasks differ only
//! in where their result goes and in that it is stored unsealed, since no client holds a
//! key for it. The upload function refuses client ids in the `batch:` namespace.

use serde_json::{json, Value};

use crate::ids::ClientId;
use crate::protocol::ProcessAnswer;
use crate::store::Outcome;
use crate::task::TaskId;

pub use crate::ids::BATCH_PREFIX;
/// The result file of a folder document.
pub const FOLDER_RESULT: &str = "result.json";
/// Which files of the batch area are pages, by file extension: images, PDFs, and HEIC
/// photos (refused with a result file that says why, rather than ignored). The extension
/// only picks the files (result files and notes beside them are not pages); what a page
/// is (image, TIFF, PDF) is told from its content when it is read.
const DOCUMENT_EXTENSIONS: &[&str] = &["jpg", "jpeg", "png", "webp", "bmp", "tif", "tiff", "pdf", "heic", "heif"];

/// A document of the batch area.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BatchDocument {
    /// One image directly under `batch/`: the document is that image.
    Image { key: String },
    /// A folder under `batch/` (with its trailing `/`): its images are the pages.
    Folder { prefix: String },
}

fn is_document_file(key: &str) -> bool {
    key.rsplit_once('.').is_some_and(|(_, ext)| DOCUMENT_EXTENSIONS.contains(&ext.to_ascii_lowercase().as_str()))
}

impl BatchDocument {
    /// The document an object belongs to, when the object is a page image of the batch area.
    pub fn of_object(key: &str) -> Option<Self> {
        let rest = key.strip_prefix(BATCH_PREFIX)?;
        if !is_document_file(key) || rest.is_empty() {
            return None;
        }
        Some(match key.rfind('/') {
            Some(slash) if slash >= BATCH_PREFIX.len() => BatchDocument::Folder { prefix: key[..=slash].to_owned() },
            _ => BatchDocument::Image { key: key.to_owned() },
        })
    }

    /// Whether a listed object is one of this document's pages.
    pub fn has_page(&self, key: &str) -> bool {
        match self {
            BatchDocument::Image { key: own } => own == key,
            // Direct children only: a subfolder is a document of its own.
            BatchDocument::Folder { prefix } => {
                key.strip_prefix(prefix.as_str()).is_some_and(|rest| !rest.contains('/')) && is_document_file(key)
            }
        }
    }

    /// What the listing covers: the folder, or the image itself.
    pub fn list_prefix(&self) -> &str {
        match self {
            BatchDocument::Image { key } => key,
            BatchDocument::Folder { prefix } => prefix,
        }
    }

    /// The client id its tasks run under.
    pub fn client_id(&self) -> ClientId {
        ClientId::batch(self.list_prefix())
    }
}

/// Whether a task is a batch task.
pub fn is_batch(id: &TaskId) -> bool {
    id.client_id.is_batch()
}

/// A batch task's result file, shaped as v1 answers: `{"status": "completed", "result",
/// "extractor"}` (the result unsealed: no client holds a key for it) or v1's error answer.
pub fn result_file(outcome: &Outcome) -> Vec<u8> {
    let value = match outcome {
        Outcome::Completed { result, extractor } => json!({
            "status": "completed",
            "result": serde_json::from_str::<Value>(result).unwrap_or(Value::Null),
            "extractor": extractor.to_string(),
        }),
        Outcome::Failed(code) => ProcessAnswer::Error(*code).to_json(),
    };
    let mut body = serde_json::to_vec_pretty(&value).unwrap_or_default();
    body.push(b'\n');
    body
}

/// Where a batch task's result goes: next to its image, or into its folder.
pub fn result_key(id: &TaskId) -> Option<String> {
    let document = id.client_id.batch_document()?;
    if document.ends_with('/') {
        return Some(format!("{document}{FOLDER_RESULT}"));
    }
    let stem = document.rsplit_once('.').map_or(document, |(stem, _)| stem);
    Some(format!("{stem}.result.json"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::TaskType;

    #[test]
    fn objects_map_to_documents_and_results_land_beside_them() {
        let single = BatchDocument::of_object("batch/receipt.JPG").unwrap();
        assert_eq!(single, BatchDocument::Image { key: "batch/receipt.JPG".into() });
        let id = TaskId::new(single.client_id(), TaskType::Doc, "ab");
        assert!(is_batch(&id));
        assert_eq!(result_key(&id).as_deref(), Some("batch/receipt.result.json"));

        let page = BatchDocument::of_object("batch/trip/2.png").unwrap();
        assert_eq!(page, BatchDocument::Folder { prefix: "batch/trip/".into() });
        assert!(
            page.has_page("batch/trip/1.jpg")
                && page.has_page("batch/trip/3.PDF")
                && !page.has_page("batch/trip/result.json")
        );
        assert!(!page.has_page("batch/trip/day2/1.jpg"), "a subfolder is its own document");
        let id = TaskId::new(page.client_id(), TaskType::Doc, "ab");
        assert_eq!(result_key(&id).as_deref(), Some("batch/trip/result.json"));

        for not_a_page in [
            "batch/trip/result.json",
            "batch/receipt.result.json",
            "batch/",
            "tasks/x/doc/ab/envelope.json",
            "batch/notes.txt",
        ] {
            assert_eq!(BatchDocument::of_object(not_a_page), None, "{not_a_page}");
        }
        assert!(!is_batch(&TaskId::new(ClientId::parse("phone").unwrap(), TaskType::Doc, "ab")));
    }
}

//! v2 tasks in the OCR function: pages land in S3 one by one (each a bucket notification),
//! the last to land starts the reading, and the upload deadline's message ends a task
//! whose pages did not all come. Reading a v2 task differs from v1 only in where its pages
//! come from: each page object, checked against its declared size and SHA-256, then opened
//! with AES-256-GCM under the task key with `<task id>/page/<index>` as associated data.

use docusnap_core::clock::{Clock, Timestamp};
use docusnap_core::crypto::{sha256_hex, AesKey};
use docusnap_core::intake::{self, group_range, Arrival, Deadline};
use docusnap_core::ocr_output::OcrOutput;
use docusnap_core::protocol::Library;
use docusnap_core::store::{BlobStore, Queue, V2TaskStore};
use docusnap_core::task::GroupMessage;
use docusnap_core::v2::{self, Manifest, Part, V2Event, V2Message, V2TaskId};
use docusnap_core::{Env, ErrorCode, Failure};
use docusnap_ocr::PageInput;
use tracing::{warn, Instrument};

use crate::{split_items, unreadable, GroupSource, OcrFunction, RecordError};

impl<E: Env> OcrFunction<E> {
    /// One page of a v2 task has landed; the page that completes the count starts the
    /// reading (`core::intake::page_arrived` keeps the count).
    pub(crate) async fn page_landed(
        &self, task: V2TaskId, landed: (usize, Option<u64>, Option<Timestamp>), last_receive: bool,
    ) -> Result<(), RecordError> {
        let id = task.task_id();
        match intake::page_arrived(&self.tasks, &self.blobs, &task, landed, self.clock.now()).await? {
            Arrival::Waiting => Ok(()),
            Arrival::Failed(failure) => self.fail(&id, failure).await,
            Arrival::Complete(manifest) => {
                let read = self.read_v2_task(&task, manifest, last_receive).await;
                self.settle(&id, read).await
            }
        }
    }

    /// The OCR queue's v2 messages: a fill task's start, and the upload deadline.
    pub(crate) async fn v2_event(&self, message: V2Message, last_receive: bool) -> Result<(), RecordError> {
        let Some(task) = V2TaskId::parse(&message.v2_task) else {
            warn!(task = message.v2_task, "a v2 message that names no task; dropped");
            return Ok(());
        };
        let span = tracing::info_span!("v2", task = %task, event = ?message.event);
        async {
            match message.event {
                V2Event::Start => match intake::manifest(&self.blobs, &task).await? {
                    Some(manifest) => {
                        let read = self.read_v2_task(&task, manifest, last_receive).await;
                        self.settle(&task.task_id(), read).await
                    }
                    None => Ok(()),
                },
                V2Event::UploadDeadline => self.upload_deadline(&task, message).await,
            }
        }
        .instrument(span)
        .await
    }

    async fn upload_deadline(&self, task: &V2TaskId, message: V2Message) -> Result<(), RecordError> {
        match (intake::upload_deadline(&self.tasks, task, self.clock.now()).await?, &self.fan_out) {
            (Deadline::Passed, _) => Ok(()),
            // The grace is waited out by sending the message again, on the function's own
            // queue; without it, the task ends now.
            (Deadline::Again(delay), Some(fan_out)) => {
                let body = serde_json::to_string(&message).map_err(RecordError::Encode)?;
                Ok(fan_out.ocr_queue.send_delayed(&body, delay).await?)
            }
            (Deadline::Again(_), None) => {
                let failure = Failure::new(ErrorCode::UploadExpired, "the upload deadline passed");
                self.fail(&task.task_id(), failure).await
            }
            (Deadline::Expired(failure), _) => self.fail(&task.task_id(), failure).await,
        }
    }

    /// The task key and library of a v2 task, opened.
    fn open_manifest(&self, task: &V2TaskId, manifest: &Manifest) -> Result<(AesKey, Library), Failure> {
        let key = self
            .key
            .unwrap_aes_key(&manifest.key)
            .map_err(|e| Failure::new(ErrorCode::ProcessingError, e.to_string()))?;
        let library = match &manifest.library {
            Some(sealed) => {
                serde_json::from_value(serde_json::Value::Object(v2::open_object(&key, task, Part::Library, sealed)?))
                    .map_err(|e| Failure::new(ErrorCode::InvalidContent, e.to_string()))?
            }
            None => Library::default(),
        };
        Ok((key, library))
    }

    /// Reads a v2 task whose pages have all arrived (or a fill task), as `read_task` reads
    /// a v1 envelope: in one go, or fanned out by page uploads.
    async fn read_v2_task(&self, task: &V2TaskId, manifest: Manifest, last_receive: bool) -> Result<(), RecordError> {
        let id = task.task_id();
        let Some(state) = self.awaiting_ocr(&id).await? else {
            return Ok(());
        };
        if last_receive {
            return Err(unreadable("the last receive of a message whose earlier runs did not finish"));
        }
        let (key, library) = self.open_manifest(task, &manifest)?;
        let output = if let Some(form) = &manifest.form {
            let form = v2::open_object(&key, task, Part::Form, form)?;
            OcrOutput { pages: Vec::new(), library, form: Some(form) }
        } else {
            // The uploads are opened one at a time and their pages counted (a PDF holds
            // many); a task of more pages than one invocation reads is fanned out with that
            // layout, and what was opened is dropped: each group fetches only its uploads.
            let group_pages = self.fan_out.as_ref().map(|f| f.group_pages.max(1));
            let mut layout = Vec::with_capacity(manifest.pages.len());
            let mut kept = Some(Vec::new());
            for upload in 0..manifest.pages.len() {
                let inputs = self.v2_inputs(task, &manifest, &key, upload..upload + 1).await?;
                layout.push(inputs.len() as u32);
                let total: u32 = layout.iter().sum();
                kept = kept.filter(|_| group_pages.is_none_or(|most| total as usize <= most));
                if let Some(kept) = kept.as_mut() {
                    kept.extend(inputs);
                }
            }
            let Some(inputs) = kept else {
                let total = layout.iter().sum::<u32>() as usize;
                let fan_out = self.fan_out.as_ref().expect("a group size comes with fan-out");
                return Ok(intake::fan_out(&fan_out.ocr_queue, &id, total, fan_out.group_pages, layout).await?);
            };
            let pages = self.read_inputs(inputs, self.mode(&id)).await?;
            self.tasks.pages_read(&id, 0, pages.len()).await?;
            OcrOutput { pages, library, form: None }
        };
        self.hand_on(&id, &manifest.key, &key, &output, state.created_at).await
    }

    /// A v2 page group: the uploads in its range.
    pub(crate) async fn v2_group_source(
        &self, task: &V2TaskId, message: &GroupMessage,
    ) -> Result<Option<GroupSource>, RecordError> {
        let Some(manifest) = intake::manifest(&self.blobs, task).await? else {
            return Ok(None);
        };
        let (key, library) = self.open_manifest(task, &manifest)?;
        // The group's pages, over the pages of every upload in order; only the uploads they
        // are in are fetched.
        let total = message.layout.iter().sum::<u32>() as usize;
        let range = group_range(total, message.groups, message.group);
        let mut inputs = Vec::with_capacity(range.len());
        let mut first = 0;
        for (upload, &count) in message.layout.iter().enumerate().take(manifest.pages.len()) {
            let pages = first..first + count as usize;
            first = pages.end;
            if pages.end <= range.start || pages.start >= range.end {
                continue;
            }
            let opened = self.v2_inputs(task, &manifest, &key, upload..upload + 1).await?;
            let skip = range.start.saturating_sub(pages.start);
            let take = range.end.min(pages.end) - pages.start.max(range.start);
            inputs.extend(opened.into_iter().skip(skip).take(take));
        }
        Ok(Some(GroupSource { wrapped_key: manifest.key, key, library, inputs }))
    }

    /// Pages `range` of a v2 task, each checked and opened, then split by the input stage.
    async fn v2_inputs(
        &self, task: &V2TaskId, manifest: &Manifest, key: &AesKey, range: std::ops::Range<usize>,
    ) -> Result<Vec<PageInput>, RecordError> {
        let mut items = Vec::with_capacity(range.len());
        for index in range {
            let Some(sealed) = self.blobs.get(&task.page_key(index)).await? else {
                return Err(RecordError::MissingPage(index));
            };
            let declared = &manifest.pages[index];
            if sealed.len() as u64 != declared.size || sha256_hex(&sealed) != declared.sha256 {
                return Err(Failure::new(
                    ErrorCode::PageMismatch,
                    format!("page {index} is not the size and SHA-256 declared for it"),
                )
                .into());
            }
            match key.open_gcm(sealed, &task.page_aad(index)) {
                Ok(page) => items.push(page),
                Err(_) => {
                    let why = format!("page {index} does not open with `{task}/page/{index}` as associated data");
                    return Err(Failure::new(ErrorCode::PageAuthenticationFailed, why).into());
                }
            }
        }
        split_items(items).await
    }
}

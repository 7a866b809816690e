//! v2 tasks in the OCR function: pages land in S3 one by one (each a bucket notification),
//! the last to land starts the reading, and the upload deadline's message ends a task
//! whose pages did not all come. Reading a v2 task differs from v1 only in where its pages
//! come from: each page object, checked against its declared size and SHA-256, then opened
//! with AES-256-GCM under the task key with `<task id>/page/<index>` as associated data.

use docusnap_core::clock::{Clock, Timestamp};
use docusnap_core::crypto::{sha256_hex, AesKey};
use docusnap_core::ocr_output::OcrOutput;
use docusnap_core::protocol::Library;
use docusnap_core::store::{BlobStore, Queue, TaskStore};
use docusnap_core::task::{GroupMessage, Stage};
use docusnap_core::v2::{self, upload_grace_secs, Manifest, Part, V2Event, V2Message, V2TaskId};
use docusnap_core::ErrorCode;
use docusnap_ocr::PageInput;
use tracing::{info, warn, Instrument};

use crate::{group_range, split_items, GroupSource, OcrFunction, PageReader, RecordError};


/// A task's failure: its code and why.
type Refused = (ErrorCode, String);

impl<T, B, Q, C, R> OcrFunction<T, B, Q, C, R>
where
    T: TaskStore,
    B: BlobStore,
    Q: Queue,
    C: Clock,
    R: PageReader,
{
    /// One page of a v2 task has landed: counted once (a set), and the page that completes
    /// the count starts the reading. `written`: when S3 stored it, if the notification says.
    pub(crate) async fn page_landed(&self, task: V2TaskId, page: usize, size: Option<u64>, written: Option<Timestamp>, last_receive: bool) -> Result<(), RecordError> {
        let id = task.task_id();
        let now = self.clock.now();
        let Some((state, record)) = self.tasks.get_v2(&id, now).await? else {
            info!("the task is gone (deleted or expired); the page is left to the lifecycle rule");
            return Ok(());
        };
        match state.state.stage() {
            None => {
                info!("the task has ended; its objects go");
                return Ok(docusnap_core::pipeline::settle_ended(&self.tasks, &self.blobs, &id, now).await?);
            }
            Some(Stage::Read | Stage::Extracting) => return Ok(()),
            Some(Stage::Receiving | Stage::Uploaded) => {}
        }
        if page >= record.pages {
            warn!(pages = record.pages, "a page beyond those declared; ignored");
            return Ok(());
        }
        let window = record.upload_deadline - state.created_at;
        // Judged by when S3 stored the page (a backed-up queue delays only the notice); a
        // time after the function's clock is not believed.
        if written.map_or(now, |w| w.min(now)) > record.upload_deadline + upload_grace_secs(window) {
            return self.fail(&id, ErrorCode::UploadExpired, "a page landed after the upload deadline").await;
        }
        // S3 refuses an upload of another size than the URL was signed for; a store that
        // does not (moto) is held to it here.
        let manifest = match self.manifest(&task).await? {
            Some(manifest) => manifest,
            None => return Ok(()),
        };
        if let (Some(size), Some(declared)) = (size, manifest.pages.get(page)) {
            if size != declared.size {
                return self.fail(&id, ErrorCode::PageMismatch, &format!("page {page} is {size} bytes, declared {}", declared.size)).await;
            }
        }
        let Some(arrived) = self.tasks.page_arrived(&id, page).await? else {
            info!("the task moved on meanwhile");
            return Ok(());
        };
        info!(arrived, pages = record.pages, "page landed");
        if arrived < record.pages {
            return Ok(());
        }
        // Every page is here. The move may have been made by a duplicate or an earlier run
        // of this message that died before reading; either way the task is read now.
        self.tasks.advance(&id, Stage::Receiving, Stage::Uploaded).await?;
        self.read_v2_task(&task, manifest, last_receive).await
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
                V2Event::Start => match self.manifest(&task).await? {
                    Some(manifest) => self.read_v2_task(&task, manifest, last_receive).await,
                    None => Ok(()),
                },
                V2Event::UploadDeadline => self.upload_deadline(&task, message).await,
            }
        }
        .instrument(span)
        .await
    }

    async fn upload_deadline(&self, task: &V2TaskId, message: V2Message) -> Result<(), RecordError> {
        let id = task.task_id();
        let now = self.clock.now();
        let Some((state, record)) = self.tasks.get_v2(&id, now).await? else { return Ok(()) };
        if state.state.stage() != Some(Stage::Receiving) {
            return Ok(());
        }
        let closes = record.upload_deadline + upload_grace_secs(record.upload_deadline - state.created_at);
        // SQS delays a message by 15 minutes at most: the grace is waited out by sending
        // the message again.
        if now < closes {
            if let Some(fan_out) = &self.fan_out {
                let body = serde_json::to_string(&message).map_err(RecordError::Encode)?;
                fan_out.ocr_queue.send_delayed(&body, (closes - now).clamp(1, v2::UPLOAD_WINDOW_SECS) as u32).await?;
                return Ok(());
            }
        }
        let why = format!("{} of {} pages arrived by the deadline", record.arrived, record.pages);
        self.fail(&id, ErrorCode::UploadExpired, &why).await
    }

    async fn manifest(&self, task: &V2TaskId) -> Result<Option<Manifest>, RecordError> {
        let Some(bytes) = self.blobs.get(&task.manifest_key()).await? else {
            info!("the manifest is gone (the task was deleted or has ended); nothing to do");
            return Ok(None);
        };
        serde_json::from_slice(&bytes).map(Some).map_err(|_| RecordError::NotAnEnvelope(task.manifest_key()))
    }

    /// The task key and library of a v2 task, opened.
    fn open_manifest(&self, task: &V2TaskId, manifest: &Manifest) -> Result<(AesKey, Library), Refused> {
        let key = self.key.unwrap_aes_key(&manifest.key).map_err(|e| (ErrorCode::ProcessingError, e.to_string()))?;
        let library = match &manifest.library {
            Some(sealed) => serde_json::from_value(serde_json::Value::Object(v2::open_object(&key, task, Part::Library, sealed).map_err(|r| (r.code, r.message))?))
                .map_err(|e| (ErrorCode::InvalidContent, e.to_string()))?,
            None => Library::default(),
        };
        Ok((key, library))
    }

    /// Reads a v2 task whose pages have all arrived (or a fill task), as `read_task` reads
    /// a v1 envelope: in one go, or fanned out by page uploads.
    async fn read_v2_task(&self, task: &V2TaskId, manifest: Manifest, last_receive: bool) -> Result<(), RecordError> {
        let id = task.task_id();
        let Some(state) = self.awaiting_ocr(&id).await? else { return Ok(()) };
        if last_receive {
            return self.fail(&id, ErrorCode::OcrFailure, "the last receive of a message whose earlier runs did not finish").await;
        }
        let (key, library) = match self.open_manifest(task, &manifest) {
            Ok(opened) => opened,
            Err((code, why)) => return self.fail(&id, code, &why).await,
        };
        let output = if let Some(form) = &manifest.form {
            let form = match v2::open_object(&key, task, Part::Form, form) {
                Ok(form) => form,
                Err(refusal) => return self.fail(&id, refusal.code, &refusal.message).await,
            };
            OcrOutput { pages: Vec::new(), library, form: Some(form) }
        } else {
            // The uploads are opened one at a time and their pages counted (a PDF holds
            // many); a task of more pages than one invocation reads is fanned out with that
            // layout, and what was opened is dropped: each group fetches only its uploads.
            let group_pages = self.fan_out.as_ref().map(|f| f.group_pages.max(1));
            let mut layout = Vec::with_capacity(manifest.pages.len());
            let mut kept = Some(Vec::new());
            for upload in 0..manifest.pages.len() {
                let inputs = match self.v2_inputs(task, &manifest, &key, upload..upload + 1).await? {
                    Ok(inputs) => inputs,
                    Err((code, why)) => return self.fail(&id, code, &why).await,
                };
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
                return self.fan_out(&id, total, layout, fan_out).await;
            };
            let pages = match self.read_inputs(inputs).await? {
                Ok(pages) => pages,
                Err(why) => return self.fail(&id, ErrorCode::OcrFailure, &why).await,
            };
            self.tasks.pages_read(&id, 0, pages.len()).await?;
            OcrOutput { pages, library, form: None }
        };
        self.hand_on(&id, &manifest.key, &key, &output, state.created_at).await
    }

    /// A v2 page group: the uploads in its range.
    pub(crate) async fn v2_group_source(&self, task: &V2TaskId, message: &GroupMessage) -> Result<Result<Option<GroupSource>, Refused>, RecordError> {
        let Some(manifest) = self.manifest(task).await? else { return Ok(Ok(None)) };
        let (key, library) = match self.open_manifest(task, &manifest) {
            Ok(opened) => opened,
            Err(refused) => return Ok(Err(refused)),
        };
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
            let opened = match self.v2_inputs(task, &manifest, &key, upload..upload + 1).await? {
                Ok(opened) => opened,
                Err(refused) => return Ok(Err(refused)),
            };
            let skip = range.start.saturating_sub(pages.start);
            let take = range.end.min(pages.end) - pages.start.max(range.start);
            inputs.extend(opened.into_iter().skip(skip).take(take));
        }
        Ok(Ok(Some(GroupSource { wrapped_key: manifest.key, key, library, inputs })))
    }

    /// Pages `range` of a v2 task, each checked and opened, then split by the input stage.
    async fn v2_inputs(&self, task: &V2TaskId, manifest: &Manifest, key: &AesKey, range: std::ops::Range<usize>) -> Result<Result<Vec<PageInput>, Refused>, RecordError> {
        let mut items = Vec::with_capacity(range.len());
        for index in range {
            let Some(sealed) = self.blobs.get(&task.page_key(index)).await? else {
                return Err(RecordError::MissingPage(index));
            };
            let declared = &manifest.pages[index];
            if sealed.len() as u64 != declared.size || sha256_hex(&sealed) != declared.sha256 {
                return Ok(Err((ErrorCode::PageMismatch, format!("page {index} is not the size and SHA-256 declared for it"))));
            }
            match key.open_gcm(sealed, &task.page_aad(index)) {
                Ok(page) => items.push(page),
                Err(_) => {
                    return Ok(Err((ErrorCode::PageAuthenticationFailed, format!("page {index} does not open with `{task}/page/{index}` as associated data"))))
                }
            }
        }
        Ok(split_items(items).await?.map_err(|why| (ErrorCode::OcrFailure, why)))
    }
}

/// S3's `eventTime` (`2026-11-30T05:21:05.123Z`) as Unix seconds; `None` if it is not one.
pub fn parse_event_time(text: &str) -> Option<Timestamp> {
    let (date, time) = text.trim_end_matches('Z').split_once('T')?;
    let mut d = date.split('-').map(|p| p.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let mut t = time.split(':');
    let (h, min) = (t.next()?.parse::<i64>().ok()?, t.next()?.parse::<i64>().ok()?);
    let sec = t.next()?.split('.').next()?.parse::<i64>().ok()?;
    if !(1..=12).contains(&m) || !(1..=31).contains(&day) || h > 23 || min > 59 || sec > 60 {
        return None;
    }
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + h * 3600 + min * 60 + sec)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_times_parse_to_unix_seconds() {
        assert_eq!(parse_event_time("1970-01-01T00:00:00.000Z"), Some(0));
        assert_eq!(parse_event_time("2026-11-30T05:21:05.123Z"), Some(1_796_016_065));
        assert_eq!(parse_event_time("2000-02-29T12:00:00Z"), Some(951_825_600));
        for bad in ["", "yesterday", "2026-13-01T00:00:00Z", "2026-11-30 05:21:05"] {
            assert_eq!(parse_event_time(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_grace_is_a_third_of_the_window_at_most_five_minutes() {
        assert_eq!(upload_grace_secs(900), 300);
        assert_eq!(upload_grace_secs(6), 2);
    }
}

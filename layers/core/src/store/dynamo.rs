//! The task table on DynamoDB: one item per task, partition key the client id, sort key
//! `type#sha256`, and a TTL attribute a day after the last access.

use std::collections::HashMap;

use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use aws_sdk_dynamodb::operation::update_item::{UpdateItemError, UpdateItemOutput};
use aws_sdk_dynamodb::types::{AttributeValue, DeleteRequest, ReturnValue, WriteRequest};
use aws_sdk_dynamodb::Client;

use super::{Created, Outcome, StoreError, TaskStore, V2TaskStore};
use crate::clock::Timestamp;
use crate::codes::ErrorCode;
use crate::ids::ClientId;
use crate::task::{expiry_after, ExtractorKind, Progress, Stage, Task, TaskId, TaskState, TaskStatus, TokenUsage};
use crate::v2::{Callback, V2Record};

/// Attribute names, shared with `template.yaml` (key schema and TTL).
pub mod attr {
    pub const CLIENT_ID: &str = "client_id";
    pub const TASK_KEY: &str = "task_key";
    pub const STATUS: &str = "status";
    pub const STAGE: &str = "stage";
    pub const ERROR_CODE: &str = "error_code";
    pub const RESULT: &str = "result";
    /// Written by versions before 2026-11-29 (the client's wrapped key); removed when such
    /// a task ends, never written now.
    pub const WRAPPED_KEY: &str = "wrapped_key";
    pub const EXTRACTOR: &str = "extractor";
    pub const CLAIMED_AT: &str = "claimed_at";
    /// The page groups of a fanned-out task whose output is stored (a number set).
    pub const GROUPS_READ: &str = "groups_read";
    pub const CREATED_AT: &str = "created_at";
    /// v2: the SHA-256 of the task's token, its declared pages, the pages arrived (a
    /// number set), the upload deadline, and the callback's URL and signing secret.
    pub const TOKEN_DIGEST: &str = "token_digest";
    pub const PAGES_EXPECTED: &str = "pages_expected";
    pub const PAGES_ARRIVED: &str = "pages_arrived";
    pub const UPLOAD_DEADLINE: &str = "upload_deadline";
    pub const CALLBACK_URL: &str = "callback_url";
    pub const CALLBACK_SECRET: &str = "callback_secret";
    /// v2: `pages_read_<part>`, the pages of each part read (see `TaskStore::pages_read`).
    pub const PAGES_READ_PREFIX: &str = "pages_read_";
    /// The LLM tokens a task used (numbers, added to by each extraction).
    pub const LLM_INPUT_TOKENS: &str = "llm_input_tokens";
    pub const LLM_OUTPUT_TOKENS: &str = "llm_output_tokens";
    pub const LAST_ACCESS: &str = "last_access";
    pub const EXPIRES_AT: &str = "expires_at";
}

/// BatchWriteItem takes at most 25 requests.
const BATCH_WRITE_MAX: usize = 25;
/// How often unprocessed batch items are sent again before giving up.
const BATCH_RETRIES: usize = 5;

#[derive(Clone, Debug)]
pub struct DynamoTaskStore {
    client: Client,
    table: String,
}

impl DynamoTaskStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self { client, table: table.into() }
    }

    /// An UpdateItem of one task's item, to be given its expressions.
    fn update(&self, id: &TaskId) -> UpdateItemFluentBuilder {
        self.client.update_item().table_name(&self.table).set_key(Some(Self::key(id)))
    }

    /// Sends a conditional UpdateItem: `None` when its condition did not hold.
    async fn update_if(request: UpdateItemFluentBuilder) -> Result<Option<UpdateItemOutput>, StoreError> {
        match request.send().await {
            Ok(output) => Ok(Some(output)),
            Err(e) if matches!(e.as_service_error(), Some(UpdateItemError::ConditionalCheckFailedException(_))) => {
                Ok(None)
            }
            Err(e) => Err(StoreError::backend("DynamoDB UpdateItem")(e)),
        }
    }

    fn key(id: &TaskId) -> HashMap<String, AttributeValue> {
        HashMap::from([
            (attr::CLIENT_ID.to_owned(), s(id.client_id.as_str())),
            (attr::TASK_KEY.to_owned(), s(id.sort_key())),
        ])
    }
}

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn n(value: Timestamp) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn to_item(task: &Task) -> HashMap<String, AttributeValue> {
    let mut item = DynamoTaskStore::key(&task.id);
    item.insert(attr::STATUS.into(), s(task.status().as_str()));
    match &task.state {
        TaskState::Processing { progress } => {
            item.insert(attr::STAGE.into(), s(progress.stage().as_str()));
            if let Progress::Extracting { claimed_at } = progress {
                item.insert(attr::CLAIMED_AT.into(), n(*claimed_at));
            }
        }
        TaskState::Completed { result, extractor } => {
            item.insert(attr::RESULT.into(), s(result));
            item.insert(attr::EXTRACTOR.into(), s(extractor.to_string()));
        }
        TaskState::Failed { code } => {
            item.insert(attr::ERROR_CODE.into(), s(code.as_str()));
        }
    }
    item.insert(attr::CREATED_AT.into(), n(task.created_at));
    item.insert(attr::LAST_ACCESS.into(), n(task.last_access));
    item.insert(attr::EXPIRES_AT.into(), n(task.expires_at()));
    item
}

fn v2_attributes(record: &V2Record) -> HashMap<String, AttributeValue> {
    let mut item = HashMap::from([
        (attr::TOKEN_DIGEST.to_owned(), s(&record.token_digest)),
        (attr::PAGES_EXPECTED.to_owned(), n(record.pages as Timestamp)),
        (attr::UPLOAD_DEADLINE.to_owned(), n(record.upload_deadline)),
    ]);
    if let Some(callback) = &record.callback {
        item.insert(attr::CALLBACK_URL.into(), s(&callback.url));
        item.insert(attr::CALLBACK_SECRET.into(), s(callback.secret.expose()));
    }
    item
}

fn v2_record(item: &HashMap<String, AttributeValue>) -> Result<V2Record, StoreError> {
    let malformed = |what: &str| StoreError::Malformed(format!("v2 task without {what}"));
    let text = |name: &str| item.get(name).and_then(|v| v.as_s().ok()).cloned();
    let number =
        |name: &str| -> Option<i64> { item.get(name).and_then(|v| v.as_n().ok()).and_then(|v| v.parse().ok()) };
    let callback = match (text(attr::CALLBACK_URL), text(attr::CALLBACK_SECRET)) {
        (Some(url), Some(secret)) => Some(Callback { url, secret: crate::secret::Secret::new(secret) }),
        _ => None,
    };
    Ok(V2Record {
        token_digest: text(attr::TOKEN_DIGEST).ok_or_else(|| malformed("a token"))?,
        pages: number(attr::PAGES_EXPECTED).ok_or_else(|| malformed("pages_expected"))? as usize,
        arrived: item.get(attr::PAGES_ARRIVED).and_then(|v| v.as_ns().ok()).map_or(0, Vec::len),
        read: item
            .iter()
            .filter(|(name, _)| name.starts_with(attr::PAGES_READ_PREFIX))
            .filter_map(|(_, v)| v.as_n().ok().and_then(|n| n.parse::<usize>().ok()))
            .sum(),
        upload_deadline: number(attr::UPLOAD_DEADLINE).ok_or_else(|| malformed("upload_deadline"))?,
        callback,
        usage: TokenUsage {
            input_tokens: number(attr::LLM_INPUT_TOKENS).unwrap_or(0).max(0) as u64,
            output_tokens: number(attr::LLM_OUTPUT_TOKENS).unwrap_or(0).max(0) as u64,
        },
    })
}

/// Reads an item into a task, once: every combination of attributes a task cannot have
/// is a [`StoreError::Malformed`] here, not a case for the callers.
fn from_item(item: &HashMap<String, AttributeValue>) -> Result<Task, StoreError> {
    let malformed = |what: &str| StoreError::Malformed(what.to_owned());
    let text = |name: &str| item.get(name).and_then(|v| v.as_s().ok()).cloned();
    let number =
        |name: &str| -> Option<Timestamp> { item.get(name).and_then(|v| v.as_n().ok()).and_then(|v| v.parse().ok()) };
    let client_id =
        text(attr::CLIENT_ID).and_then(|id| ClientId::stored(&id).ok()).ok_or_else(|| malformed("client_id"))?;
    let sort_key = text(attr::TASK_KEY).unwrap_or_default();
    let id = TaskId::from_sort_key(client_id, &sort_key).ok_or_else(|| malformed(&format!("task key {sort_key:?}")))?;
    let status = text(attr::STATUS).and_then(|v| TaskStatus::parse(&v)).ok_or_else(|| malformed("status"))?;
    let state = match status {
        TaskStatus::Processing => {
            let progress = match text(attr::STAGE).and_then(|v| Stage::parse(&v)).unwrap_or(Stage::Uploaded) {
                Stage::Receiving => Progress::Receiving,
                Stage::Uploaded => Progress::Uploaded,
                Stage::Read => Progress::Read,
                Stage::Extracting => Progress::Extracting {
                    claimed_at: number(attr::CLAIMED_AT).ok_or_else(|| malformed("a claim without claimed_at"))?,
                },
            };
            TaskState::Processing { progress }
        }
        TaskStatus::Completed => TaskState::Completed {
            result: text(attr::RESULT).ok_or_else(|| malformed("a completed task without a result"))?,
            extractor: text(attr::EXTRACTOR)
                .and_then(|e| ExtractorKind::parse(&e))
                .ok_or_else(|| malformed("a completed task without a known extractor"))?,
        },
        // A code this version does not know still ends the task as an error.
        TaskStatus::Error => TaskState::Failed {
            code: text(attr::ERROR_CODE).and_then(|c| ErrorCode::parse(&c)).unwrap_or(ErrorCode::ProcessingError),
        },
    };
    Ok(Task {
        id,
        state,
        created_at: number(attr::CREATED_AT).ok_or_else(|| malformed("created_at"))?,
        last_access: number(attr::LAST_ACCESS).ok_or_else(|| malformed("last_access"))?,
    })
}

impl DynamoTaskStore {
    async fn put_new(&self, task: &Task, item: HashMap<String, AttributeValue>) -> Result<Created, StoreError> {
        // An expired item that TTL has not yet removed does not block a new upload.
        let outcome = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(#pk) OR #exp <= :now")
            .expression_attribute_names("#pk", attr::CLIENT_ID)
            .expression_attribute_names("#exp", attr::EXPIRES_AT)
            .expression_attribute_values(":now", n(task.created_at))
            .send()
            .await;
        match outcome {
            Ok(_) => Ok(Created::New),
            Err(e) if matches!(e.as_service_error(), Some(PutItemError::ConditionalCheckFailedException(_))) => {
                Ok(Created::AlreadyExists)
            }
            Err(e) => Err(StoreError::backend("DynamoDB PutItem")(e)),
        }
    }

    /// Adds `number` to the number set `set` of a task processing at one of `stages`, and
    /// returns the set's size: a set, so duplicates and retries count once. `None`,
    /// changing nothing, when the task is not at one of those stages.
    async fn add_to_set(
        &self, id: &TaskId, set: &str, number: u64, stages: &[Stage],
    ) -> Result<Option<usize>, StoreError> {
        let at_stage = (0..stages.len()).map(|i| format!("#stage = :stage{i}")).collect::<Vec<_>>().join(" OR ");
        let mut request = self
            .update(id)
            .update_expression("ADD #set :number")
            .condition_expression(format!("#status = :processing AND ({at_stage})"))
            .expression_attribute_names("#status", attr::STATUS)
            .expression_attribute_names("#stage", attr::STAGE)
            .expression_attribute_names("#set", set)
            .expression_attribute_values(":processing", s(TaskStatus::Processing.as_str()))
            .expression_attribute_values(":number", AttributeValue::Ns(vec![number.to_string()]))
            .return_values(ReturnValue::UpdatedNew);
        for (i, stage) in stages.iter().enumerate() {
            request = request.expression_attribute_values(format!(":stage{i}"), s(stage.as_str()));
        }
        let Some(output) = Self::update_if(request).await? else {
            return Ok(None);
        };
        Ok(Some(output.attributes().and_then(|a| a.get(set)).and_then(|v| v.as_ns().ok()).map_or(0, Vec::len)))
    }

    async fn get_item(&self, id: &TaskId) -> Result<Option<HashMap<String, AttributeValue>>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(id)))
            .consistent_read(true)
            .send()
            .await
            .map_err(StoreError::backend("DynamoDB GetItem"))?;
        Ok(output.item)
    }
}

impl TaskStore for DynamoTaskStore {
    async fn create(&self, task: &Task) -> Result<Created, StoreError> {
        self.put_new(task, to_item(task)).await
    }

    async fn get(&self, id: &TaskId, now: Timestamp) -> Result<Option<Task>, StoreError> {
        match self.get_item(id).await? {
            Some(item) => Ok(Some(from_item(&item)?).filter(|task| !task.is_expired(now))),
            None => Ok(None),
        }
    }

    async fn touch(&self, id: &TaskId, now: Timestamp) -> Result<Option<Task>, StoreError> {
        let request = self
            .update(id)
            .update_expression("SET #last = :now, #exp = :exp")
            .condition_expression("attribute_exists(#pk) AND #exp > :now")
            .expression_attribute_names("#pk", attr::CLIENT_ID)
            .expression_attribute_names("#last", attr::LAST_ACCESS)
            .expression_attribute_names("#exp", attr::EXPIRES_AT)
            .expression_attribute_values(":now", n(now))
            .expression_attribute_values(":exp", n(expiry_after(now)))
            .return_values(ReturnValue::AllNew);
        Self::update_if(request).await?.and_then(|output| output.attributes().map(from_item)).transpose()
    }

    async fn finish(&self, id: &TaskId, outcome: Outcome) -> Result<bool, StoreError> {
        let (status, field, value, extractor) = match outcome {
            Outcome::Completed { result, extractor } => {
                (TaskStatus::Completed, attr::RESULT, result, Some(extractor.to_string()))
            }
            Outcome::Failed(code) => (TaskStatus::Error, attr::ERROR_CODE, code.as_str().to_owned(), None),
        };
        let mut request = self.update(id);
        let mut set = "SET #status = :status, #field = :value".to_owned();
        if let Some(extractor) = extractor {
            set.push_str(", #extractor = :extractor");
            request = request
                .expression_attribute_names("#extractor", attr::EXTRACTOR)
                .expression_attribute_values(":extractor", s(extractor));
        }
        let request = request
            .update_expression(format!("{set} REMOVE #wrapped"))
            .condition_expression("#status = :processing")
            .expression_attribute_names("#status", attr::STATUS)
            .expression_attribute_names("#field", field)
            .expression_attribute_names("#wrapped", attr::WRAPPED_KEY)
            .expression_attribute_values(":status", s(status.as_str()))
            .expression_attribute_values(":value", s(value))
            .expression_attribute_values(":processing", s(TaskStatus::Processing.as_str()));
        Ok(Self::update_if(request).await?.is_some())
    }

    async fn advance(&self, id: &TaskId, from: Stage, to: Stage) -> Result<bool, StoreError> {
        let request = self
            .update(id)
            .update_expression("SET #stage = :to")
            .condition_expression("#status = :processing AND #stage = :from")
            .expression_attribute_names("#status", attr::STATUS)
            .expression_attribute_names("#stage", attr::STAGE)
            .expression_attribute_values(":processing", s(TaskStatus::Processing.as_str()))
            .expression_attribute_values(":from", s(from.as_str()))
            .expression_attribute_values(":to", s(to.as_str()));
        Ok(Self::update_if(request).await?.is_some())
    }

    async fn group_read(&self, id: &TaskId, group: u32) -> Result<Option<usize>, StoreError> {
        self.add_to_set(id, attr::GROUPS_READ, group as u64, &[Stage::Uploaded]).await
    }

    async fn claim(&self, id: &TaskId, now: Timestamp, stale_before: Timestamp) -> Result<bool, StoreError> {
        let request = self
            .update(id)
            .update_expression("SET #stage = :extracting, #claimed = :now")
            .condition_expression(
                "#status = :processing AND (#stage = :read OR (#stage = :extracting AND #claimed < :stale))",
            )
            .expression_attribute_names("#status", attr::STATUS)
            .expression_attribute_names("#stage", attr::STAGE)
            .expression_attribute_names("#claimed", attr::CLAIMED_AT)
            .expression_attribute_values(":processing", s(TaskStatus::Processing.as_str()))
            .expression_attribute_values(":read", s(Stage::Read.as_str()))
            .expression_attribute_values(":extracting", s(Stage::Extracting.as_str()))
            .expression_attribute_values(":now", n(now))
            .expression_attribute_values(":stale", n(stale_before));
        Ok(Self::update_if(request).await?.is_some())
    }

    async fn add_usage(&self, id: &TaskId, usage: TokenUsage) -> Result<(), StoreError> {
        // Added, not set: a second extraction (a lapsed claim) spent its tokens too.
        Self::update_if(
            self.update(id)
                .update_expression("ADD #in :in, #out :out")
                .condition_expression("attribute_exists(#key)")
                .expression_attribute_names("#in", attr::LLM_INPUT_TOKENS)
                .expression_attribute_names("#out", attr::LLM_OUTPUT_TOKENS)
                .expression_attribute_names("#key", attr::TASK_KEY)
                .expression_attribute_values(":in", AttributeValue::N(usage.input_tokens.to_string()))
                .expression_attribute_values(":out", AttributeValue::N(usage.output_tokens.to_string())),
        )
        .await
        .map(|_| ())
    }

    async fn delete(&self, id: &TaskId) -> Result<(), StoreError> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(id)))
            .send()
            .await
            .map_err(StoreError::backend("DynamoDB DeleteItem"))?;
        Ok(())
    }

    async fn count_in_flight(&self, client_id: &ClientId, since: Timestamp) -> Result<usize, StoreError> {
        let mut pages = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("#pk = :client")
            .filter_expression("#status = :processing AND #created > :since")
            .expression_attribute_names("#pk", attr::CLIENT_ID)
            .expression_attribute_names("#status", attr::STATUS)
            .expression_attribute_names("#created", attr::CREATED_AT)
            .expression_attribute_values(":client", s(client_id.as_str()))
            .expression_attribute_values(":processing", s(TaskStatus::Processing.as_str()))
            .expression_attribute_values(":since", n(since))
            .select(aws_sdk_dynamodb::types::Select::Count)
            .into_paginator()
            .send();
        let mut count = 0;
        while let Some(page) = pages.next().await {
            count += page.map_err(StoreError::backend("DynamoDB Query (in flight)"))?.count().max(0) as usize;
        }
        Ok(count)
    }

    async fn delete_client(&self, client_id: &ClientId) -> Result<usize, StoreError> {
        let mut keys = Vec::new();
        let mut pages = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("#pk = :client")
            .expression_attribute_names("#pk", attr::CLIENT_ID)
            .expression_attribute_names("#sk", attr::TASK_KEY)
            .expression_attribute_values(":client", s(client_id.as_str()))
            .projection_expression("#pk, #sk")
            .consistent_read(true)
            .into_paginator()
            .items()
            .send();
        while let Some(item) = pages.next().await {
            keys.push(item.map_err(StoreError::backend("DynamoDB Query"))?);
        }
        let count = keys.len();
        for chunk in keys.chunks(BATCH_WRITE_MAX) {
            let mut requests = chunk
                .iter()
                .map(|key| {
                    let delete = DeleteRequest::builder().set_key(Some(key.clone())).build();
                    delete.map(|d| WriteRequest::builder().delete_request(d).build())
                })
                .collect::<Result<Vec<_>, _>>()
                .map_err(StoreError::backend("DynamoDB BatchWriteItem"))?;
            for attempt in 0..=BATCH_RETRIES {
                let output = self
                    .client
                    .batch_write_item()
                    .request_items(&self.table, requests)
                    .send()
                    .await
                    .map_err(StoreError::backend("DynamoDB BatchWriteItem"))?;
                requests = output.unprocessed_items.and_then(|mut left| left.remove(&self.table)).unwrap_or_default();
                if requests.is_empty() {
                    break;
                }
                if attempt == BATCH_RETRIES {
                    return Err(StoreError::Partial(format!(
                        "{} deletes still unprocessed after {BATCH_RETRIES} retries",
                        requests.len()
                    )));
                }
                tokio::time::sleep(std::time::Duration::from_millis(50 << attempt)).await;
            }
        }
        Ok(count)
    }
}

impl V2TaskStore for DynamoTaskStore {
    async fn create_v2(&self, task: &Task, record: &V2Record) -> Result<Created, StoreError> {
        let mut item = to_item(task);
        item.extend(v2_attributes(record));
        self.put_new(task, item).await
    }

    async fn get_v2(&self, id: &TaskId, now: Timestamp) -> Result<Option<(Task, V2Record)>, StoreError> {
        let Some(item) = self.get_item(id).await? else {
            return Ok(None);
        };
        let task = from_item(&item)?;
        if task.is_expired(now) {
            return Ok(None);
        }
        Ok(Some((task, v2_record(&item)?)))
    }

    async fn pages_read(&self, id: &TaskId, part: u32, pages: usize) -> Result<(), StoreError> {
        let request = self
            .update(id)
            .update_expression("SET #read = :pages")
            .condition_expression("attribute_exists(#pk)")
            .expression_attribute_names("#pk", attr::CLIENT_ID)
            .expression_attribute_names("#read", format!("{}{part}", attr::PAGES_READ_PREFIX))
            .expression_attribute_values(":pages", n(pages as Timestamp));
        Self::update_if(request).await?;
        Ok(())
    }

    async fn page_arrived(&self, id: &TaskId, page: usize) -> Result<Option<usize>, StoreError> {
        self.add_to_set(id, attr::PAGES_ARRIVED, page as u64, &[Stage::Receiving, Stage::Uploaded]).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::TaskType;

    fn id() -> TaskId {
        TaskId::new(ClientId::parse("c").unwrap(), TaskType::Form, "ab")
    }

    #[test]
    fn items_round_trip_in_every_state() {
        let mut task = Task::new_processing(id(), 100);
        assert_eq!(from_item(&to_item(&task)).unwrap(), task);
        assert!(!to_item(&task).contains_key(attr::WRAPPED_KEY), "the client's key is never stored in the table");
        task.state = TaskState::Processing { progress: Progress::Extracting { claimed_at: 150 } };
        assert_eq!(from_item(&to_item(&task)).unwrap(), task);
        task.state = TaskState::Completed {
            result: "sealed".into(),
            extractor: ExtractorKind::Llm { model: "glm".into(), format: None },
        };
        assert_eq!(from_item(&to_item(&task)).unwrap(), task);
        task.state = TaskState::Failed { code: ErrorCode::OcrFailure };
        let item = to_item(&task);
        assert_eq!(item[attr::EXPIRES_AT], n(100 + 1440 * 60));
        assert_eq!(from_item(&item).unwrap(), task);
    }

    #[test]
    fn malformed_items_are_errors_not_panics() {
        let mut item = to_item(&Task::new_processing(id(), 1));
        item.insert(attr::STATUS.into(), s("dancing"));
        assert!(matches!(from_item(&item), Err(StoreError::Malformed(_))));
        item.insert(attr::STATUS.into(), s("completed"));
        assert!(matches!(from_item(&item), Err(StoreError::Malformed(_))), "completed without a result");
        item.insert(attr::STATUS.into(), s("processing"));
        item.insert(attr::STAGE.into(), s("extracting"));
        assert!(matches!(from_item(&item), Err(StoreError::Malformed(_))), "a claim without its time");
        item.remove(attr::CLIENT_ID);
        assert!(matches!(from_item(&item), Err(StoreError::Malformed(_))));
    }
}

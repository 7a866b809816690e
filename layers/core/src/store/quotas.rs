//! The quota table on DynamoDB (the quota module's store): partition key the principal, sort key
//! the item: `in_flight` (a string set of held tasks), `limits` (an operator's override),
//! `pages#YYYY-MM-DD` (a day's page count, with a TTL).

use std::collections::HashMap;

use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use aws_sdk_dynamodb::Client;

use super::StoreError;
use super::{Hold, QuotaOverride, QuotaStore};
use crate::clock::Timestamp;
use crate::ids::Principal;

/// Attribute names, shared with `template.yaml` (key schema and TTL).
pub mod attr {
    pub const PRINCIPAL: &str = "principal";
    pub const ITEM: &str = "item";
    pub const TASKS: &str = "tasks";
    pub const PAGES: &str = "pages";
    pub const EXPIRES_AT: &str = "expires_at";
    /// On the `limits` item, set by an operator.
    pub const TASKS_IN_FLIGHT: &str = "tasks_in_flight";
    pub const PAGES_PER_DAY: &str = "pages_per_day";
}

const IN_FLIGHT: &str = "in_flight";
const LIMITS: &str = "limits";

#[derive(Clone, Debug)]
pub struct DynamoQuotaStore {
    client: Client,
    table: String,
}

impl DynamoQuotaStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self { client, table: table.into() }
    }

    fn key(who: &Principal, item: &str) -> HashMap<String, AttributeValue> {
        HashMap::from([
            (attr::PRINCIPAL.to_owned(), AttributeValue::S(who.as_str().to_owned())),
            (attr::ITEM.to_owned(), AttributeValue::S(item.to_owned())),
        ])
    }

    /// One item of the principal's, read consistently (a quota is checked against it).
    async fn get(
        &self, who: &Principal, item: &str, operation: &'static str,
    ) -> Result<Option<HashMap<String, AttributeValue>>, StoreError> {
        let got = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(who, item)))
            .consistent_read(true)
            .send()
            .await
            .map_err(StoreError::backend(operation))?;
        Ok(got.item)
    }

    fn update(
        &self, who: &Principal, item: &str,
    ) -> aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder {
        self.client.update_item().table_name(&self.table).set_key(Some(Self::key(who, item)))
    }
}

fn failed(e: &aws_sdk_dynamodb::error::SdkError<UpdateItemError>) -> bool {
    matches!(e.as_service_error(), Some(UpdateItemError::ConditionalCheckFailedException(_)))
}

fn number(item: &HashMap<String, AttributeValue>, name: &str) -> Result<Option<u32>, StoreError> {
    match item.get(name) {
        None => Ok(None),
        Some(AttributeValue::N(n)) => {
            n.parse().map(Some).map_err(|_| StoreError::Malformed(format!("quota {name}: {n}")))
        }
        Some(other) => Err(StoreError::Malformed(format!("quota {name}: {other:?}"))),
    }
}

impl QuotaStore for DynamoQuotaStore {
    async fn own_limits(&self, who: &Principal) -> Result<Option<QuotaOverride>, StoreError> {
        let Some(item) = self.get(who, LIMITS, "DynamoDB GetItem (quota limits)").await? else { return Ok(None) };
        Ok(Some(QuotaOverride {
            tasks_in_flight: number(&item, attr::TASKS_IN_FLIGHT)?,
            pages_per_day: number(&item, attr::PAGES_PER_DAY)?,
        }))
    }

    async fn hold(&self, who: &Principal, task: &str, limit: u32) -> Result<Hold, StoreError> {
        // The old set says whether the task was there already (a retried request).
        let added = self
            .update(who, IN_FLIGHT)
            .update_expression("ADD #tasks :task")
            .condition_expression("attribute_not_exists(#tasks) OR size(#tasks) < :limit OR contains(#tasks, :member)")
            .expression_attribute_names("#tasks", attr::TASKS)
            .expression_attribute_values(":task", AttributeValue::Ss(vec![task.to_owned()]))
            .expression_attribute_values(":member", AttributeValue::S(task.to_owned()))
            .expression_attribute_values(":limit", AttributeValue::N(limit.to_string()))
            .return_values(ReturnValue::UpdatedOld)
            .send()
            .await;
        match added {
            Ok(out) => {
                let was_there = out
                    .attributes
                    .as_ref()
                    .and_then(|old| old.get(attr::TASKS))
                    .and_then(|set| set.as_ss().ok())
                    .is_some_and(|set| set.iter().any(|t| t == task));
                Ok(if was_there { Hold::AlreadyHeld } else { Hold::Added })
            }
            Err(e) if failed(&e) => Ok(Hold::Full),
            Err(e) => Err(StoreError::backend("DynamoDB UpdateItem (quota hold)")(e)),
        }
    }

    async fn held(&self, who: &Principal) -> Result<Vec<String>, StoreError> {
        let item = self.get(who, IN_FLIGHT, "DynamoDB GetItem (quota in flight)").await?;
        Ok(item.and_then(|item| item.get(attr::TASKS).and_then(|set| set.as_ss().ok()).cloned()).unwrap_or_default())
    }

    async fn release(&self, who: &Principal, tasks: &[String]) -> Result<(), StoreError> {
        if tasks.is_empty() {
            return Ok(());
        }
        self.update(who, IN_FLIGHT)
            .update_expression("DELETE #tasks :tasks")
            .expression_attribute_names("#tasks", attr::TASKS)
            .expression_attribute_values(":tasks", AttributeValue::Ss(tasks.to_vec()))
            .send()
            .await
            .map_err(StoreError::backend("DynamoDB UpdateItem (quota release)"))?;
        Ok(())
    }

    async fn count_pages(
        &self, who: &Principal, day: &str, pages: u32, limit: u32, expires_at: Timestamp,
    ) -> Result<bool, StoreError> {
        let Some(room) = limit.checked_sub(pages) else { return Ok(false) };
        let counted = self
            .update(who, &format!("pages#{day}"))
            .update_expression("ADD #pages :pages SET #expires = :expires")
            .condition_expression("attribute_not_exists(#pages) OR #pages <= :room")
            .expression_attribute_names("#pages", attr::PAGES)
            .expression_attribute_names("#expires", attr::EXPIRES_AT)
            .expression_attribute_values(":pages", AttributeValue::N(pages.to_string()))
            .expression_attribute_values(":room", AttributeValue::N(room.to_string()))
            .expression_attribute_values(":expires", AttributeValue::N(expires_at.to_string()))
            .send()
            .await;
        match counted {
            Ok(_) => Ok(true),
            Err(e) if failed(&e) => Ok(false),
            Err(e) => Err(StoreError::backend("DynamoDB UpdateItem (quota pages)")(e)),
        }
    }

    async fn uncount_pages(&self, who: &Principal, day: &str, pages: u32) -> Result<(), StoreError> {
        self.update(who, &format!("pages#{day}"))
            .update_expression("ADD #pages :pages")
            .condition_expression("attribute_exists(#pages)")
            .expression_attribute_names("#pages", attr::PAGES)
            .expression_attribute_values(":pages", AttributeValue::N(format!("-{pages}")))
            .send()
            .await
            .map(|_| ())
            .or_else(|e| {
                if failed(&e) {
                    Ok(())
                } else {
                    Err(StoreError::backend("DynamoDB UpdateItem (quota pages back)")(e))
                }
            })
    }
}
